"""Web pages (.html, .htm; BeautifulSoup with lxml): the visible text of the main content.

<main> when the page has one, else its <article>s, else <body>. Scripts, styles, navigation,
headers, footers, asides, templates, hidden elements and comments are left out; block elements
become line breaks and paragraphs blank lines, so the sentence splitter sees the page's blocks;
table cells are joined by " | " like a .docx table row. The text we assemble is the Document's
text (offsets point into it); the <title> is its title.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document

SUFFIXES = (".html", ".htm")
KIND = "Web pages (BeautifulSoup, lxml)"
FORMAT = ("the visible text of `<main>`, else the `<article>`s, else `<body>`; scripts, styles, navigation, "
          "headers, footers, asides, hidden elements and comments left out; blocks become lines and paragraphs; "
          "charset from the BOM, `<meta charset>` or http-equiv, else UTF-8 or windows-1252; `<title>` is the title")

DROP = {"script", "style", "nav", "footer", "header", "aside", "noscript", "template", "head",
        "svg", "iframe", "object", "canvas"}  # the last four draw or embed; their text is not the page's
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "dl", "table", "figure",
              "hr", "section", "article", "main", "form", "fieldset", "address", "details", "menu"}
_LINE = {"div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "legend", "option", "center"}
_PRE = {"pre", "textarea", "listing", "plaintext", "xmp"}
_HTML_SPACE = re.compile(r"[ \t\n\f\r]+")  # not U+00A0: a non-breaking space stays
_HIDDEN_STYLE = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)", re.IGNORECASE)
# labels browsers read as another encoding (the WHATWG Encoding Standard); Python would take them literally
_WHATWG = {"iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
           "ascii": "cp1252", "us-ascii": "cp1252", "iso-8859-9": "cp1254", "latin5": "cp1254",
           "iso-8859-11": "cp874", "tis-620": "cp874", "gb2312": "gb18030", "gbk": "gb18030", "euc-kr": "cp949",
           "shift_jis": "cp932", "utf-16": "utf-8", "utf-16le": "utf-8", "utf-16be": "utf-8"}


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    from bs4 import BeautifulSoup

    markup, _ = decode(data)
    if "\x00" in markup:
        raise DocumentError(path, "binary file (contains NUL bytes), not a web page")
    soup = BeautifulSoup(markup, "lxml")
    title = _HTML_SPACE.sub(" ", soup.title.get_text()).strip() if soup.title else ""
    for root in _roots(soup):
        text = visible_text(root)
        if text:
            yield Document(source=source, doc_id=source, text=text, title=title)
            return
    raise DocumentError(path, "no visible text in the page (scripts, navigation and hidden parts are not read)")


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): a byte order mark, else the page's <meta charset> or http-equiv (or XML
    declaration), else UTF-8 when the bytes are valid UTF-8, else windows-1252, as browsers do."""
    from bs4.dammit import EncodingDetector

    body, bom = EncodingDetector.strip_byte_order_mark(data)
    if bom:
        return body.decode(bom, errors="replace"), bom
    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    if declared:
        name = _WHATWG.get(declared.strip().lower(), declared.strip().lower())
        try:
            return data.decode(codecs.lookup(name).name, errors="replace"), name
        except LookupError:
            pass  # an encoding Python does not know: guess as if none were declared
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _roots(soup) -> list[list]:
    """Where the main content is, best guess first: <main>, the outermost <article>s, <body>."""
    main = [t for t in soup.find_all("main") if _shown(t)][:1]
    articles = [t for t in soup.find_all("article") if _shown(t) and not t.find_parent("article")]
    return [roots for roots in (main, articles, [soup.body or soup]) if roots]


def _shown(tag) -> bool:
    return not any(t.name in DROP or hidden(t) for t in (tag, *tag.parents) if t.name != "[document]")


def hidden(tag) -> bool:
    """Hidden by the hidden attribute, aria-hidden="true" or an inline display:none / visibility:hidden."""
    aria = tag.get("aria-hidden")
    style = tag.get("style")
    return (tag.has_attr("hidden") or (isinstance(aria, str) and aria.strip().lower() == "true")
            or (isinstance(style, str) and _HIDDEN_STYLE.search(style) is not None))


def visible_text(roots) -> str:
    """The text a reader sees in these elements, laid out in lines and paragraphs."""
    from bs4 import NavigableString, Tag

    out = _Writer()
    stack = [(root, False) for root in reversed(roots)]
    pre = 0
    while stack:  # iterative: a deeply nested page must not hit the recursion limit
        node, closing = stack.pop()
        if isinstance(node, NavigableString):
            if type(node) is NavigableString:  # not a Comment, CData, Doctype or processing instruction
                out.text(str(node), pre > 0)
            continue
        if not isinstance(node, Tag) or node.name in DROP or hidden(node):
            continue
        name = node.name
        if closing:
            pre -= name in _PRE
            out.brk(2 if name in _PARAGRAPH else 1 if name in _LINE else 0)
            continue
        if name == "br":
            out.newline()
        elif name in ("td", "th"):
            out.cell()
        out.brk(2 if name in _PARAGRAPH else 1 if name in _LINE else 0)
        pre += name in _PRE
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return "".join(out.parts).strip()


class _Writer:
    """Text laid out roughly as a browser does: spaces collapsed, breaks merged, none at the ends."""

    def __init__(self):
        self.parts: list[str] = []
        self.pending = 0  # newlines owed before the next text: 1 ends a line, 2 a paragraph

    def brk(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def text(self, s: str, pre: bool) -> None:
        if not pre:
            s = _HTML_SPACE.sub(" ", s)
            if not s.strip(" ") and (self.pending or self._line_start() or self.parts[-1].endswith(" ")):
                return  # whitespace between blocks or after a space
        if not s:
            return
        if self.pending and self.parts:
            self._trim()
            owed = self.pending - self._newlines()
            if owed > 0:
                self.parts.append("\n" * owed)
        self.pending = 0
        if not pre and (self._line_start() or self.parts[-1].endswith(" ")):
            s = s.lstrip(" ")
        if s:
            self.parts.append(s)

    def newline(self) -> None:
        """<br>: a line break of its own, even between two others."""
        if self.parts:
            self._trim()
            self.parts.append("\n")

    def cell(self) -> None:
        """A table cell after another on the same line is set off by " | "."""
        if self.parts and not self._line_start() and not self.pending:
            self._trim()
            self.parts.append(" | ")

    def _line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def _trim(self) -> None:
        while self.parts and self.parts[-1].endswith(" "):
            self.parts[-1] = self.parts[-1].rstrip(" ")
            if not self.parts[-1]:
                self.parts.pop()

    def _newlines(self) -> int:
        count = 0
        for part in reversed(self.parts):
            stripped = part.rstrip("\n")
            count += len(part) - len(stripped)
            if stripped:
                break
        return count
