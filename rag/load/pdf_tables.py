"""Tables on PDF text pages (pdfplumber): found, read cell by cell, and put into the page's text as rows.

Three kinds are found, each with the page's words and drawn lines as pdfplumber reads them:
- ruled: cells drawn as a grid of lines or boxes (pdfplumber's own "lines" strategy);
- between rules: horizontal rules of one width above and below, columns set apart by space only (the
  booktabs style of papers); the rows above the first inner rule name the columns;
- unruled: three or more lines whose words fall into the same two or more columns, set apart by gaps
  wider than a space, with short cells, under a first row of column names (prose, a table of contents
  or aligned numbers without names are left as text).

Where a table goes in the text: pypdf's page text keeps the characters in the order the page draws
them, and so does pdfplumber; the table's characters, whitespace left out, are found in that order in
pypdf's text (whitespace left out), and that span, widened to whole lines, is replaced by the rows
(rag/load/table.py). A table whose characters are not found so is left as pypdf wrote it. The rest of
the page's text is pypdf's, character for character.
"""

from __future__ import annotations

import io
import logging
import statistics
from typing import Callable, NamedTuple

from .table import header_rows, table_lines

log = logging.getLogger(__name__)

GAP = 0.75  # a gap wider than this many character heights sets two cells apart (a space is ~0.25-0.5)
MAX_CELL = 40  # characters: an unruled table's cells are short (median), prose lines are not
WORDS = {"x_tolerance_ratio": 0.15, "y_tolerance": 2, "keep_blank_chars": False}


class PageTable(NamedTuple):
    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom in pdfplumber's coordinates
    rows: list[list[str | None]]  # None: covered by the merged cell on its left
    header: int | None  # rows known to name the columns; None: table_lines guesses
    chars: str  # the table's characters in drawing order, whitespace left out


class PageTables:
    """The tables of one PDF's pages, put into pypdf's page texts. pdfplumber opens the file on the
    first page asked for; where it cannot read the file or a page, that page keeps pypdf's text."""

    def __init__(self, data: bytes, password: str | None, clean: Callable[[str], str], enabled: bool = True):
        self.data, self.password, self.clean = data, password, clean
        self.pdf = None
        self.failed = not enabled  # off (RAG_PDF_TABLES=0): every page keeps pypdf's text, pdfplumber never opens

    def place(self, number: int, text: str) -> tuple[str, list[tuple[int, int]]]:
        """(the page's text with its tables as rows, the rows' spans) for 1-based page `number`."""
        try:
            if self.pdf is None and not self.failed:
                import pdfplumber

                _quiet_pdfminer()

                self.pdf = pdfplumber.open(io.BytesIO(self.data), password=self.password or "")
            if self.pdf is None:
                return text, []
            page = self.pdf.pages[number - 1]
            try:
                tables = find_tables(page, self.clean)
            finally:
                page.close()  # its parsed objects are not kept: memory stays flat on long files
        except Exception as e:  # pdfminer fails on some files pypdf repairs: the page keeps pypdf's text
            self.failed = self.pdf is None
            log.debug("tables of page %d not read: %s: %s", number, type(e).__name__, e)
            return text, []
        text, rows, _ = place_tables(text, tables)
        return text, rows

    def close(self) -> None:
        if self.pdf is not None:
            try:
                self.pdf.close()
            except Exception as e:  # pdfplumber parses the pages it has not seen to close them: a broken one fails
                log.debug("closing pdfplumber: %s: %s", type(e).__name__, e)


class _Debug(logging.Handler):
    def emit(self, record):
        log.debug("pdfminer: %s", record.getMessage())


def _quiet_pdfminer() -> None:
    """pdfminer warns through logging about damage pypdf has reported already: keep it off stderr."""
    logger = logging.getLogger("pdfminer")
    if not any(isinstance(h, _Debug) for h in logger.handlers):
        logger.addHandler(_Debug())
        logger.propagate = False


def find_tables(page, clean=lambda s: s) -> list[PageTable]:
    """The tables of a pdfplumber page, top to bottom; `clean` is applied to every text taken."""
    tables = []
    for found in page.find_tables():
        rows = [[None if c is None else clean(c) for c in row] for row in found.extract(**WORDS)]
        if _enough(rows):
            tables.append(_table(page, found.bbox, rows, None, clean))
    words = [dict(w, size=max(c["size"] for c in w["chars"])) for w in page.extract_words(return_chars=True, **WORDS)
             if not any(_inside(w, t.bbox) for t in tables)]
    for bbox, header_bottom in _ruled_regions(page, [t.bbox for t in tables], words):
        inside = [w for w in words if _inside(w, bbox)]
        grid = _grid(_lines(inside), strict=False)
        if grid:
            rows, tops = grid
            header = sum(top < header_bottom for top in tops) if header_bottom else None
            tables.append(_table(page, bbox, [[clean(c) if c else c for c in r] for r in rows], header or None,
                                 clean))
            words = [w for w in words if not _inside(w, bbox)]
    for block in _unruled_blocks(_lines(words)):
        grid = _grid(block, strict=True)
        if grid and header_rows(grid[0]):  # without names over its columns, aligned text (a table of
            # contents, a list of figures) is left as text
            rows, _ = grid
            bbox = (min(w["x0"] for line in block for w in line), block[0][0]["top"],
                    max(w["x1"] for line in block for w in line), max(w["bottom"] for w in block[-1]))
            tables.append(_table(page, bbox, [[clean(c) if c else c for c in r] for r in rows], None, clean))
    return sorted(tables, key=lambda t: (t.bbox[1], t.bbox[0]))


def place_tables(text: str, tables: list[PageTable]) -> tuple[str, list[tuple[int, int]], int]:
    """The page text with each table's span replaced by its rows: (text, row spans, tables placed).

    Only the tables' spans change: the text before, between and after them is kept character for
    character, a line break added where a table began or ended inside a line."""
    kept = [i for i, ch in enumerate(text) if not ch.isspace()]
    squeezed = "".join(text[i] for i in kept)
    spans = []
    for t in tables:
        at = squeezed.find(t.chars) if t.chars else -1
        if at < 0 or squeezed.find(t.chars, at + 1) >= 0:  # not there, or not in one place only
            continue
        a, b = _whole_lines(text, kept[at], kept[at + len(t.chars) - 1] + 1)
        lines = table_lines(t.rows, t.header)
        if lines and not any(a < y and x < b for x, y, _ in spans):
            spans.append((a, b, lines))
    parts, rows, size, at = [], [], 0, 0
    for a, b, lines in sorted(spans):
        pieces = [text[at:a], "\n" if a and text[a - 1] != "\n" else ""]
        for i, line in enumerate(lines):
            pieces.append("\n" if i else "")
            size += sum(map(len, pieces))
            rows.append((size, size + len(line)))
            parts += pieces
            pieces = [line]
        parts += pieces
        size += len(line)
        if b < len(text) and text[b] != "\n":
            parts.append("\n")
            size += 1
        at = b
    parts.append(text[at:])
    return "".join(parts), rows, len(spans)


def _whole_lines(text: str, a: int, b: int) -> tuple[int, int]:
    """[a, b) widened to the start and end of its lines when only whitespace lies between."""
    start = text.rfind("\n", 0, a) + 1
    end = text.find("\n", b)
    end = len(text) if end < 0 else end
    return (start if not text[start:a].strip() else a), (end if not text[b:end].strip() else b)


# --- finding them ---------------------------------------------------------------------------------


def _enough(rows) -> bool:
    """Two values in most rows (two rows at least), and at least half of the cells filled: a lone box,
    a framed paragraph or a figure's scattered boxes is no table."""
    values = [sum(bool(c) for c in row) for row in rows]
    cells = [c for row in rows for c in row if c is not None]
    return (sum(n >= 2 for n in values) >= 2 and statistics.median(values) >= 2
            and sum(bool(c) for c in cells) >= len(cells) / 2)


def _table(page, bbox, rows, header, clean) -> PageTable:
    chars = "".join(c["text"] for c in page.chars if _inside(c, bbox))
    return PageTable(bbox=tuple(bbox), rows=rows, header=header, chars="".join(clean(chars).split()))


def _inside(obj, bbox, slack: float = 1.0) -> bool:
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return bbox[0] - slack <= x <= bbox[2] + slack and bbox[1] - slack <= y <= bbox[3] + slack


def _ruled_regions(page, taken, words) -> list[tuple[tuple, float | None]]:
    """(bbox, bottom of the header) between horizontal rules of one width: the top and bottom rules of a
    table and the rule under its header, drawn as lines or as thin filled boxes. Two tables one above
    the other with rules of one width are told apart by the caption between them."""
    rules = [(o["x0"], o["x1"], o["top"]) for o in page.lines if abs(o["top"] - o["bottom"]) < 1]
    rules += [(o["x0"], o["x1"], o["top"]) for o in page.rects if o["bottom"] - o["top"] < 2]
    rules = [r for r in rules if r[1] - r[0] > 40 and not any(_inside({"x0": r[0], "x1": r[1], "top": r[2],
                                                                       "bottom": r[2]}, t) for t in taken)]
    groups: dict[tuple[int, int], list[float]] = {}
    for x0, x1, top in sorted(rules, key=lambda r: r[2]):
        key = next((k for k in groups if abs(k[0] - x0) <= 2 and abs(k[1] - x1) <= 2), (round(x0), round(x1)))
        groups.setdefault(key, []).append(top)
    regions = []
    for (x0, x1), tops in groups.items():
        tops = sorted(set(round(t, 1) for t in tops))
        lines = _lines([w for w in words if x0 - 8 <= w["x0"] and w["x1"] <= x1 + 8])
        captions = [min(w["top"] for w in line) for line in lines if _caption(line, x0, x1)]
        runs = [[tops[0]]]
        for top in tops[1:]:
            if any(runs[-1][-1] < c < top for c in captions):
                runs.append([])
            runs[-1].append(top)
        regions += [((x0 - 1, run[0], x1 + 1, run[-1]), run[1] if len(run) > 2 else None)
                    for run in runs if len(run) >= 2]
    return regions


def _caption(line, x0: float, x1: float) -> bool:
    """A line of prose starting at the rules' left edge: a caption or a paragraph, no table row."""
    segments = _segments(line)
    return (len(segments) == 1 and len(_text(segments[0])) > MAX_CELL and abs(line[0]["x0"] - x0) < 8
            and line[-1]["x1"] <= x1 + 8)


def _lines(words) -> list[list[dict]]:
    """Words grouped into lines (by their bottoms), each sorted left to right, lines top to bottom."""
    lines: list[list[dict]] = []
    for w in sorted(words, key=lambda w: (w["bottom"], w["x0"])):
        if lines and abs(lines[-1][0]["bottom"] - w["bottom"]) <= 0.3 * w["size"]:
            lines[-1].append(w)
        else:
            lines.append([w])
    for line in lines:
        line.sort(key=lambda w: w["x0"])
    return sorted(lines, key=lambda line: min(w["top"] for w in line))


def _segments(line) -> list[list[dict]]:
    """A line's runs of words set apart by gaps wider than GAP character heights: its cells."""
    out = [[line[0]]]
    for w in line[1:]:
        if w["x0"] - out[-1][-1]["x1"] > GAP * max(w["size"], out[-1][-1]["size"]):
            out.append([w])
        else:
            out[-1].append(w)
    return out


def _unruled_blocks(lines) -> list[list[list[dict]]]:
    """Runs of three or more consecutive lines split into two or more cells, with short cells (a line of a
    single short cell inside a run, a section label, is kept)."""
    blocks, run = [], []
    for i, line in enumerate(lines):
        segments = _segments(line)
        close = run and min(w["top"] for w in line) - max(w["bottom"] for w in run[-1]) < 1.5 * line[0]["size"]
        short = all(len(_text(s)) <= MAX_CELL for s in segments)
        if short and (len(segments) >= 2 or run) and (close or not run):
            run.append(line)
            continue
        blocks.append(run)
        run = [line] if short and len(segments) >= 2 else []
    blocks.append(run)
    out = []
    for block in blocks:
        while block and len(_segments(block[-1])) < 2:  # a trailing single cell is the next paragraph's
            block = block[:-1]
        if sum(len(_segments(line)) >= 2 for line in block) >= 3:
            out.append(block)
    return out


def _text(segment) -> str:
    return " ".join(w["text"] for w in segment)


def _grid(lines, strict: bool):
    """(rows of cells, each row's top) when the lines' cells fall into two or more columns, else None.

    Columns come from the lines with the most common number of cells; every other line's cells are
    placed by overlap, a cell over several columns counting as merged. `strict` (no rules around):
    most lines must fit the columns, with short cells."""
    if not lines:
        return None
    split = [_segments(line) for line in lines]
    counts = [len(s) for s in split if len(s) >= 2]
    if not counts:
        return None
    k = max(set(counts), key=lambda n: (counts.count(n), n))
    model = [s for s in split if len(s) == k]
    columns = [(min(s[i][0]["x0"] for s in model), max(s[i][-1]["x1"] for s in model)) for i in range(k)]
    if any(a[1] >= b[0] for a, b in zip(columns, columns[1:])):
        return None  # the columns overlap: no grid
    rows, tops, misfits = [], [], 0
    for line, segments in zip(lines, split):
        row: list[str | None] = [""] * k
        for seg in segments:
            x0, x1 = seg[0]["x0"], seg[-1]["x1"]
            hit = [i for i, (a, b) in enumerate(columns) if x0 < b and a < x1]
            if not hit:
                hit = [min(range(k), key=lambda i: min(abs(columns[i][0] - x1), abs(x0 - columns[i][1])))]
                misfits += 1
            if row[hit[0]]:
                misfits += 1
                row[hit[0]] += " " + _text(seg)
            else:
                row[hit[0]] = _text(seg)
            for i in hit[1:]:
                row[i] = None
        filled = [i for i, c in enumerate(row) if c]
        if (rows and len(filled) == 1 and filled[0] > 0 and None not in row and len(row[filled[0]]) > MAX_CELL / 2
                and rows[-1][filled[0]]):  # a long cell's next line, under it: the same cell
            rows[-1][filled[0]] += " " + row[filled[0]]
            continue
        rows.append(row)
        tops.append(min(w["top"] for w in line))
    filled = [c for row in rows for c in row if c]
    if strict and (misfits > len(lines) // 4 or statistics.median(len(c) for c in filled) > MAX_CELL / 2):
        return None
    if len(rows) < 3 or not _enough(rows):  # two lines between rules: a heading's decoration, no table
        return None
    return rows, tops
