"""The chat's state and handlers: one Index, one writer at a time, any number of readers.

Shared state is only what must be shared: the settings, the open Index (safe for concurrent
searches while one writer adds files) and the progress of the one indexing job at a time. Each
browser session keeps its own conversation in a gr.State; every request builds new values.
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

from ..answer import ask
from ..config import MODES
from ..errors import AccessError, RagError, explain
from ..index import Index
from .access import Access
from .render import (SPIN, esc, format_progress, history_for, render_chat, render_panel, render_report,
                     render_status)
from .uploads import MAX_UPLOAD_MB, check_upload, inside, restore, safe_filename

MAX_K = 20  # passages a question may ask for: the slider's end, and the handler's clamp


class Job:
    """Progress of the current indexing job, shared by every page that shows it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {"running": False, "stage": "", "done": 0, "total": 0, "label": ""}

    def start(self, label: str):
        with self._lock:
            self._state = {"running": True, "stage": "starting", "done": 0, "total": 0, "label": label}

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
    def __init__(self, settings, max_upload_mb: float = MAX_UPLOAD_MB, access: Access | None = None):
        self.settings = settings
        self.access = access or Access.from_settings(settings)
        self.corpus_dir = Path(settings.corpus_dir).resolve()
        self.index_dir = Path(settings.index_dir)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.index = None
        self.open_error = ""
        self.opened = threading.Event()  # the Index is open (or failed to open)
        self.first_sync = threading.Event()  # the start-up pass over the corpus is over
        self.write_lock = threading.Lock()  # one writer at a time; readers never wait for it
        self.job = Job()
        self._started = False

    # ---- start-up: open the index, then bring it up to date with the corpus folder ----
    def start(self):
        if self._started:
            return
        self._started = True
        threading.Thread(target=self._startup, name="rag-startup", daemon=True).start()

    def _startup(self):
        self.job.start("opening the index")
        try:
            self.corpus_dir.mkdir(parents=True, exist_ok=True)
            self.index = Index.open(self.index_dir, settings=self.settings, create=True, upgrade=True)
        except RagError as e:
            self.open_error = str(e)
        except Exception as e:  # noqa: BLE001 - the page must say why, not hang
            self.open_error = explain(e, self.index_dir) or f"cannot open the index: {type(e).__name__}: {e}"
        finally:
            self.job.finish()
            self.opened.set()
        if self.index is not None:
            try:
                self.run_index_job([self.corpus_dir], "building the index")
            except Exception as e:  # noqa: BLE001
                print(f"indexing {self.corpus_dir} failed: {e}", file=sys.stderr)
        self.first_sync.set()

    def run_index_job(self, paths, label: str):
        """index.add under the writer lock, with progress into the shared Job."""
        with self.write_lock:
            self.job.start(label)
            last_print = [0.0]

            def progress(stage, done, total):
                self.job.update(stage, done, total)
                now = time.monotonic()
                if now - last_print[0] > 2 or done == total:
                    last_print[0] = now
                    print(f"  {label}: {stage} {done}/{total}", file=sys.stderr, flush=True)

            try:
                return self.index.add([str(p) for p in paths], progress=progress)
            finally:
                self.job.finish()

    def status(self) -> dict | None:
        if self.index is None:
            return None
        try:
            status = self.index.status()
        except Exception:  # noqa: BLE001 - the status line must never break the page
            return None
        # a failed upload is taken back out of the corpus: its old failure is no longer news
        status["failed"] = [f for f in status.get("failed") or [] if Path(str(f.get("path", ""))).exists()]
        return status

    def status_html(self) -> str:
        return render_status(self.status(), self.job.snapshot(), self.open_error)

    def file_url(self, source: str, page=None) -> str | None:
        """A link that serves an indexed file, only for files inside the corpus folder."""
        if not source:
            return None
        path = self.corpus_dir / source
        if not inside(path, self.corpus_dir) or not path.is_file():
            return None
        url = "gradio_api/file=" + quote(str(path.resolve()))
        if page:
            url += f"#page={int(page)}"
        return url

    @staticmethod
    def _choices(k, mode) -> dict:
        """ask()'s k and mode from the page's settings; empty or unknown values keep the defaults."""
        return {"k": max(1, min(MAX_K, int(k))) if k else None, "mode": mode if mode in MODES else None}

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the index is open and, if it started empty, built once."""
        if not self.opened.wait(timeout):
            return False
        if self.index is None:
            return True
        status = self.status() or {}
        if status.get("documents", 0) == 0:
            return self.first_sync.wait(timeout)
        return True

    # ---- the chat: a generator, so the page shows progress and then the answer ----
    def chat(self, question: str, turns: list[dict], k, mode):
        question = (question or "").strip()
        turns = list(turns or [])
        if not question:
            yield render_chat(turns), render_panel(turns, self.file_url), turns, ""
            return
        history = history_for(turns)
        pending = {"question": question, "pending": "Searching the documents…"}
        work = turns + [pending]
        yield render_chat(work), render_panel(turns, self.file_url), work, ""

        waited = False
        while not self.wait_ready(timeout=0.5):
            waited = True
            pending = {**pending, "pending": f"Waiting for the index ({format_progress(self.job.snapshot())})"}
            work = turns + [pending]
            yield render_chat(work), render_panel(turns, self.file_url), work, ""
        if waited:
            work = turns + [{"question": question, "pending": "Searching the documents…"}]
            yield render_chat(work), render_panel(turns, self.file_url), work, ""
        if self.index is None:
            work = turns + [{"question": question, "error": self.open_error or "the index could not be opened"}]
            yield render_chat(work), render_panel(turns, self.file_url), work, ""
            return

        tokens: queue.Queue = queue.Queue()
        result: dict = {}

        def run():
            try:
                result["answer"] = ask(
                    question,
                    index=self.index,
                    history=history,
                    on_token=tokens.put,
                    **self._choices(k, mode),
                )
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
                yield render_chat(work), render_panel(turns, self.file_url), work, ""
        if "answer" in result:
            done = turns + [{"question": question, "answer": result["answer"].to_dict()}]
        else:
            done = turns + [{"question": question, "error": result.get("error", "no answer")}]
        yield render_chat(done), render_panel(done, self.file_url), done, ""

    # ---- the API: the same answer as the window, as Answer.to_dict() ----
    def api_ask(self, question: str, k: int = 0, mode: str = "") -> dict:
        if not (question or "").strip():
            raise ValueError("question is empty")
        self.wait_ready()
        if self.index is None:
            raise RagError(self.open_error or "the index could not be opened")
        return ask(question.strip(), index=self.index, **self._choices(k, mode)).to_dict()

    # ---- uploads and re-indexing: generators yielding (report html, status html) ----
    def _require_add(self, user: str | None, action: str):
        """Refused server-side whatever the page showed: the user comes from the login, not the request body."""
        try:
            self.access.require_add(user)
        except AccessError:
            print(f"refused: {action} by {user or 'a user without login'}", file=sys.stderr, flush=True)
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

    def upload(self, files, user: str | None = None):
        self._require_add(user, "upload")
        files = files if isinstance(files, list) else ([files] if files else [])
        if not files:
            yield "<p>No file received.</p>", self.status_html()
            return
        yield f'<p>{SPIN} Received {len(files)} file(s)…</p>', self.status_html()
        if not self.opened.wait(timeout=None) or self.index is None:
            yield render_report(None, [self.open_error or "the index is not open"]), self.status_html()
            return
        rejected, accepted, notes = [], [], []  # accepted: (dest, backup or None, name)
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
                yield render_report(None, rejected=rejected), self.status_html()
                return
            box = None
            for box, text in self._watch(lambda: self._store_and_index(accepted, staging, notes), "upload"):
                if box is None:
                    yield f"<p>{SPIN} {esc(text)}</p>", self.status_html()
            if "error" in box:
                notes.append(f"indexing failed: {box['error']}; the index keeps its last good state")
                yield render_report(None, notes, rejected), self.status_html()
            else:
                yield render_report(box["value"], notes, rejected), self.status_html()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _store_and_index(self, accepted, staging: Path, notes: list[str]):
        """Copy uploads into the corpus, index them, and take back those that could not be read."""
        with self.write_lock:
            placed = []  # (dest, backup or None)
            for src, name in accepted:
                dest = self.corpus_dir / name
                if not inside(dest, self.corpus_dir):
                    continue
                backup = None
                if dest.exists():
                    backup = staging / (name + ".previous")
                    shutil.copy2(dest, backup)
                    notes.append(f"{name} replaced the file of the same name")
                tmp = self.corpus_dir / f".{name}.uploading"
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
                placed.append((dest, backup))
            self.job.start("indexing uploads")
            try:
                report = self.index.add([str(d) for d, _ in placed], progress=self.job.update)
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
                    notes.append(
                        f"{dest.name} was not kept in the corpus"
                        + (" (the previous version is back)" if backup else "")
                    )
            return report

    def reindex(self, user: str | None = None):
        self._require_add(user, "re-index")
        if not self.opened.wait(timeout=None) or self.index is None:
            yield render_report(None, [self.open_error or "the index is not open"]), self.status_html()
            return
        yield f"<p>{SPIN} Re-indexing the corpus folder…</p>", self.status_html()
        box = None
        for box, text in self._watch(lambda: self.run_index_job([self.corpus_dir], "re-indexing"), "re-index"):
            if box is None:
                yield f"<p>{SPIN} {esc(text)}</p>", self.status_html()
        if "error" in box:
            yield render_report(None, [f"re-indexing failed: {box['error']}"]), self.status_html()
        else:
            yield render_report(box["value"]), self.status_html()

    def watch_status(self):
        """On page load: follow the start-up indexing until it is over, then show the status."""
        while not (self.opened.is_set() and self.first_sync.is_set()):
            yield self.status_html()
            time.sleep(0.5)
        yield self.status_html()
