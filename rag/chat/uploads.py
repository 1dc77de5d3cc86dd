"""Uploads: checked on the server whatever the browser did, stored only inside the corpus folder."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..load import SUFFIXES
from .render import human_size

MAX_UPLOAD_MB = 50

_SAFE_NAME = re.compile(r"[^\w.\- ()+,@]+", re.UNICODE)


def safe_filename(name: str) -> str | None:
    """A plain file name to store under the corpus folder, or None when there is none to keep."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if not base or base.startswith(".") or base in (".", ".."):
        return None
    return base[:200]


def accepted_types(max_bytes: int) -> str:
    """The line under the upload button: which files it takes."""
    return (f'<p class="rag-accepted">Add documents of these types: {" ".join(SUFFIXES)} '
            f"(up to {human_size(max_bytes)} each)</p>")


def check_upload(path: str | Path, name: str, max_bytes: int) -> str | None:
    """Why an uploaded file cannot go into the corpus, or None when it may."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        return f"file type {suffix or '(none)'} is not accepted; use one of {', '.join(SUFFIXES)}"
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return f"cannot read the upload: {e.strerror or e}"
    if size > max_bytes:
        return f"too large ({human_size(size)}; the limit is {human_size(max_bytes)})"
    if size == 0:
        return "empty file"
    return None


def inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


def restore(dest: Path, backup: Path | None):
    """Put back the file an upload replaced, or remove the upload."""
    try:
        if backup is not None:
            shutil.copy2(backup, dest)
        else:
            dest.unlink(missing_ok=True)
    except OSError:
        pass
