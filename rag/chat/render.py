"""Pure rendering for the chat: answer dicts (Answer.to_dict()) and reports in, Markdown/HTML out.

Everything taken from documents or users is escaped; only our own tags reach the page.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable

from ..load import skipped_summary
from ..model import LOW_CONFIDENCE, WITHHELD
from ..pages.view import view_query

MARKER = re.compile(r"\[(\d+)\]")
SPIN = '<span class="rag-spin"></span>'  # a CSS spinner: emoji need fonts a server may lack
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")

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
    elif is_low_confidence(answer):
        body += (f'\n\n<span class="rag-low" title="the cited sentences more likely miss the answer than hold it">'
                 f'low confidence ({float(answer["confidence"]):.2f})</span>')
    return body


def is_low_confidence(answer: dict) -> bool:
    """An answer given with a confidence below LOW_CONFIDENCE (answers without one are not marked)."""
    c = answer.get("confidence")
    return not answer.get("abstained") and isinstance(c, (int, float)) and c < LOW_CONFIDENCE


def split_highlight(passage_text: str, passage_start: int, start: int, end: int, cited: str):
    """(before, cited, after) of the passage around the span, or None if the offsets do not fit."""
    a, b = start - passage_start, end - passage_start
    if 0 <= a <= b <= len(passage_text) and passage_text[a:b] == cited:
        return passage_text[:a], passage_text[a:b], passage_text[b:]
    return None


def location(item: dict) -> str:
    """Where a citation or passage lies: its knowledge base, file, page, OCR mark and character range."""
    source, page, start, end, ocr = (item.get(k) for k in ("source", "page", "start", "end", "ocr"))
    parts = [f'<span class="rag-kb" title="knowledge base">{esc(item["kb"])}</span>'] if item.get("kb") else []
    parts.append(f'<span class="rag-file">{esc(source or "?")}</span>')
    if page is not None:
        parts.append(f'<span class="rag-page">page {esc(page)}</span>')
    if ocr:  # quoted exactly as stored, but the stored text is what OCR read: it may misread
        parts.append('<span class="rag-ocr" title="text read from the page image by OCR">(OCR)</span>')
    if start is not None and end is not None:
        parts.append(f'<span class="rag-range">chars {esc(start)}–{esc(end)}</span>')
    return " · ".join(parts)


def open_link(file_url: Callable | None, item: dict) -> str:
    """An "open" link to the file of a citation or passage: file_url(kb, source, page) gives its URL, or None."""
    url = file_url(item.get("kb") or "", item.get("source") or "", item.get("page")) if file_url else None
    if not url:
        return ""
    return f' <a class="rag-open" href="{esc(url)}" target="_blank" rel="noopener">open</a>'


def view_link(citations: list[dict], i: int) -> str:
    """A link to the page view of citations[i] (/cite: the page with the cited lines highlighted, or the text with
    the span), which chat.js opens in an overlay; the link carries every citation's span, for previous and next."""
    c = citations[i]
    if not c.get("kb") or not c.get("source"):
        return ""
    label, title = (("page", "the cited lines on the page") if c.get("page") is not None or c.get("ocr")
                    else ("in context", "the cited sentence in its document"))
    return (f' <a class="rag-view" href="cite?{esc(view_query(citations, i))}" target="_blank" rel="noopener" '
            f'title="{title}">{label}</a>')


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
                if p.get("withheld"):
                    parts.append(f'<section class="rag-src rag-withheld" id="{prefix}rel-{i}"><header>'
                                 f'<span class="rag-n">{i}.</span> {WITHHELD}</header></section>')
                    continue
                parts.append(
                    f'<section class="rag-src" id="{prefix}rel-{i}"><header>'
                    f'<span class="rag-n">{i}.</span> '
                    f'{location(p)}'
                    f'<span class="rag-score">score {float(p.get("score") or 0):.3f}</span>'
                    f'{open_link(file_url, p)}</header>'
                    f'<p class="rag-passage">{esc(p.get("text", ""))}</p></section>'
                )
        else:
            parts.append("<p>No passage in the index is related to the question.</p>")
        parts.append("</div>")
        return "".join(parts)
    for i, c in enumerate(citations):
        n = c.get("n")
        if c.get("withheld"):  # into a KB the reader may no longer read: nothing of it is shown
            parts.append(f'<section class="rag-src rag-withheld" id="{prefix}{esc(n)}"><header>'
                         f'<span class="rag-n">[{esc(n)}]</span> {WITHHELD}</header></section>')
            continue
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
            f'{location(c)}'
            f'{open_link(file_url, c)}{view_link(citations, i)}</header>'
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
    if isinstance(answer.get("confidence"), (int, float)):
        bits.append(f"confidence {float(answer['confidence']):.2f}")
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
    """The conversation as plain text for ask(history=...): what was asked, written out as it was searched
    (so a follow-up of a follow-up still knows its subject), and what was answered."""
    history = []
    for turn in turns:
        if turn.get("answer"):
            history.append({"role": "user", "content": turn["answer"].get("resolved_question") or turn["question"]})
            history.append({"role": "assistant", "content": turn["answer"].get("text", "")})
    return history


def human_size(n: int | float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def render_status(statuses: dict[str, dict | None], job: dict | None = None, errors: dict[str, str] | None = None) -> str:
    """One line per knowledge base the viewer may read (its name only when there are several), with the running
    job's progress if it is one of theirs."""
    lines = []
    for kb, status in statuses.items():
        parts = [f'<span class="rag-kb">{esc(kb)}</span>'] if len(statuses) > 1 else []
        if (errors or {}).get(kb):
            parts.append(f'<span class="rag-bad">Error: {esc(errors[kb])}</span>')
        elif status is not None:
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
        if job and job.get("running") and job.get("kb") == kb:
            parts.append(f'<span class="rag-busy"><span class="rag-spin"></span> {esc(format_progress(job))}</span>')
        lines.append(" · ".join(parts))
    if not lines:
        lines.append("No knowledge base you may read: ask whoever runs this server to grant you one.")
    return '<div class="rag-status">' + "<br>".join(lines) + "</div>"


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
        if getattr(report, "skipped", None):
            lines.append(f"<li>– {esc(skipped_summary(report.skipped))}</li>")
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
