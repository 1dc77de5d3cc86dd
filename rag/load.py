"""Stage 1, load: files on disk become Documents whose text is exactly what later offsets point into.

A Document is one citable unit of text: a text or Markdown file, one JSONL record, or one PDF page.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import DocumentError

SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".jsonl")


@dataclass
class Document:
    source: str  # path relative to the folder that was indexed
    doc_id: str  # the JSONL record id, else the source
    text: str  # offsets of chunks and citations index into this string
    page: int | None = None  # 1-based PDF page, None for other files
    title: str = ""


def find_files(paths) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Expand files and folders (recursively) into (file, root) pairs; also return skipped files.

    `root` is the folder a source name is relative to. Hidden files and folders are skipped.
    """
    found, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    if name.startswith("."):
                        continue
                    if f.suffix.lower() in SUFFIXES:
                        found.append((f, p))
                    else:
                        skipped.append(f)
        elif p.is_file():
            found.append((p, p.parent))
        else:
            raise DocumentError(p, "no such file or folder")
    return found, skipped


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_file(path: Path, root: Path, passwords=()) -> Iterator[Document | DocumentError]:
    """Yield the file's Documents; per-record problems come back as DocumentError items.

    A problem with the whole file raises DocumentError instead.
    """
    path = Path(path)
    source = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(path, f"unsupported file type {suffix or '(none)'}; use one of {', '.join(SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DocumentError(path, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise DocumentError(path, "empty file")
    if suffix == ".pdf":
        yield from _load_pdf(path, source, data, passwords)
    elif suffix == ".jsonl":
        yield from _load_jsonl(path, source, _decode(path, data))
    else:
        yield Document(source=source, doc_id=source, text=_decode(path, data))


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 exactly as stored (newlines untouched, a BOM dropped); anything else is an error, not mojibake."""
    if b"\x00" in data[:8192]:
        raise DocumentError(path, "binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(
            path, f"not valid UTF-8 (byte {e.start}); convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def _load_jsonl(path: Path, source: str, text: str) -> Iterator[Document | DocumentError]:
    """One record a line, BEIR layout: {"_id" or "id", "title"?, "text"}."""
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield DocumentError(where, f"invalid JSON ({e.msg})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            yield DocumentError(where, 'a record needs a "text" string')
            continue
        doc_id = record.get("_id", record.get("id"))
        if doc_id is None or doc_id == "":
            doc_id = f"{source}:{lineno}"
        title = record.get("title") or ""
        if not record["text"].strip():
            yield DocumentError(where, f"record {doc_id} has empty text")
            continue
        yield Document(source=source, doc_id=str(doc_id), text=record["text"], title=str(title))


def _load_pdf(path: Path, source: str, data: bytes, passwords) -> Iterator[Document]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, DependencyError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _decrypt(reader, passwords):
            raise DocumentError(
                path, "encrypted PDF and no given password opens it; pass --password (or RAG_PDF_PASSWORDS)"
            )
        pages = list(reader.pages)
    except DocumentError:
        raise
    except DependencyError as e:
        raise DocumentError(path, f"cannot decrypt: {e}") from None
    except (PdfReadError, Exception) as e:  # pypdf raises many kinds on broken files
        raise DocumentError(path, f"corrupt or unreadable PDF ({type(e).__name__}: {e})") from None
    docs, failed = [], 0
    for number, page in enumerate(pages, 1):
        try:
            text = page.extract_text() or ""
        except Exception:  # one bad page must not lose the others
            failed += 1
            continue
        if text.strip():
            docs.append(Document(source=source, doc_id=source, text=text, page=number))
    if not docs:
        reason = "no text layer (scanned or image-only PDF?); OCR it first" if not failed else "no page could be read"
        raise DocumentError(path, reason)
    yield from docs


def _decrypt(reader, passwords) -> bool:
    for password in ("", *passwords):
        try:
            if reader.decrypt(password):
                return True
        except Exception:
            continue
    return False
