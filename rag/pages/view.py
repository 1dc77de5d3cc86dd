"""The page view of one citation, as a standalone HTML page (a pure function: the server gives the URLs).

A PDF citation shows its page image (render.py, the cited lines highlighted) with each line marked over
it and scrolled into view, zoomable, the quoted text beside it and a link to the whole PDF at that page;
an OCR page says so and shows the highlighted region of the scan beside the quote, so the reader
compares the two. A citation into a .docx, .html or text file shows the document text with the span
highlighted and scrolled to. The previous and next citations are one click away (or ← →); Esc asks the
chat that shows the view in its overlay to close it. Every text and URL is escaped: the document's text is data,
never markup, and the page's policy (CSP) runs no script but its own.

The view is stateless: its link carries every citation's span of the answer (`view_query`), and the server
reads them back (`read_spans`), checks who asks, and takes the quote from the stored text by the offsets.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from urllib.parse import urlencode

from ..errors import RagError
from ..model import Citation

CONTEXT = 20_000  # characters of a long document shown either side of the span

_STYLE = """
body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d1d1f;background:#f4f4f6}
header{position:sticky;top:0;z-index:2;display:flex;gap:.75em;align-items:center;padding:.5em 3em .5em 1em;
 background:#fff;border-bottom:1px solid #ddd}
header .where{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
a.off{pointer-events:none;color:#aaa}
main{display:flex;gap:1em;padding:1em;align-items:flex-start}
.page{position:relative;flex:none;width:calc(var(--zoom,1)*var(--w)*1px);box-shadow:0 1px 4px #0003;background:#fff}
.page img{display:block;width:100%}
.page .line{position:absolute;scroll-margin:30vh}
aside{flex:1;min-width:16em;position:sticky;top:4em}
blockquote{margin:0 0 1em;padding:.75em 1em;background:#fff8d6;border-left:4px solid #e88c00;white-space:pre-wrap}
.ocr{padding:.5em .75em;background:#eef3ff;border-radius:4px}
.scan{max-width:100%;border:1px solid #ccc}
pre.doc{flex:1;margin:0;padding:1em;background:#fff;white-space:pre-wrap;word-wrap:break-word;font:inherit}
pre.doc mark{background:#ffd84d;scroll-margin:30vh}
"""

_SCRIPT = """
const page = document.querySelector('.page');
function zoom(f){ if(page){ const z = Math.min(4, Math.max(0.25, (+page.style.getPropertyValue('--zoom') || 1) * f));
  page.style.setProperty('--zoom', z); document.getElementById('zoom').textContent = Math.round(z * 100) + '%'; } }
for (const b of document.querySelectorAll('[data-zoom]')) b.addEventListener('click', () => zoom(+b.dataset.zoom));
const cited = document.getElementById('cited');
if (cited) cited.scrollIntoView({block: 'center'});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && window.parent !== window) window.parent.postMessage('rag-view-close', location.origin);
  const to = {ArrowLeft: 'prev', ArrowRight: 'next'}[e.key];
  const link = to && document.querySelector(`a[rel=${to}]:not(.off)`);
  if (link) location.href = link.href;
});
"""
# the view's own policy: its one script, inline styles, images of this server, shown only inside this server's pages
POLICY = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
          "frame-ancestors 'self'; script-src 'sha256-"
          + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode() + "'")
MAX_SPANS = 64  # citations a link may carry (answers cite one to a few)


def page_view(citation: Citation, *, position: tuple[int, int] = (1, 1), image_url: str = "", scan_url: str = "",
              file_url: str = "", previous_url: str = "", next_url: str = "", text: str | None = None,
              note: str = "") -> str:
    """The HTML page showing `citation` (number position[0] of position[1] in its answer).

    image_url: its page drawn with the lines highlighted (PDFs); scan_url: the highlighted region alone
    (OCR pages); file_url: the whole file (a PDF opens at the page); previous_url, next_url: the views of the
    neighbouring citations ("" where there is none); text: the document's stored text, shown when there
    is no page image (.docx, .html, text files, a PDF changed since it was indexed); note: said beside the quote."""
    c = citation
    where = escape(c.source) + (f", page {c.page}" if c.page is not None else "")
    to_file = f"{file_url}#page={c.page}" if file_url and c.page is not None else file_url
    nav = "".join(f'<a href="{escape(url, quote=True)}" class="{"" if url else "off"}" rel="{rel}">{label}</a>'
                  for url, rel, label in ((previous_url, "prev", "&larr; previous"), (next_url, "next", "next &rarr;")))
    head = (f'<header><span class="where">[{c.n}] {where} &middot; citation {position[0]} of {position[1]}</span>'
            f'{nav}')
    if image_url:
        head += ('<button type="button" data-zoom="0.8" aria-label="zoom out">&minus;</button>'
                 '<span id="zoom">100%</span><button type="button" data-zoom="1.25" aria-label="zoom in">+</button>')
    if to_file:
        head += f'<a href="{escape(to_file, quote=True)}" target="_blank" rel="noopener">open the whole file</a>'
    head += "</header>"
    aside = f'<aside><blockquote class="quote">{escape(c.text)}</blockquote>'
    if c.ocr:
        aside += ('<p class="ocr">This text was read from a scan by OCR: compare the quote with the scan itself'
                  f'{" below" if scan_url else ""}.</p>')
        if scan_url:
            aside += f'<img class="scan" src="{escape(scan_url, quote=True)}" alt="the cited region of the scan">'
    if image_url and not c.boxes:
        aside += '<p class="note">The sentence could not be placed on this page: find it by its words.</p>'
    if note:
        aside += f'<p class="note">{escape(note)}</p>'
    aside += "</aside>"
    if image_url:
        body = _page(c, image_url)
    elif text is not None:
        body = _document(text, c.start, c.end)
    else:
        body = ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>[{c.n}] {where}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
            f"<body>{head}<main>{body}{aside}</main><script>{_SCRIPT}</script></body></html>")


def _page(c: Citation, image_url: str) -> str:
    """The page image at its natural width in points (zoom scales it), each cited line marked over it."""
    width = c.page_width or 612
    lines = []
    for i, (left, top, right, bottom) in enumerate(c.boxes):
        style = ";".join(f"{k}:{v / size * 100:.3f}%" for k, v, size in (
            ("left", left, c.page_width), ("top", top, c.page_height),
            ("width", right - left, c.page_width), ("height", bottom - top, c.page_height)))
        lines.append(f'<span class="line"{" id=cited" if i == 0 else ""} style="{style}"></span>')
    return (f'<figure class="page" style="--w:{width:.2f};margin:0">'
            f'<img src="{escape(image_url, quote=True)}" alt="page {c.page} of {escape(c.source)}, the cited lines '
            f'highlighted">{"".join(lines)}</figure>')


def _document(text: str, start: int, end: int) -> str:
    """The document's text, the span marked; a long one cut to CONTEXT characters either side."""
    first, last = max(0, start - CONTEXT), min(len(text), end + CONTEXT)
    return (f'<pre class="doc">{"&hellip;" if first else ""}{escape(text[first:start])}'
            f'<mark id="cited">{escape(text[start:end])}</mark>{escape(text[end:last])}'
            f'{"&hellip;" if last < len(text) else ""}</pre>')


def view_query(citations: list[dict], i: int) -> str:
    """The query string of the view of citations[i] (Answer.to_dict()'s), carrying every citation's span:
    [n, kb, source, page, start, end], and doc_id where it is not the source (a JSONL record); of an answer
    with more than MAX_SPANS citations, the MAX_SPANS up to the one shown. Withheld citations are left out."""
    viewable = [bool(c.get("kb") and c.get("source")) for c in citations]  # a withheld citation has neither
    shown, i = [c for c, v in zip(citations, viewable) if v], sum(viewable[:i])
    first = max(0, i - MAX_SPANS + 1)
    spans = []
    for c in shown[first:first + MAX_SPANS]:
        span = [c.get("n"), c.get("kb") or "", c.get("source"), c.get("page"), c.get("start"), c.get("end")]
        spans.append(json.dumps(span + ([c["doc_id"]] if c.get("doc_id", c.get("source")) != c.get("source") else []),
                                separators=(",", ":"), ensure_ascii=False))
    return urlencode([("i", i - first)] + [("c", s) for s in spans])


def read_spans(values: list[str]) -> list[Citation]:
    """The citations a view link carries (view_query), their text still empty: the server takes it from the
    stored text. RagError for anything the chat does not make."""
    if not 1 <= len(values) <= MAX_SPANS:
        raise RagError(f"a page view link carries 1 to {MAX_SPANS} citations, not {len(values)}")
    out = []
    for value in values:
        try:
            span = json.loads(value)
            n, kb, source, page, start, end, *rest = span
            doc_id = rest[0] if rest else source
            ok = (len(rest) <= 1 and all(isinstance(v, str) for v in (kb, source, doc_id))
                  and all(type(v) is int for v in (n, start, end)) and (page is None or type(page) is int)
                  and 0 <= start <= end)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise RagError(f"not a citation of a page view link: {value[:200]!r}; open the view from the chat's "
                           "Sources panel")
        out.append(Citation(n=n, kb=kb, source=source, doc_id=doc_id, page=page, start=start, end=end, text="",
                            score=0.0))
    return out
