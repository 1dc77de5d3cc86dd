"""JSON Lines: one record a line, BEIR layout {"_id" or "id", "title"?, "text"}; each record a Document.

A bad record is reported with its line and the others load; a file whose first records all fail is
not JSON Lines at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from .text import decode

SUFFIXES = (".jsonl",)
KIND = "JSON Lines"
FORMAT = ('one record a line, `{"_id" or "id", "title"?, "text"}` (the BEIR layout), each record a document; a '
          'bad line is reported by number')


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document | DocumentError]:
    """Lines are split at "\\n" only: U+2028 and friends are legal inside JSON strings."""
    text = decode(path, data)
    seen: dict[str, int] = {}
    loaded = bad = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        problem = None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            problem = f"invalid JSON ({e.msg} at column {e.colno})"
        else:
            if not isinstance(record, dict):
                problem = f"a record must be a JSON object, not {type(record).__name__}"
            elif not isinstance(record.get("text"), str):
                problem = 'a record needs a "text" string'
        if problem is None:
            doc_id = record.get("_id", record.get("id"))
            if doc_id is None or doc_id == "":
                doc_id = f"{source}:{lineno}"
            elif not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                problem = f'"_id"/"id" must be a string or an integer, not {type(doc_id).__name__}'
            doc_id = str(doc_id)
        if problem is None:
            if doc_id in seen:
                problem = f"duplicate id {doc_id!r} (first on line {seen[doc_id]}); this record is skipped"
            elif not record["text"].strip():
                problem = f"record {doc_id!r} has empty text"
        if problem is not None:
            bad += 1
            if not loaded and bad >= 20:
                raise DocumentError(path, f"not JSON Lines: the first {bad} records all fail ({problem})")
            yield DocumentError(path, problem, line=lineno)
            continue
        seen[doc_id] = lineno
        title = record.get("title")
        title = title if isinstance(title, str) else "" if title is None else str(title)
        loaded += 1
        yield Document(source=source, doc_id=doc_id, text=record["text"], title=title.strip())
