"""CSV and TSV exports (the standard csv module): one Document, each record a line carrying its column
names (rag/load/table.py). The dialect (delimiter, quoting) is sniffed from the first 64 KB; .tsv is
tab-separated. Text must be UTF-8, as for .txt files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from .table import Layout
from .text import decode

SUFFIXES = (".csv", ".tsv")
KIND = "CSV, TSV (csv)"
FORMAT = "UTF-8; the dialect sniffed (.tsv: tabs); each record a line carrying its column names"
SAMPLE = 65536  # characters the dialect is sniffed from


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    text = decode(path, data)
    dialect = _dialect(text[:SAMPLE], tab=path.suffix.lower() == ".tsv")
    csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))  # a quoted cell may hold line breaks
    except csv.Error as e:
        raise DocumentError(path, f"not readable as CSV ({e})") from None
    layout = Layout()
    layout.table(rows)
    if not layout.parts:
        raise DocumentError(path, "no values in the file")
    yield Document(source=source, doc_id=source, text=layout.text, rows=layout.rows)


def _dialect(sample: str, tab: bool):
    if tab:
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to tell: commas
        return csv.excel
