"""PowerPoint .pptx (python-pptx): each slide a Document numbered as its page.

A slide's text starts with its title, then its text boxes in reading order (top to bottom, then left
to right; groups opened), one paragraph a line; a table's rows are lines carrying their column names
(rag/load/table.py); the speaker notes come last, after "Notes:". Pictures, charts and slide masters
are left out.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from .office import check_package
from .table import Layout

SUFFIXES = (".pptx",)
KIND = "PowerPoint (python-pptx)"
FORMAT = ("each slide a document numbered as its page: its title, text boxes in reading order, tables as "
          "rows carrying their column names, then the speaker notes after \"Notes:\"")
NOTES = "Notes:"


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    check_package(path, data, app="PowerPoint", old=".ppt", new=".pptx", what="deck")
    import pptx

    try:
        deck = pptx.Presentation(io.BytesIO(data))
        title = (deck.core_properties.title or "").strip()
        slides = [(n, _slide(slide)) for n, slide in enumerate(deck.slides, 1)]
    except Exception as e:  # python-pptx and lxml raise many kinds on broken packages
        raise DocumentError(path, f"not a readable .pptx file ({type(e).__name__}: {e})") from None
    docs = [Document(source=source, doc_id=source, text=layout.text, page=n, title=title, rows=layout.rows)
            for n, layout in slides if layout.parts]
    if not docs:
        raise DocumentError(path, "no text on any slide (pictures and charts are not read)")
    yield from docs


def _slide(slide) -> Layout:
    layout = Layout()
    heading = slide.shapes.title
    if heading is not None and heading.has_text_frame:
        _text(layout, heading.text_frame)
    shapes = [s for s in _shapes(slide.shapes) if heading is None or s.shape_id != heading.shape_id]
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if getattr(shape, "has_table", False) and shape.has_table:
            layout.table(_table(shape.table), 1 if shape.table.first_row else None)
        elif shape.has_text_frame:
            _text(layout, shape.text_frame)
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            layout.add(f"{NOTES} {notes}")
    return layout


def _shapes(shapes) -> Iterator:
    """The slide's shapes, the members of a group in place of the group."""
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _text(layout: Layout, frame) -> None:
    lines = [p.text.strip() for p in frame.paragraphs]
    lines = [line for line in lines if line]
    if lines:
        layout.add("\n".join(lines))


def _table(table) -> list[list[str | None]]:
    """Cell texts; None where a merged cell on the left covers the cell."""
    return [[None if cell._tc.hMerge else cell.text for cell in row.cells] for row in table.rows]
