"""What the Office loaders (docx, xlsx, pptx) share: their files are ZIP packages, and an old binary file, or a
password-protected one (Office stores those the old way), is named as such instead of failing inside a parser."""

from __future__ import annotations

from ..errors import DocumentError

ZIP = b"PK\x03\x04"
OLE2 = b"\xd0\xcf\x11\xe0"  # the 97-2003 binary formats, and encrypted Office files


def check_package(path, data: bytes, *, app: str, old: str, new: str, what: str) -> None:
    """Raise DocumentError unless `data` is a ZIP package; e.g. app="Word", old=".doc", new=".docx", what=".docx"."""
    if data.startswith(ZIP):
        return
    if data.startswith(OLE2):
        raise DocumentError(path, f"an old {app} 97-2003 {old} file (or a password-protected {what}); "
                                  f"save it as {new} without a password")
    raise DocumentError(path, f"not {'an' if app[0] in 'AEIOU' else 'a'} {app} {new} file (it starts with "
                              f"{data[:8]!r}, not a ZIP package)")
