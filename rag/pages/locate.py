"""Where a citation stands on its page: one rectangle per line, in points from the page's top-left corner.

Text pages are computed at question time, once per answer (rag/answer/ask.py): the page's characters and
boxes from pdfium, aligned with the stored text (align.py), both kept for the last LAYOUTS pages. OCR
pages use the word boxes kept at indexing time (words.py): their file is not even opened. A PDF changed
since it was indexed gets no boxes (its page may say something else now), nor does a citation whose
characters match none on the page; the answer itself never fails for want of boxes.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import Answer, Citation
from .align import align, normalized
from .words import span_boxes

log = logging.getLogger(__name__)

LAYOUTS = 64  # pages whose characters, boxes and alignment are kept (~100 KB each for a dense page)
GAP = 2  # a line's cited characters separated by more than this many uncited ones get a rectangle each
Box = tuple[float, float, float, float]
_LINE_END_HYPHEN = re.compile("[-\u2010]\\s*\n\\s*|\x02")  # pdfium's \x02: a hyphen it took for a word break
# held(): in a read-back, a hyphen at a line end, and a glyph pdfium could not name (a control character)
_LINE_END, _HYPHEN, _ANY = re.compile("[-\u2010]\\s*\n\\s*"), "\ue000", "\ue001"
_UNNAMED = re.compile("[\x01-\x08\x0b\x0e-\x1f]")


@dataclass(kw_only=True)
class PageLayout:
    """A text page as pdfium reads it: its characters, their boxes as the page is shown, its lines."""

    chars: str
    boxes: np.ndarray  # (len(chars), 4): left, top, right, bottom in points from the top-left corner; 0 when none
    lines: np.ndarray  # the line each character is on (pdfium's line breaks)
    width: float
    height: float


def display_matrix(page) -> np.ndarray:
    """The 2x3 affine from the page's PDF coordinates to points from the top-left corner of the page as
    shown (rotation and crop box applied): what pdfium renders."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    scale, x, y = 1000, ctypes.c_int(), ctypes.c_int()

    def shown(px, py):
        pdfium_c.FPDF_PageToDevice(page, 0, 0, round(width * scale), round(height * scale), 0, px, py, x, y)
        return np.array([x.value, y.value]) / scale

    origin = shown(0, 0)
    return np.column_stack([(shown(1000, 0) - origin) / 1000, (shown(0, 1000) - origin) / 1000, origin])


def read_layout(page) -> PageLayout:
    """pdfium's characters and boxes of one page (a pypdfium2 PdfPage)."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    try:
        n = textpage.count_chars()
        chars = textpage.get_text_range(0, n) if n else ""
        if len(chars) != n:  # text and character indices disagree (rare): read one by one
            chars = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage, i)) for i in range(n))
        codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
        raw = np.zeros((n, 4))
        left, right, bottom, top = (ctypes.c_double() for _ in range(4))
        get_box = pdfium_c.FPDFText_GetCharBox
        for i in np.flatnonzero(codes > 32).tolist():
            if get_box(textpage, i, left, right, bottom, top):
                raw[i] = left.value, bottom.value, right.value, top.value
    finally:
        textpage.close()
    matrix = display_matrix(page)
    corners = [raw[:, [0, 1]], raw[:, [2, 1]], raw[:, [0, 3]], raw[:, [2, 3]]]
    shown = np.stack([c @ matrix[:, :2].T + matrix[:, 2] for c in corners])  # (4, n, 2)
    boxes = np.concatenate([shown.min(axis=0), shown.max(axis=0)], axis=1)
    boxes[(raw == 0).all(axis=1)] = 0
    lines = np.cumsum(codes == 10)
    width, height = page.get_size()
    return PageLayout(chars=chars, boxes=boxes, lines=lines, width=width, height=height)


def text_boxes(layout: PageLayout, mapped: np.ndarray, start: int, end: int) -> list[Box]:
    """The rectangles of stored text[start:end] on a text page; `mapped` is align(stored, layout.chars)."""
    cited = np.unique(mapped[start:end][mapped[start:end] >= 0])
    cited = cited[layout.boxes[cited].any(axis=1)]
    if not len(cited):
        return []
    solid = np.cumsum([not c.isspace() for c in layout.chars])  # non-space characters up to each index
    out, box, across = [], layout.boxes[cited[0]].copy(), None
    for prev, j in zip(cited, cited[1:]):
        b = layout.boxes[j]
        if layout.lines[j] == layout.lines[prev] and solid[j] - solid[prev] - 1 <= GAP and _in_line(box, b, across):
            if across is None:  # the line's direction, from its first two characters
                across = abs(b[0] + b[2] - box[0] - box[2]) >= abs(b[1] + b[3] - box[1] - box[3])
            box = np.concatenate([np.minimum(box[:2], b[:2]), np.maximum(box[2:], b[2:])])
        else:
            out.append(box)
            box, across = b.copy(), None
    out.append(box)
    return [tuple(round(float(v), 2) for v in r) for r in out]


def _in_line(line: np.ndarray, box: np.ndarray, across: bool | None) -> bool:
    """Does a character's box continue `line` (the box of its characters so far, running across the page or,
    across=False, down it; None: not known yet)? Its centre must lie within the line's band, widened by a
    quarter: a comma sits low, and a hyphenated line end is no line break in pdfium's text."""
    for low, high, axis_across in ((1, 3, True), (0, 2, False)):
        if across is not None and across != axis_across:
            continue
        slack = (line[high] - line[low]) / 4
        if line[low] - slack <= (box[low] + box[high]) / 2 <= line[high] + slack:
            return True
    return False


class _Layouts:
    """The last LAYOUTS pages' layouts and alignments, by (file hash, page, stored text)."""

    def __init__(self):
        self.lock, self.kept = threading.Lock(), OrderedDict()

    def get(self, key, make):
        with self.lock:
            if key in self.kept:
                self.kept.move_to_end(key)
                return self.kept[key]
        value = make()
        if value is None:  # nothing to keep: the file may be back next time
            return None
        with self.lock:
            self.kept[key] = value
            while len(self.kept) > LAYOUTS:
                self.kept.popitem(last=False)
        return value


_layouts = _Layouts()


def open_pdf(path: str, expected_hash: str, passwords=()):
    """The PDF at `path` opened by pdfium, or None when it is gone or changed since it was indexed."""
    import pypdfium2 as pdfium

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        log.info("no boxes for %s: %s", path, e)
        return None
    if hashlib.sha256(data).hexdigest() != expected_hash:
        log.info("no boxes for %s: it changed since it was indexed", path)
        return None
    for password in (None, *passwords):
        try:
            return pdfium.PdfDocument(data, password=password)
        except pdfium.PdfiumError:
            continue
    return None


def page_layout(key: tuple[str, str, int], stored: str, open_file) -> tuple[PageLayout, np.ndarray] | None:
    """The layout of page `key` = (path, file hash, 1-based page) and the stored text aligned with it, computed
    once; `open_file()` gives the open PDF (or None: then there is none)."""
    def make():
        pdf = open_file()
        if pdf is None:
            return None
        page = pdf[key[2] - 1]
        try:
            layout = read_layout(page)
        finally:
            page.close()
        return layout, align(stored, layout.chars)

    return _layouts.get((*key[1:], hashlib.sha1(stored.encode()).digest()), make)


def locate(answer: Answer, store_of, passwords=()) -> None:
    """Give the answer's citations into PDF pages and scans their boxes and page size (in place). `store_of(kb)` is
    the Store of a knowledge base's index (Index.store_of, Selection.store_of): chunk ids are per index."""
    wanted = [c for c in answer.citations if 0 <= c.passage < len(answer.passages)]
    pages: dict = {}
    for kb in {answer.passages[c.passage].kb for c in wanted}:
        ids = [answer.passages[c.passage].chunk_id for c in wanted if answer.passages[c.passage].kb == kb]
        pages.update({(kb, i): page for i, page in store_of(kb).pages_of(ids).items()})
    opened: dict[str, object] = {}

    def open_file(path: str, file_hash: str):
        if path not in opened:
            opened[path] = open_pdf(path, file_hash, passwords)
        return opened[path]

    try:
        for c in wanted:
            hit = answer.passages[c.passage]
            page = pages.get((hit.kb, hit.chunk_id))
            if page:
                _fill(c, page, open_file)
    finally:
        for pdf in opened.values():
            if pdf is not None:
                pdf.close()


def locate_one(c: Citation, page: dict, passwords=()) -> None:
    """Give one citation into the stored `page` (Store.page_of) its boxes, as locate() does: the page view's,
    which has the citation's span from its link and nothing of the answer."""
    opened = []

    def open_file(path: str, file_hash: str):
        opened.append(open_pdf(path, file_hash, passwords))
        return opened[-1]

    try:
        _fill(c, page, open_file)
    finally:
        for pdf in opened:
            if pdf is not None:
                pdf.close()


def _fill(c: Citation, page: dict, open_file) -> None:
    try:
        placed = _place(c, page, open_file)
    except Exception as e:  # a page pdfium cannot read: the citation stands without boxes
        log.warning("no boxes for %s page %s: %s: %s", c.source, c.page, type(e).__name__, e)
        placed = None
    if placed and placed[0]:
        c.boxes, c.page_width, c.page_height = placed[0], round(placed[1], 2), round(placed[2], 2)


def _place(c, page: dict, open_file) -> tuple[list[Box], float, float] | None:
    """(boxes, page width, page height) of citation `c` into the stored `page` (Store.pages_of), or None."""
    words = page["words"]
    if words is not None:
        return span_boxes(page["text"], words, c.start, c.end), words.width, words.height
    if c.page is None or page["ocr"] or not page["path"].lower().endswith(".pdf"):
        return None
    found = page_layout((page["path"], page["hash"], c.page), page["text"],
                        lambda: open_file(page["path"], page["hash"]))
    if found is None:
        return None
    layout, mapped = found
    return text_boxes(layout, mapped, c.start, c.end), layout.width, layout.height


def text_in(page, boxes: list[Box]) -> str:
    """What pdfium reads inside `boxes` (points from the top-left corner) on a PdfPage: how the tests and
    bench/pages.py check that a citation's boxes hold its sentence and little more."""
    inverse = np.linalg.inv(np.vstack([display_matrix(page), [0, 0, 1]]))[:2]
    textpage = page.get_textpage()
    try:
        parts = []
        for left, top, right, bottom in boxes:
            corners = np.array([[left, top, 1], [right, bottom, 1]]) @ inverse.T
            (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
            parts.append(textpage.get_text_bounded(x0, y0, x1, y1))
        return "\n".join(parts)
    finally:
        textpage.close()


def held(sentence: str, read_back: str) -> tuple[bool, int]:
    """Does `read_back` (text_in of a citation's boxes) contain `sentence`, whitespace and the hyphens of words
    broken at a line end aside, and how many characters more does it have? A glyph pdfium cannot name (it gives
    a control character: a font without a Unicode map, as TeX's math fonts) stands for any one character; a
    hyphen at a line end of the read-back may be the sentence's own hyphen ("- Isolated", a list's dash) or none."""
    a = _squashed(_LINE_END_HYPHEN.sub("", sentence))
    b = _squashed(_UNNAMED.sub(_ANY, _LINE_END.sub(_HYPHEN, read_back)))
    maybe = f"[{_HYPHEN}{_ANY}]*"
    pattern = "".join(f"{maybe}(?:{re.escape(c)}|{_ANY}{'|' + _HYPHEN if c in '-‐' else ''})" for c in a)
    return re.search(pattern, b) is not None, len(b.replace(_HYPHEN, "")) - len(a)


def _squashed(text: str) -> str:
    """The text without whitespace or soft hyphens."""
    return normalized(text)[0]
