"""Plain text and Markdown: the file's UTF-8 text exactly as stored, so offsets point into the file."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document

SUFFIXES = (".txt", ".md", ".markdown")
KIND = "Plain text, Markdown"
FORMAT = "UTF-8 exactly as stored (newlines kept, a leading BOM dropped), so offsets point into the file"


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    yield Document(source=source, doc_id=source, text=decode(path, data))


def decode(path: Path, data: bytes) -> str:
    """UTF-8 exactly as stored (newlines untouched, a leading BOM dropped); anything else is an error."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(path, "UTF-16 text, not UTF-8; convert it, e.g. iconv -f utf-16 -t utf-8")
    if data.startswith(b"%PDF-"):
        raise DocumentError(path, "a PDF file with a text file's name; rename it to .pdf")
    if b"\x00" in data:
        raise DocumentError(path, "binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DocumentError(
            path, f"not valid UTF-8 (byte {e.start}, line {line}); convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None
