"""The chat window: cited answers you can check in one click.

    python ui.py [--index index/] [--corpus corpus/] [--host 127.0.0.1] [--port 7860] [--share]

One page: a multi-turn chat whose answers carry markers [n]; beside it the sources panel, where each
citation shows its file, page and character range and the cited sentence highlighted inside its
passage (click a marker to bring it into view); uploads into the corpus, indexed incrementally;
the index status with a re-index button; settings for k and the retrieval mode. The same answers
are served to scripts by the named API endpoint `ask` (gradio_client: client.predict(q, api_name="/ask")).

Shared state is only what must be shared: the settings, the open Index (safe for concurrent
searches while one writer adds files) and the progress of the one indexing job at a time. Each
browser session keeps its own conversation in a gr.State; every request builds new values.
"""

from __future__ import annotations

import argparse
import html
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".jsonl")
MAX_UPLOAD_MB = 50
MODES = ("hybrid", "dense", "bm25")
MARKER = re.compile(r"\[(\d+)\]")
SPIN = '<span class="rag-spin"></span>'  # a CSS spinner: emoji need fonts a server may lack
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")

# --------------------------------------------------------------------------------------------
# Pure rendering: answer dicts (Answer.to_dict()) and reports in, Markdown/HTML strings out.
# Everything taken from documents or users is escaped; only our own tags reach the page.
# --------------------------------------------------------------------------------------------


def esc(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def escape_markdown(text: str) -> str:
    """Plain text for the chat bubble, which renders Markdown: no HTML, no emphasis, no lists."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape("" if text is None else str(text), quote=False))


def anchor_prefix(turn: int, last: int) -> str:
    """Citations of the latest answer are #src-n; earlier answers keep theirs as #src-<turn>-n."""
    return "src-" if turn == last else f"src-{turn + 1}-"


def render_answer_markdown(answer: dict, prefix: str = "src-") -> str:
    """The answer text for the chat, with each marker [n] a link to its source in the panel."""
    text = answer.get("text") or ""
    known = {c.get("n") for c in answer.get("citations") or []}
    out, pos = [], 0
    for m in MARKER.finditer(text):
        out.append(escape_markdown(text[pos : m.start()]))
        n = int(m.group(1))
        if n in known:
            out.append(f'<a href="#{prefix}{n}" class="rag-cite" title="show source {n}">[{n}]</a>')
        else:
            out.append(escape_markdown(m.group(0)))
        pos = m.end()
    out.append(escape_markdown(text[pos:]))
    body = "".join(out)
    if answer.get("abstained"):
        body += f'\n\n<a href="#{prefix}related" class="rag-cite">closest passages →</a>'
    return body


def split_highlight(passage_text: str, passage_start: int, start: int, end: int, cited: str):
    """(before, cited, after) of the passage around the span, or None if the offsets do not fit."""
    a, b = start - passage_start, end - passage_start
    if 0 <= a <= b <= len(passage_text) and passage_text[a:b] == cited:
        return passage_text[:a], passage_text[a:b], passage_text[b:]
    return None


def location(source: str, page, start=None, end=None) -> str:
    parts = [f'<span class="rag-file">{esc(source)}</span>']
    if page is not None:
        parts.append(f'<span class="rag-page">page {esc(page)}</span>')
    if start is not None and end is not None:
        parts.append(f'<span class="rag-range">chars {esc(start)}–{esc(end)}</span>')
    return " · ".join(parts)


def open_link(file_url: Callable | None, source: str, page) -> str:
    url = file_url(source, page) if file_url else None
    if not url:
        return ""
    return f' <a class="rag-open" href="{esc(url)}" target="_blank" rel="noopener">open</a>'


def render_sources(answer: dict, prefix: str = "src-", file_url: Callable | None = None) -> str:
    """The sources of one answer: each citation with its sentence highlighted in its passage."""
    passages = answer.get("passages") or []
    citations = answer.get("citations") or []
    parts = []
    if answer.get("abstained") or not citations:
        parts.append(
            '<div class="rag-abstain"><strong>No answer:</strong> the indexed documents do not '
            "support one clearly enough, so nothing is cited.</div>"
        )
        parts.append(f'<div id="{prefix}related" class="rag-related">')
        if passages:
            parts.append(f"<h4>Closest related passages ({len(passages)})</h4>")
            for i, p in enumerate(passages, 1):
                parts.append(
                    f'<section class="rag-src" id="{prefix}rel-{i}"><header>'
                    f'<span class="rag-n">{i}.</span> '
                    f'{location(p.get("source", "?"), p.get("page"), p.get("start"), p.get("end"))}'
                    f'<span class="rag-score">score {float(p.get("score") or 0):.3f}</span>'
                    f'{open_link(file_url, p.get("source", ""), p.get("page"))}</header>'
                    f'<p class="rag-passage">{esc(p.get("text", ""))}</p></section>'
                )
        else:
            parts.append("<p>No passage in the index is related to the question.</p>")
        parts.append("</div>")
        return "".join(parts)
    for c in citations:
        n = c.get("n")
        idx = c.get("passage", 0)
        p = passages[idx] if isinstance(idx, int) and 0 <= idx < len(passages) else None
        pieces = (
            split_highlight(p.get("text", ""), p.get("start", 0), c.get("start"), c.get("end"), c.get("text", ""))
            if p
            else None
        )
        if pieces:
            before, cited, after = pieces
            body = f"{esc(before)}<mark>{esc(cited)}</mark>{esc(after)}"
        else:  # offsets that do not fit the passage: show the cited text alone, still highlighted
            body = f"<mark>{esc(c.get('text', ''))}</mark>"
        parts.append(
            f'<section class="rag-src" id="{prefix}{esc(n)}"><header>'
            f'<span class="rag-n">[{esc(n)}]</span> '
            f'{location(c.get("source", "?"), c.get("page"), c.get("start"), c.get("end"))}'
            f'{open_link(file_url, c.get("source", ""), c.get("page"))}</header>'
            f'<p class="rag-passage">{body}</p></section>'
        )
    return "".join(parts)


def answer_footer(answer: dict) -> str:
    bits = []
    timings = answer.get("timings") or {}
    total = timings.get("total", sum(v for v in timings.values() if isinstance(v, (int, float))))
    if total:
        bits.append(f"{total:.2f} s")
    if answer.get("mode"):
        bits.append(esc(answer["mode"]))
    if answer.get("note"):
        bits.append(esc(answer["note"]))
    return f'<div class="rag-meta">{" · ".join(bits)}</div>' if bits else ""


def render_panel(turns: list[dict], file_url: Callable | None = None) -> str:
    """The whole sources panel: the latest answer open, earlier ones folded below it."""
    answered = [(t, turn) for t, turn in enumerate(turns) if turn.get("answer")]
    if not answered:
        return (
            '<div class="rag-empty">Ask a question: the passages each answer cites appear here, '
            "with the cited sentence highlighted.</div>"
        )
    last = len(turns) - 1
    out = []
    for t, turn in reversed(answered):
        answer = turn["answer"]
        prefix = anchor_prefix(t, last)
        sources = render_sources(answer, prefix, file_url) + answer_footer(answer)
        if t == last:
            out.append(f'<div class="rag-turn rag-latest" data-turn="{t + 1}">{sources}</div>')
        else:
            out.append(
                f'<details class="rag-turn" id="{prefix}turn"><summary>Earlier: {esc(turn["question"])}</summary>'
                f"{sources}</details>"
            )
    return "".join(out)


def render_chat(turns: list[dict]) -> list[dict]:
    """Chatbot messages (gradio's messages format) for the conversation so far."""
    messages = []
    last = len(turns) - 1
    for t, turn in enumerate(turns):
        messages.append({"role": "user", "content": escape_markdown(turn["question"])})
        if turn.get("answer"):
            content = render_answer_markdown(turn["answer"], anchor_prefix(t, last))
        elif turn.get("error"):
            content = f'<span class="rag-error">Error:</span> {escape_markdown(turn["error"])}'
        else:
            content = f'<span class="rag-spin"></span> {escape_markdown(turn.get("pending") or "…")}'
        messages.append({"role": "assistant", "content": content})
    return messages


def history_for(turns: list[dict]) -> list[dict]:
    """The conversation as plain text for ask(history=...): what was asked and what was answered."""
    history = []
    for turn in turns:
        if turn.get("answer"):
            history.append({"role": "user", "content": turn["question"]})
            history.append({"role": "assistant", "content": turn["answer"].get("text", "")})
    return history


def human_size(n: int | float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def render_status(status: dict | None, job: dict | None = None, error: str = "") -> str:
    """The one-line index status, with the running job's progress if any."""
    if error:
        return f'<div class="rag-status rag-bad">Error: {esc(error)}</div>'
    parts = []
    if status is not None:
        parts.append(
            f"{_count(status.get('documents'), 'document')}"
            + (f" in {_count(status['files'], 'file')}" if status.get("files") not in (None, status.get("documents")) else "")
            + f" · {_count(status.get('chunks'), 'chunk')}"
            f" · model <code>{esc(status.get('model', '?'))}</code>"
            f" · {human_size(status.get('size_bytes'))}"
        )
        failed = status.get("failed") or []
        if failed:
            names = ", ".join(esc(Path(str(f.get("path", "?"))).name) for f in failed[:5])
            parts.append(f'<span class="rag-bad">{len(failed)} file(s) failed: {names}</span>')
    else:
        parts.append("opening the index…")
    if job and job.get("running"):
        parts.append(f'<span class="rag-busy"><span class="rag-spin"></span> {esc(format_progress(job))}</span>')
    return f'<div class="rag-status">{" · ".join(parts)}</div>'


def _count(n, noun: str) -> str:
    n = int(n or 0)
    return f"<b>{n}</b> {noun}{'' if n == 1 else 's'}"


def format_progress(job: dict) -> str:
    stage, done, total = job.get("stage") or "working", job.get("done", 0), job.get("total", 0)
    label = job.get("label") or "indexing"
    if total:
        return f"{label}: {stage} {done}/{total}"
    return f"{label}: {stage}…"


def render_report(report: Any, notes: list[str] | None = None, rejected: list[tuple[str, str]] | None = None) -> str:
    """What an upload or re-index did, file by file; failures by name and reason."""
    lines = []
    for name, reason in rejected or []:
        lines.append(f'<li class="rag-bad">✗ <b>{esc(name)}</b>: {esc(reason)}</li>')
    if report is not None:
        failed = list(getattr(report, "failed", []) or [])
        for e in failed:
            name = Path(str(getattr(e, "path", "?"))).name
            line = getattr(e, "line", None)
            extra = f" line {line}" if line is not None else ""
            lines.append(f'<li class="rag-bad">✗ <b>{esc(name)}</b>{esc(extra)}: {esc(getattr(e, "reason", e))}</li>')
        for name in getattr(report, "added", []) or []:
            lines.append(f'<li class="rag-ok">✓ <b>{esc(name)}</b> indexed</li>')
        for name in getattr(report, "removed", []) or []:
            lines.append(f"<li>– <b>{esc(name)}</b> removed from the index (no longer in the corpus)</li>")
        unchanged = getattr(report, "unchanged", 0) or 0
        embedded = getattr(report, "embedded", 0) or 0
        summary = []
        if embedded or getattr(report, "added", None):
            summary.append(f"{embedded} new chunk(s) embedded")
        if unchanged:
            summary.append(f"{unchanged} file(s) unchanged")
        if summary:
            lines.append(f"<li>{esc(', '.join(summary))}</li>")
    for note in notes or []:
        lines.append(f"<li>{esc(note)}</li>")
    return '<ul class="rag-report">' + "".join(lines) + "</ul>"


# --------------------------------------------------------------------------------------------
# Uploads: checked on the server whatever the browser did.
# --------------------------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"[^\w.\- ()+,@]+", re.UNICODE)


def safe_filename(name: str) -> str | None:
    """A plain file name to store under the corpus folder, or None when there is none to keep."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if not base or base.startswith(".") or base in (".", ".."):
        return None
    return base[:200]


def check_upload(path: str | Path, name: str, max_bytes: int) -> str | None:
    """Why an uploaded file cannot go into the corpus, or None when it may."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        return f"file type {suffix or '(none)'} is not accepted; use one of {', '.join(UPLOAD_SUFFIXES)}"
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return f"cannot read the upload: {e.strerror or e}"
    if size > max_bytes:
        return f"too large ({human_size(size)}; the limit is {human_size(max_bytes)})"
    if size == 0:
        return "empty file"
    return None


def inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# The application: one Index, one writer at a time, any number of readers.
# --------------------------------------------------------------------------------------------


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
    def __init__(self, settings, max_upload_mb: float = MAX_UPLOAD_MB):
        self.settings = settings
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
        from rag import Index, RagError

        self.job.start("opening the index")
        try:
            self.corpus_dir.mkdir(parents=True, exist_ok=True)
            self.index = Index.open(self.index_dir, settings=self.settings, create=True, upgrade=True)
        except RagError as e:
            self.open_error = str(e)
        except Exception as e:  # noqa: BLE001 - the page must say why, not hang
            self.open_error = f"cannot open the index: {type(e).__name__}: {e}"
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
        return {"k": max(1, min(50, int(k))) if k else None, "mode": mode if mode in MODES else None}

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
        from rag import RagError, ask

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
        from rag import RagError, ask

        if not (question or "").strip():
            raise ValueError("question is empty")
        self.wait_ready()
        if self.index is None:
            raise RagError(self.open_error or "the index could not be opened")
        return ask(question.strip(), index=self.index, **self._choices(k, mode)).to_dict()

    # ---- uploads and re-indexing: generators yielding (report html, status html) ----
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

    def upload(self, files):
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
                    _restore(dest, backup)
                raise
            finally:
                self.job.finish()
            whole_file_failures = {str(Path(str(getattr(e, "path", ""))).resolve()) for e in report.failed}
            for dest, backup in placed:
                if str(dest.resolve()) in whole_file_failures:
                    _restore(dest, backup)
                    notes.append(
                        f"{dest.name} was not kept in the corpus"
                        + (" (the previous version is back)" if backup else "")
                    )
            return report

    def reindex(self):
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


def _restore(dest: Path, backup: Path | None):
    try:
        if backup is not None:
            shutil.copy2(backup, dest)
        else:
            dest.unlink(missing_ok=True)
    except OSError:
        pass


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

CSS = """
#rag-sources { max-height: 640px; overflow-y: auto; }
.rag-src { border-width: 1px; border-style: solid; border-color: var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin: 0 0 10px 0; scroll-margin-top: 8px; transition: box-shadow .3s, border-color .3s; }
.rag-src:target, .rag-src.rag-flash { border-color: var(--color-accent); box-shadow: 0 0 0 3px var(--color-accent-soft); }
.rag-src header { font-size: 0.85em; margin-bottom: 4px; color: var(--body-text-color-subdued); }
.rag-src .rag-n { font-weight: 700; color: var(--color-accent); }
.rag-src .rag-file { font-weight: 600; color: var(--body-text-color); }
.rag-src .rag-score { margin-left: 6px; }
.rag-src .rag-open { margin-left: 6px; }
.rag-passage { margin: 0; line-height: 1.5; white-space: pre-wrap; font-size: 0.92em; }
.rag-passage mark { background: #fde68a; color: #111; padding: 0 2px; border-radius: 3px; }
.rag-abstain { padding: 8px 10px; margin-bottom: 10px; border-radius: 8px;
  background: var(--color-accent-soft); }
.rag-related h4 { margin: 6px 0; }
.rag-meta { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 4px 0 12px; }
.rag-turn > summary { cursor: pointer; margin: 6px 0; color: var(--body-text-color-subdued); }
.rag-empty { color: var(--body-text-color-subdued); padding: 12px; }
.rag-status { font-size: 0.9em; }
.rag-bad { color: #b91c1c; }
.rag-ok { color: #15803d; }
.rag-busy { color: var(--color-accent); }
.rag-report { margin: 4px 0; padding-left: 1.2em; font-size: 0.9em; }
a.rag-cite { text-decoration: none; font-weight: 600; }
.rag-error { color: #b91c1c; font-weight: 600; }
.rag-spin { display: inline-block; width: 0.8em; height: 0.8em; vertical-align: -0.05em;
  border-width: 2px; border-style: solid; border-color: #fed7aa; border-top-color: #f97316;
  border-radius: 50%; animation: rag-spin 0.8s linear infinite; }
@keyframes rag-spin { to { transform: rotate(360deg); } }
"""

# Clicking a marker scrolls its source into view inside the panel and flashes it; a marker of an
# earlier answer opens that answer's folded sources first. Delegated, so it survives re-renders.
HEAD = """
<script>
document.addEventListener('click', function (event) {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  const target = document.getElementById(link.getAttribute('href').slice(1));
  if (!target) return;
  event.preventDefault();
  event.stopPropagation();
  for (let d = target.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
  target.scrollIntoView({behavior: 'smooth', block: 'nearest'});
  document.querySelectorAll('.rag-flash').forEach(function (e) { e.classList.remove('rag-flash'); });
  target.classList.add('rag-flash');
}, true);
</script>
"""


def build_app(settings, max_upload_mb: float = MAX_UPLOAD_MB) -> "gr.Blocks":
    """The chat window over settings.index_dir and settings.corpus_dir; start-up indexing begins now."""
    import gradio as gr

    app = ChatApp(settings, max_upload_mb=max_upload_mb)
    with gr.Blocks(title="Ask your documents") as demo:
        demo.rag_app = app  # for launch() and tests
        gr.Markdown("## Ask your documents\nAnswers cite the exact sentences they come from: click a marker [n] to check it.")
        with gr.Row(equal_height=True, elem_id="rag-docbar"):
            status = gr.HTML(app.status_html(), elem_id="rag-status", scale=4)
            upload_btn = gr.UploadButton(
                "Add documents",
                elem_id="rag-upload",
                file_count="multiple",
                file_types=list(UPLOAD_SUFFIXES),
                type="filepath",
                size="sm",
                scale=0,
                min_width=150,
            )
            reindex_btn = gr.Button("Re-index", elem_id="rag-reindex", size="sm", scale=0, min_width=110)
        upload_log = gr.HTML("", elem_id="rag-upload-log")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chatbot = gr.Chatbot(
                    elem_id="rag-chat",
                    label="Chat",
                    height=540,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Ask something your documents answer, e.g. *How many U.S. presidents has Putin outlasted?*",
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        elem_id="rag-question",
                        show_label=False,
                        placeholder="Ask a question and press Enter",
                        scale=5,
                        lines=1,
                        max_lines=4,
                        autofocus=True,
                    )
                    ask_btn = gr.Button("Ask", variant="primary", elem_id="rag-ask", scale=1, min_width=80)
                with gr.Row(equal_height=False):
                    clear_btn = gr.Button("New conversation", size="sm", elem_id="rag-clear", scale=0, min_width=160)
                with gr.Accordion("Settings", open=False):
                    k = gr.Slider(1, 20, value=settings.k, step=1, label="Passages to retrieve (k)", elem_id="rag-k")
                    mode = gr.Radio(
                        list(MODES),
                        value=settings.mode,
                        label="Retrieval mode",
                        info="hybrid = meaning (dense) + keywords (BM25)",
                        elem_id="rag-mode",
                    )
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources")
                sources = gr.HTML(render_panel([]), elem_id="rag-sources")
        turns = gr.State([])

        chat_io = dict(
            fn=app.chat,
            inputs=[question, turns, k, mode],
            outputs=[chatbot, sources, turns, question],
            concurrency_limit=4,
            concurrency_id="chat",
            api_visibility="private",
            show_progress="hidden",  # the pending message has its own spinner and words
        )
        question.submit(**chat_io)
        ask_btn.click(**chat_io)
        clear_btn.click(
            lambda: ([], render_panel([]), [], ""),
            outputs=[chatbot, sources, turns, question],
            api_visibility="private",
            queue=False,
        )
        upload_btn.upload(
            app.upload,
            inputs=upload_btn,
            outputs=[upload_log, status],
            concurrency_limit=1,
            concurrency_id="index",
            api_visibility="private",
            show_progress="hidden",
        )
        reindex_btn.click(
            app.reindex,
            outputs=[upload_log, status],
            concurrency_limit=1,
            concurrency_id="index",
            api_visibility="private",
            show_progress="hidden",
        )
        demo.load(app.watch_status, outputs=status, api_visibility="private", concurrency_limit=None, show_progress="hidden")
        gr.api(app.api_ask, api_name="ask", concurrency_limit=4, concurrency_id="chat")
    app.start()
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True, **kw):
    """Launch with what the page needs: our CSS and script, the corpus served, uploads capped."""
    app: ChatApp = demo.rag_app
    demo.queue(default_concurrency_limit=2)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=[str(app.corpus_dir)],
        max_file_size=app.max_upload_bytes,
        css=CSS,
        head=HEAD,
        prevent_thread_lock=not block,
        footer_links=["api", "gradio"],
        **kw,
    )


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ui.py", description="The chat window over your documents, with cited answers.")
    p.add_argument("--index", default=None, help="index folder (default: index/, or RAG_INDEX_DIR)")
    p.add_argument("--corpus", default=None, help="corpus folder indexed at start and where uploads go (default: corpus/)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
        help="port (default 7860, or GRADIO_SERVER_PORT)",
    )
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--k", type=int, default=None, help="passages to retrieve (default 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default hybrid)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"largest accepted upload (default {MAX_UPLOAD_MB})")
    return p.parse_args(argv)


def main(argv=None, settings=None) -> int:
    """Run the window until interrupted. `settings` (e.g. from `rag chat`) is the base; flags override it."""
    args = parse_args(argv)
    from rag import RagError, Settings

    try:
        overrides = dict(index_dir=args.index, corpus_dir=args.corpus, k=args.k, mode=args.mode)
        if settings is None:
            settings = Settings.from_env(**overrides)
        else:
            settings = settings.replace(**overrides)
            settings.index_dir, settings.corpus_dir = Path(settings.index_dir), Path(settings.corpus_dir)
            settings.validate()
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"index {settings.index_dir} over {settings.corpus_dir}; indexing progress is shown on the page", file=sys.stderr)
    demo = build_app(settings, max_upload_mb=args.max_upload_mb)
    launch(demo, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
