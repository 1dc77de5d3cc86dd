"""Word .docx (python-docx): the body's paragraphs, headings, list items and tables in reading order.

The text we assemble is the Document's text, so offsets point into it as into a .txt file: blocks
are separated by a blank line, the items of one list and the rows of one table by a newline; a list
item starts with "- " or its number ("1. ", counted per list and level as Word does, whatever the
list's own numbering style), indented two spaces a level; a table row is one line carrying its column
names with its values (rag/load/table.py; the rows Word marks as header rows name the columns, else the
first row when it looks like names). Headers, footers, footnotes, comments and text boxes are left out.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator, NamedTuple

from ..errors import DocumentError
from ..model import Document
from .office import check_package
from .table import Layout

SUFFIXES = (".docx",)
KIND = "Word (python-docx)"
FORMAT = ('paragraphs, headings, list items as `- ` / `1. ` lines and tables as rows carrying their column '
          'names, in reading order; headers and footers left out')


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    check_package(path, data, app="Word", old=".doc", new=".docx", what=".docx")
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_blocks(document))
        title = (document.core_properties.title or "").strip()
    except Exception as e:  # python-docx and lxml raise many kinds on broken packages
        raise DocumentError(path, f"not a readable .docx file ({type(e).__name__}: {e})") from None
    layout, last = Layout(), None
    for group, block in blocks:
        if isinstance(block, _Table):
            layout.table(block.rows, block.header)
        else:
            layout.add(block, "\n" if group is not None and group == last else "\n\n")
        last = group
    if not layout.parts:
        raise DocumentError(path, "no text in the document body (headers and footers are not read)")
    yield Document(source=source, doc_id=source, text=layout.text, title=title, rows=layout.rows)


class _Table(NamedTuple):
    rows: list[list[str | None]]  # None: covered by the merged cell on its left
    header: int | None  # rows Word marks as repeated header rows; None when none is marked


def _table(table) -> _Table:
    rows = []
    for row in table.rows:
        cells: list[str | None] = []
        previous = None
        for cell in row.cells:  # a merged cell comes back once per grid column it spans
            cells.append(None if cell._tc is previous else cell.text)
            previous = cell._tc
        rows.append(cells)
    marked = 0
    for row in table.rows:
        if not row._tr.xpath("./w:trPr/w:tblHeader[not(@w:val) or @w:val!='0' and @w:val!='false']"):
            break
        marked += 1
    return _Table(rows, marked or None)


def _blocks(document) -> Iterator[tuple[object, "str | _Table"]]:
    """(group, line or table) in body order; consecutive lines of one group (a list) share a block."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    counters: dict[tuple[str, int], int] = {}
    for element in _body_elements(document.element.body):
        if element.tag.endswith("}tbl"):
            yield None, _table(Table(element, document._body))
            continue
        paragraph = Paragraph(element, document._body)
        line = paragraph.text.strip()
        if not line:
            continue
        numbering = _numbering(paragraph)
        if numbering is None:
            yield None, line
            continue
        num_id, level = numbering
        for key in [k for k in counters if k[1] > level]:  # a deeper list restarts under each item
            del counters[key]
        marker = "- "
        if _number_format(document, num_id, level) not in ("bullet", "none", None):
            counters[num_id, level] = counters.get((num_id, level), 0) + 1
            marker = f"{counters[num_id, level]}. "
        yield "list", "  " * level + marker + line


def _body_elements(body) -> Iterator:
    """Paragraphs and tables of the body, including those inside content controls (w:sdt)."""
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag in ("p", "tbl"):
            yield child
        elif tag == "sdt":
            for content in child.iterchildren():
                if content.tag.endswith("}sdtContent"):
                    yield from _body_elements(content)


def _numbering(paragraph) -> tuple[str, int] | None:
    """(numbering id, level) of a list item, from its own properties or its style's; None otherwise."""
    style = paragraph.style.element if paragraph.style is not None else None
    for element in (paragraph._p, style):
        if element is None:
            continue
        num = element.xpath("./w:pPr/w:numPr/w:numId/@w:val")
        if num:
            level = element.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
            if num[0] == "0" or not num[0].isdigit():  # numId 0 switches numbering off
                return None
            return num[0], int(level[0]) if level and level[0].isdigit() else 0
    return None


def _number_format(document, num_id: str, level: int) -> str | None:
    """The list level's w:numFmt ("bullet", "decimal", ...), or None when the numbering is missing."""
    try:
        numbering = document.part.numbering_part.element
    except (KeyError, NotImplementedError):
        return None
    abstract = numbering.xpath(f'./w:num[@w:numId="{num_id}"]/w:abstractNumId/@w:val')
    if not abstract or not abstract[0].isdigit():
        return None
    found = numbering.xpath(f'./w:abstractNum[@w:abstractNumId="{abstract[0]}"]/w:lvl[@w:ilvl="{level}"]'
                            "/w:numFmt/@w:val")
    return found[0] if found else None
