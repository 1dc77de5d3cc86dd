"""Stage 1, load: files on disk become Documents whose text is exactly what later offsets point into.

One module per format, each with its SUFFIXES and a `load(path, source, data, options)` generator;
the registry below is the one list of what we read, used by the CLI, the chat's upload check and the
README. Every failure is a DocumentError that names the file (and the line, for JSONL) and says why.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from ..errors import DocumentError
from ..model import Document
from . import csv, docx, epub, html, image, jsonl, mail, pdf, pptx, text, xlsx

MODULES = (text, pdf, docx, html, image, jsonl, xlsx, csv, pptx, epub, mail)  # each: SUFFIXES, KIND, FORMAT, load
LOADERS = {suffix: module.load for module in MODULES for suffix in module.SUFFIXES}
SUFFIXES = tuple(LOADERS)

__all__ = ["LOADERS", "SUFFIXES", "Document", "Found", "LoadOptions", "file_hash", "find_files", "format_table",
           "load_file", "read_file", "skipped_summary", "unsupported"]


@dataclass(kw_only=True)
class LoadOptions:
    passwords: list[str] = field(default_factory=list)  # tried, after the empty one, on encrypted PDFs
    ocr: bool = True  # read scanned pages and images with Tesseract; off, they are reported
    ocr_dpi: int = 300  # what PDF pages are rendered at for OCR (the measured default: bench/results/ingest.md)
    ocr_language: str = "eng"  # Tesseract's language codes, "+"-joined: "eng+deu"
    pdf_tables: bool = True  # find tables on PDF text pages (rag/load/pdf_tables.py); off, pypdf's text as it is
    progress: Callable[[int, int], None] | None = None  # (pages done, pages to OCR) within one file


class Found(NamedTuple):
    files: list[tuple[Path, Path]]  # (file, the folder its source name is relative to)
    skipped: list[Path]  # files of a type we do not read
    failed: list[DocumentError]  # entries that are not regular files, or cannot be looked at


def find_files(paths) -> Found:
    """Expand files and folders (recursively) into files to load; hidden files and folders are skipped,
    and so are files in a folder that no loader reads (counted: skipped_summary). A file named itself
    that no loader reads is a failure.

    Only regular files (or links to one) are loaded: a FIFO, socket or device would block or never end,
    a symlink loop has no content. Those are reported as failures; the rest go on.
    """
    found = Found([], [], [])
    for p in map(Path, paths):
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        _add(found, Path(dirpath) / name, p)
        elif os.path.lexists(p) and p.suffix.lower() not in SUFFIXES:  # named, so meant to be read: a failure
            found.failed.append(DocumentError(p, unsupported(p)))
        elif os.path.lexists(p):
            _add(found, p, p.parent)
        else:
            raise DocumentError(p, "no such file or folder")
    return found


def _add(found: Found, f: Path, root: Path) -> None:
    if f.suffix.lower() not in SUFFIXES:
        found.skipped.append(f)
        return
    why = not_regular(f)
    if why:
        found.failed.append(DocumentError(f, why))
    else:
        found.files.append((f, root))


def unsupported(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    return f"unsupported file type {suffix or '(none)'}; the types read are {', '.join(SUFFIXES)}"


def skipped_summary(paths) -> str:
    """One line for the files of types no loader reads: "skipped 3 files of types .key, .numbers: not supported"."""
    paths = list(paths)
    if not paths:
        return ""
    types = sorted({Path(p).suffix.lower() or "(none)" for p in paths})
    files = f"{len(paths)} file{'s' if len(paths) > 1 else ''}"
    return f"skipped {files} of type{'s' if len(types) > 1 else ''} {', '.join(types)}: not supported"


def format_table() -> str:
    """The formats table of the README, made from the registry so that it cannot drift (a test compares;
    `python -m rag.load README.md` rewrites it)."""
    lines = ["| files | read by | what is stored and cited |", "|---|---|---|"]
    for module in MODULES:
        suffixes = " ".join(f"`{s}`" for s in module.SUFFIXES)
        lines.append(f"| {suffixes} | {module.KIND} | {module.FORMAT.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def not_regular(path: Path) -> str | None:
    """Why `path` is not a regular file we can read, or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if os.path.islink(path):
            return f"broken or looping symbolic link ({e.strerror or e})"
        return f"cannot read: {e.strerror or e}"
    if stat.S_ISREG(mode):
        return None
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a special file")
    return f"not a regular file ({kind}); only regular files are read"


def read_file(path: Path) -> bytes:
    """The bytes of a regular file; anything else (replaced by a FIFO since it was listed, say) is a
    DocumentError. Opened non-blocking, so a pipe cannot hang the run."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        why = not_regular(path)
        raise DocumentError(path, why or f"cannot read: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DocumentError(path, not_regular(path) or "not a regular file; only regular files are read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise DocumentError(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_name(path: Path, root: Path) -> str:
    """The name a document is cited by: its path relative to the indexed folder."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def load_file(path: Path, root: Path, options: LoadOptions | None = None, data: bytes | None = None
              ) -> Iterator[Document | DocumentError]:
    """Yield the file's Documents; per-record problems come back as DocumentError items.

    A problem with the whole file raises DocumentError instead. Pass `data` when the bytes were read
    already (the indexer hashes them first).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LOADERS:
        raise DocumentError(path, unsupported(path))
    if data is None:
        data = read_file(path)
    if not data.strip():
        raise DocumentError(path, "empty file (no text)" if data else "empty file (0 bytes)")
    yield from LOADERS[suffix](path, source_name(path, root), data, options or LoadOptions())
