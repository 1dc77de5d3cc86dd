"""Tables as rows that read on their own: the one layout every loader that meets a table uses (docx,
pdf, xlsx, csv, pptx).

A row becomes one line carrying its header names with its values,
`Region: Benelux | Revenue 2025 (EUR m): 55.9 | Employees: 418`, so that a row cited alone answers
"how many employees in Benelux?", and a chunk cut between rows still says what each number is. The
header rows themselves are not repeated as lines of their own: every row carries them. `Layout`
assembles a Document's text and records each row's span (Document.rows), which the chunker keeps
whole.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..model import CELL_SEPARATOR as SEPARATOR

Row = Sequence["str | None"]  # a cell is its text; None where a merged cell on its left covers it

_SPACE = re.compile(r"\s+")
# a value, not a name: a number with its sign, thousands separators, decimals, percent, currency or unit
_QUANTITY = re.compile(r"[-+−(]?[$€£¥]?\s?\d[\d,.\s]*%?\)?(?:\s?[A-Za-z€$£¥]{1,4}\.?)?")
_YEAR = re.compile(r"(1[89]|20|21)\d\d")


def cell_text(value: object) -> str:
    """A cell's text on one line: runs of whitespace (line breaks inside a cell too) become one space."""
    return _SPACE.sub(" ", str(value)).strip() if value is not None else ""


def _is_name(cell: str | None) -> bool:
    """Could this cell name a column? Text does, and so does a year ("2025"); a quantity does not."""
    return not cell or bool(_YEAR.fullmatch(cell)) or not _QUANTITY.fullmatch(cell)


def header_rows(rows: Sequence[Row]) -> int:
    """How many leading rows name the columns: 0, 1, or 2 when the first holds group names over
    several columns (a merged or empty cell beside them) and the second the names under them.

    The first row names the columns when every cell in it could be a name and rows follow it."""
    if len(rows) < 2 or not any(rows[0]) or not all(_is_name(c) for c in rows[0]):
        return 0
    gaps = any(not c for c in rows[0][1:])
    second = rows[1]
    if gaps and len(rows) >= 3 and any(second) and all(_is_name(c) for c in second):
        return 2
    return 1


def column_names(header: Sequence[Row], width: int) -> list[str]:
    """Each column's name: the distinct texts above it, a merged cell counting for every column it covers."""
    names: list[list[str]] = [[] for _ in range(width)]
    for row in header:
        last = ""
        for i in range(width):
            cell = row[i] if i < len(row) else ""
            last = last if cell is None else cell_text(cell)
            if last and last not in names[i]:
                names[i].append(last)
    return [" ".join(parts) for parts in names]


def table_lines(rows: Sequence[Row], header: int | None = None) -> list[str]:
    """One line per row (empty rows left out), each value after its column's name.

    `header`: how many leading rows name the columns; None guesses (header_rows), after leading rows
    with only their first cell filled (a title over the table: written alone). A table without names gives its cells
    joined by " | "; a cell merged over several columns gives its text alone, as does a row with
    only one cell (a section label inside the table)."""
    rows = [[None if c is None else cell_text(c) for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    lines = []
    while header is None and len(rows) > 1 and rows[0][0] and not any(rows[0][1:]) and len(rows[0]) > 1:
        lines.append(rows.pop(0)[0])  # a title over the table (its first cell alone), not a column's name
    if header is None:
        header = header_rows(rows)
    if header >= len(rows):  # names and nothing under them: the names are the content
        header = 0
    width = max((len(r) for r in rows), default=0)
    names = column_names(rows[:header], width) if header else [""] * width
    for row in rows[header:]:
        filled = [i for i, c in enumerate(row) if c]
        parts = []
        for i in filled:
            spans = i + 1 < len(row) and row[i + 1] is None
            name = names[i] if len(filled) > 1 and not spans else ""
            parts.append(f"{name}: {row[i]}" if name and name != row[i] else row[i])
        lines.append(SEPARATOR.join(parts))
    return lines


class Layout:
    """A Document's text assembled from blocks and table rows, with the span of every row."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.rows: list[tuple[int, int]] = []

    def add(self, text: str, separator: str = "\n\n", row: bool = False) -> None:
        """Append a block (or one row), set off from what came before by `separator`."""
        if self.parts:
            self.parts.append(separator)
            self.length += len(separator)
        self.parts.append(text)
        if row:
            self.rows.append((self.length, self.length + len(text)))
        self.length += len(text)

    def table(self, rows: Sequence[Row], header: int | None = None, separator: str = "\n\n") -> int:
        """Append a table as its lines (table_lines), one row a line; how many lines it gave."""
        lines = table_lines(rows, header)
        for i, line in enumerate(lines):
            self.add(line, separator if i == 0 else "\n", row=True)
        return len(lines)

    @property
    def text(self) -> str:
        return "".join(self.parts)
