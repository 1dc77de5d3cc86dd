"""The page view of one citation, as a standalone HTML page (a pure function: the server gives the URLs).

A PDF citation shows its page image (render.py, the cited lines highlighted) with each line marked over
it and scrolled into view, zoomable, the quoted text beside it and a link to the whole PDF at that page;
an OCR page says so and shows the highlighted region of the scan beside the quote, so the reader
compares the two. A citation into a .docx, .html or text file shows the document text with the span
highlighted and scrolled to. The previous and next citations are one click away. Every text and URL is
escaped: the document's text is data, never markup.
"""

from __future__ import annotations

from html import escape

from ..model import Citation

CONTEXT = 20_000  # characters of a long document shown either side of the span

_STYLE = """
body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d1d1f;background:#f4f4f6}
header{position:sticky;top:0;z-index:2;display:flex;gap:.75em;align-items:center;padding:.5em 1em;
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
"""


def page_view(citation: Citation, *, position: tuple[int, int] = (1, 1), image_url: str = "", scan_url: str = "",
              file_url: str = "", previous_url: str = "", next_url: str = "", text: str | None = None) -> str:
    """The HTML page showing `citation` (number position[0] of position[1] in its answer).

    image_url: its page drawn with the lines highlighted (PDFs); scan_url: the highlighted region alone
    (OCR pages); file_url: the whole file (a PDF opens at the page); previous_url, next_url: the views of the
    neighbouring citations ("" where there is none); text: the document's stored text, shown when there
    is no page image (.docx, .html, text files)."""
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
