"""The chat's state and handlers: the knowledge bases, one writer per KB, any number of readers.

Shared state is only what must be shared: the settings, the Library (its indexes are safe for concurrent searches
while one writer adds files), Access, and the progress of the indexing job running. Each browser session keeps its
own conversation in a gr.State (history.py keeps each answer in library.sqlite); every request builds new values.
Every handler takes the login name gradio resolved for the request (None without logins) and asks Access, as it
stands now, what that user may read and add: a grant or revoke applies at the next request, and a KB the user may
not read is never named to them.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from ..access import Access, Principal
from ..answer import ask
from ..config import MODES
from ..errors import AccessError, RagError
from ..kb import DEFAULT_KB, Library
from .render import (SPIN, esc, format_progress, history_for, render_chat, render_panel, render_report,
                     render_status)
from .uploads import MAX_UPLOAD_MB, check_upload, inside, restore, safe_filename

MAX_K = 20  # passages a question may ask for: the slider's end, and the handler's clamp
NOT_LOGGED_IN = "your login is no longer valid: log in again (Log out, then log in)"


class Job:
    """Progress of the indexing job running (one KB at a time), shown to those who may read that KB."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {"running": False, "kb": "", "stage": "", "done": 0, "total": 0, "label": ""}

    def start(self, kb: str, label: str):
        with self._lock:
            self._state = {"running": True, "kb": kb, "stage": "starting", "done": 0, "total": 0, "label": label}

    def update(self, stage: str, done: int, total: int):
        with self._lock:
            self._state.update(stage=stage, done=done, total=total)

    def finish(self):
        with self._lock:
            self._state = {**self._state, "running": False}

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._state)


class ChatApp:
    def __init__(self, settings, library: Library, access: Access, max_upload_mb: float = MAX_UPLOAD_MB):
        self.settings = settings
        self.library = library
        self.access = access
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.errors: dict[str, str] = {}  # KB -> why its index could not be opened or built
        self.started = threading.Event()  # the start-up pass over every KB's corpus is over
        self._writers: dict[str, threading.Lock] = {}  # one writer per KB; readers never wait for it
        self._writers_lock = threading.Lock()
        self.job = Job()
        self._start_lock = threading.Lock()
        self._starting = False

    # ---- start-up: bring every KB's index up to date with its corpus folder ----
    def start(self):
        with self._start_lock:
            if self._starting:
                return
            self._starting = True
        threading.Thread(target=self._startup, name="rag-startup", daemon=True).start()

    def _startup(self):
        try:
            for kb in self.library.names():
                try:
                    self.library.get(kb).corpus_dir.mkdir(parents=True, exist_ok=True)
                    self.run_index_job(kb, "building the index")
                except RagError as e:
                    self.errors[kb] = str(e)
                except Exception as e:  # noqa: BLE001 - the page must say why, not hang
                    self.errors[kb] = f"cannot index it: {type(e).__name__}: {e}"
                    print(f"indexing the knowledge base {kb} failed: {e}", file=sys.stderr)
        finally:
            self.started.set()

    def writer(self, kb: str) -> threading.Lock:
        with self._writers_lock:
            return self._writers.setdefault(kb, threading.Lock())

    def run_index_job(self, kb: str, label: str, paths=None):
        """index.add of the KB's corpus folder (or `paths`) under its writer lock, with progress into the Job."""
        with self.writer(kb):
            index = self.library.index(kb, build=False)
            self.errors.pop(kb, None)
            self.job.start(kb, label)
            last_print = [0.0]

            def progress(stage, done, total):
                self.job.update(stage, done, total)
                now = time.monotonic()
                if now - last_print[0] > 2 or done == total:
                    last_print[0] = now
                    print(f"  {kb}: {label}: {stage} {done}/{total}", file=sys.stderr, flush=True)

            try:
                return index.add([str(p) for p in paths or [self.library.get(kb).corpus_dir]], progress=progress)
            finally:
                self.job.finish()

    # ---- who may see what ----
    def who(self, user: str | None) -> Principal | None:
        return self.access.principal(user)

    def readable(self, who: Principal | None) -> list[str]:
        return self.access.readable(who, self.library.names())

    def addable(self, who: Principal | None) -> list[str]:
        return self.access.addable(who, self.library.names())

    def default_kbs(self, who: Principal | None) -> list[str]:
        """What a new page searches: the settings' KBs (else default) the user may read, else their first one."""
        readable = self.readable(who)
        wanted = [kb for kb in (self.settings.kbs or [DEFAULT_KB]) if kb in readable]
        return wanted or readable[:1]

    def chosen(self, who: Principal | None, kbs) -> list[str]:
        """The KBs a request asks for, as far as the user may read them (none chosen: their default ones)."""
        kbs = [kbs] if isinstance(kbs, str) else list(kbs or [])
        return self.access.readable(who, kbs) if kbs else self.default_kbs(who)

    def statuses(self, who: Principal | None) -> dict[str, dict | None]:
        out = {}
        for kb in self.readable(who):
            try:
                status = self.library.index(kb, build=False).status()
                # a failed upload is taken back out of the corpus: its old failure is no longer news
                status["failed"] = [f for f in status.get("failed") or [] if Path(str(f.get("path", ""))).exists()]
            except Exception:  # noqa: BLE001 - the status line must never break the page
                status = None
            out[kb] = status
        return out

    def status_html(self, user: str | None) -> str:
        who = self.who(user)
        return render_status(self.statuses(who), self.job.snapshot(), {k: v for k, v in self.errors.items()
                                                                        if self.access.may_read(who, k)})

    def file_url(self, kb: str, source: str, page=None) -> str | None:
        """A link that serves an indexed file (the files route checks who asks), for files inside a KB's corpus."""
        if not source or not kb:
            return None
        try:
            folder = self.library.get(kb).corpus_dir
        except RagError:
            return None
        path = folder / source
        if not inside(path, folder) or not path.is_file():
            return None
        return f"files/{quote(kb)}/{quote(source)}" + (f"#page={int(page)}" if page else "")

    @staticmethod
    def _choices(k, mode) -> dict:
        """ask()'s k and mode from the page's settings; empty or unknown values keep the defaults."""
        return {"k": max(1, min(MAX_K, int(k))) if k else None, "mode": mode if mode in MODES else None}

    def _ask(self, question: str, kbs: list[str], history=None, on_token=None, k=None, mode=None) -> dict:
        selection = self.library.select(kbs, build=False)  # start-up, uploads and re-index build them
        return ask(question, index=selection, history=history, settings=self.settings, on_token=on_token,
                   **self._choices(k, mode)).to_dict()

    def _waiting_for(self, kbs: list[str]) -> str | None:
        """While start-up still builds a chosen KB that has nothing indexed yet: what to show meanwhile."""
        if self.started.is_set():
            return None
        for kb in kbs:
            try:
                if self.library.index(kb, build=False).store.counts()["chunks"] == 0:
                    return f"Waiting for the index ({format_progress(self.job.snapshot())})"
            except RagError:
                continue
        return None

    # ---- the chat: a generator, so the page shows progress and then the answer ----
    def chat(self, question: str, turns: list[dict], k, mode, kbs=None, user: str | None = None):
        question = (question or "").strip()
        turns = list(turns or [])
        who = self.who(user)
        chosen = self.chosen(who, kbs)
        panel = render_panel(turns, self.file_url)
        if not question:
            yield render_chat(turns), panel, turns, ""
            return
        pending = {"question": question, "pending": "Searching the documents…"}
        yield render_chat(turns + [pending]), panel, turns + [pending], ""
        problem = (NOT_LOGGED_IN if who is None else
                   "choose a knowledge base you may read (the picker above the chat)" if not chosen else None)
        if problem:
            done = turns + [{"question": question, "error": problem}]
            yield render_chat(done), panel, done, ""
            return
        while (waiting := self._waiting_for(chosen)) is not None:
            work = turns + [{**pending, "pending": waiting}]
            yield render_chat(work), panel, work, ""
            self.started.wait(timeout=0.5)

        tokens: queue.Queue = queue.Queue()
        result: dict = {}

        def run():
            try:
                result["answer"] = self._ask(question, chosen, history_for(turns), tokens.put, k, mode)
            except RagError as e:
                result["error"] = str(e)
            except Exception as e:  # noqa: BLE001 - report, never leave the page frozen
                result["error"] = f"{type(e).__name__}: {e}"

        worker = threading.Thread(target=run, name="rag-ask", daemon=True)
        worker.start()
        streamed = ""
        while worker.is_alive():
            worker.join(timeout=0.1)
            got = []
            while True:
                try:
                    got.append(tokens.get_nowait())
                except queue.Empty:
                    break
            if got:
                streamed += "".join(str(t) for t in got)
                work = turns + [{"question": question, "pending": streamed + " ▌"}]
                yield render_chat(work), panel, work, ""
        if "answer" in result:
            done = turns + [{"question": question, "answer": result["answer"]}]
        else:
            done = turns + [{"question": question, "error": result.get("error", "no answer")}]
        yield render_chat(done), render_panel(done, self.file_url), done, ""

    # ---- the API: the same answer as the window, as Answer.to_dict() ----
    def api_ask(self, question: str, k: int = 0, mode: str = "", kbs=None, user: str | None = None) -> dict:
        if not (question or "").strip():
            raise ValueError("question is empty")
        who = self.who(user)
        if who is None:
            raise AccessError(NOT_LOGGED_IN)
        chosen = self.chosen(who, kbs)
        if not chosen:
            raise RagError("no knowledge base you may read was named; GET /v1/kbs lists yours")
        self.started.wait()
        return self._ask(question.strip(), chosen, k=k, mode=mode)

    # ---- uploads and re-indexing: generators yielding (report html, status html) ----
    def _require_add(self, user: str | None, kb: str, action: str) -> None:
        """Refused server-side whatever the page showed: the user comes from the login, not the request body."""
        try:
            self.access.require_add(self.who(user), kb)
        except RagError:
            print(f"refused: {action} into a knowledge base by {user or 'a user without login'}", file=sys.stderr,
                  flush=True)
            raise

    def _watch(self, work: Callable, label: str):
        """Run work() in a thread; yield the shared progress until it is done; then its result."""
        box: dict = {}

        def run():
            try:
                box["value"] = work()
            except Exception as e:  # noqa: BLE001
                box["error"] = e

        t = threading.Thread(target=run, name=f"rag-{label}", daemon=True)
        t.start()
        while t.is_alive():
            t.join(timeout=0.3)
            job = self.job.snapshot()
            text = format_progress(job) if job.get("running") else f"{label}: waiting for the index…"
            yield None, text
        yield box, ""

    def upload(self, files, kb: str, user: str | None = None):
        self._require_add(user, kb, "upload")
        files = files if isinstance(files, list) else ([files] if files else [])
        if not files:
            yield "<p>No file received.</p>", self.status_html(user)
            return
        yield f'<p>{SPIN} Received {len(files)} file(s)…</p>', self.status_html(user)
        rejected, accepted, notes = [], [], []  # accepted: (source path, name)
        staging = Path(tempfile.mkdtemp(prefix="rag-upload-"))
        try:
            for f in files:
                src = getattr(f, "name", f)  # a filepath string, or a file-like object
                name = safe_filename(os.path.basename(str(src)))
                if name is None:
                    rejected.append((os.path.basename(str(src)) or "?", "not a usable file name"))
                    continue
                why = check_upload(src, name, self.max_upload_bytes)
                if why:
                    rejected.append((name, why))
                    continue
                accepted.append((Path(src), name))
            if not accepted:
                yield render_report(None, rejected=rejected), self.status_html(user)
                return
            box = None
            for box, text in self._watch(lambda: self._store_and_index(kb, accepted, staging, notes), "upload"):
                if box is None:
                    yield f"<p>{SPIN} {esc(text)}</p>", self.status_html(user)
            if "error" in box:
                notes.append(f"indexing failed: {box['error']}; the index keeps its last good state")
                yield render_report(None, notes, rejected), self.status_html(user)
            else:
                yield render_report(box["value"], notes, rejected), self.status_html(user)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _store_and_index(self, kb: str, accepted, staging: Path, notes: list[str]):
        """Copy uploads into the KB's corpus, index them, and take back those that could not be read."""
        corpus = self.library.get(kb).corpus_dir
        with self.writer(kb):
            placed = []  # (dest, backup or None)
            for src, name in accepted:
                dest = corpus / name
                if not inside(dest, corpus):
                    continue
                backup = None
                if dest.exists():
                    backup = staging / (name + ".previous")
                    shutil.copy2(dest, backup)
                    notes.append(f"{name} replaced the file of the same name")
                tmp = corpus / f".{name}.uploading"
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
                placed.append((dest, backup))
            self.job.start(kb, "indexing uploads")
            try:
                report = self.library.index(kb, build=False).add([str(d) for d, _ in placed], progress=self.job.update)
            except BaseException:
                for dest, backup in placed:
                    restore(dest, backup)
                raise
            finally:
                self.job.finish()
            whole_file_failures = {str(Path(str(getattr(e, "path", ""))).resolve()) for e in report.failed}
            for dest, backup in placed:
                if str(dest.resolve()) in whole_file_failures:
                    restore(dest, backup)
                    notes.append(f"{dest.name} was not kept in the corpus"
                                 + (" (the previous version is back)" if backup else ""))
            return report

    def reindex(self, kb: str, user: str | None = None):
        self._require_add(user, kb, "re-index")
        yield f"<p>{SPIN} Re-indexing the corpus folder…</p>", self.status_html(user)
        box = None
        for box, text in self._watch(lambda: self.run_index_job(kb, "re-indexing"), "re-index"):
            if box is None:
                yield f"<p>{SPIN} {esc(text)}</p>", self.status_html(user)
        if "error" in box:
            yield render_report(None, [f"re-indexing failed: {box['error']}"]), self.status_html(user)
        else:
            yield render_report(box["value"]), self.status_html(user)

    def watch_status(self, user: str | None):
        """On page load: follow the start-up indexing until it is over, then show the status."""
        while not self.started.is_set():
            yield self.status_html(user)
            self.started.wait(timeout=0.5)
        yield self.status_html(user)
