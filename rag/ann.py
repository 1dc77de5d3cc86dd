"""The vector index: a FAISS file that is a cache of the vectors in SQLite, never the truth.

It is written as `faiss-<generation>.index` (temp file, fsync, rename) after each commit. A crash
between the commit and the rename leaves a stale or missing file, which the next open notices (the
generation does not match) and rebuilds from SQLite, so FAISS ids and SQLite rows always agree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

_TEMP = re.compile(r"^\.faiss-\d+\.index\.(\d+)\.tmp$")


def faiss_path(directory: Path, generation: int) -> Path:
    return Path(directory) / f"faiss-{generation}.index"


def build(ids: np.ndarray, vectors: np.ndarray, dim: int, hnsw_threshold: int):
    """Exact inner-product search for small corpora; HNSW past the threshold, where exact gets slow."""
    import faiss

    if len(ids) >= hnsw_threshold:
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def save(index, directory: Path, generation: int) -> None:
    """Temp file, fsync, rename: a reader never sees half a file. Older generations and the temp files
    of writers that died mid-save are removed."""
    import faiss

    remove_stale_temp_files(directory)
    final = faiss_path(directory, generation)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    for old in Path(directory).glob("faiss-*.index"):
        if old != final:
            old.unlink(missing_ok=True)


def load(directory: Path, generation: int):
    """The saved index of this generation, or None (missing, stale or unreadable: rebuild it)."""
    import faiss

    path = faiss_path(directory, generation)
    if not path.exists():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete `.faiss-N.index.PID.tmp` files whose writer process is gone; return what went."""
    removed = []
    for path in Path(directory).glob(".faiss-*.tmp"):
        m = _TEMP.match(path.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discard(directory: Path) -> None:
    for path in Path(directory).glob("faiss-*.index"):
        path.unlink(missing_ok=True)
