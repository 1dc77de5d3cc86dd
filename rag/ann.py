"""The vector index: a FAISS file that is a cache of the vectors in SQLite, never the truth.

Two kinds, both holding SQLite's chunk ids as FAISS ids and both taking add_with_ids and remove_ids:
exact search (IndexFlatIP in an IndexIDMap2) below `ivf_threshold` chunks, and from there an inverted
file of 8-bit scalar-quantized vectors (IndexIVFScalarQuantizer, a quarter of float32 in memory). A
commit is applied by its difference (`sync`: the ids SQLite has and FAISS lacks are added, the ones
FAISS has and SQLite lost are removed), so an add never rebuilds; `worth_rebuilding` says when a
rebuild pays (bench/results/scale.md): the exact index crossed the threshold, or the IVF index holds
4x more or 4x fewer vectors than its quantizer was trained for.

It is saved as `faiss-<generation>.index` (temp file, fsync, rename) after each write. A crash
before the rename leaves an older file, which the next open loads and syncs with SQLite (a missing
or unreadable one is rebuilt from it), so FAISS ids and SQLite rows always agree.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

_TEMP = re.compile(r"^\.faiss-\d+\.index\.(\d+)\.tmp$")
_FILE = re.compile(r"^faiss-(\d+)\.index$")
TRAIN_PER_LIST = 64  # training vectors per inverted list (FAISS wants >= 39)


def faiss_path(directory: Path, generation: int) -> Path:
    return Path(directory) / f"faiss-{generation}.index"


def nlist_for(n: int) -> int:
    """Inverted lists for n vectors: 2 sqrt(n) (2,000 at a million), lists of about sqrt(n) / 2."""
    return max(1, int(2 * math.sqrt(n)))


def trained_for(index) -> int:
    """The collection size an IVF index's quantizer was trained for (the inverse of nlist_for)."""
    return int((_ivf(index).nlist / 2) ** 2)


def build(store, dim: int, threshold: int):
    """A fresh index of every vector in SQLite: exact below `threshold` chunks, IVF-SQ8 from there."""
    import faiss

    ids = store.chunk_ids()
    if len(ids) < threshold:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = nlist_for(len(ids))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.min_points_per_centroid = 1  # small test collections: no warning, fewer points per list is fine
        sample = np.sort(np.random.default_rng(0).choice(ids, min(len(ids), TRAIN_PER_LIST * nlist), replace=False))
        index.train(store.vectors_of(sample, dim))
    for batch_ids, vectors in store.iter_vectors(dim):
        index.add_with_ids(vectors, batch_ids)
    return index


def worth_rebuilding(index, n: int, threshold: int) -> bool:
    """For n chunks: exact search past the threshold, or an IVF index 4x bigger or smaller than it was
    trained for (lists 4x longer mean 4x the scan per probe; 4x shorter, poorer recall), or under half
    the threshold (the hysteresis keeps a collection near it from flapping between kinds). Growth by
    4x at a time keeps the cost of rebuilds a constant share of the cost of adding."""
    if _ivf(index) is None:
        return n >= threshold
    trained = trained_for(index)
    return n > 4 * trained or n < trained / 4 or n < threshold / 2


def sync(index, store, dim: int) -> tuple[int, int]:
    """Make the index hold exactly SQLite's chunks: add the new ids' vectors, remove the gone ids.
    Return (added, removed). Chunk ids are never reused (AUTOINCREMENT), so an id in both holds the
    same vector."""
    import faiss

    have, want = ids(index), store.chunk_ids()
    gone, new = np.setdiff1d(have, want, assume_unique=True), np.setdiff1d(want, have, assume_unique=True)
    if len(gone):
        index.remove_ids(faiss.IDSelectorBatch(gone))
    for i in range(0, len(new), 50_000):
        part = new[i:i + 50_000]
        index.add_with_ids(store.vectors_of(part, dim), part)
    return len(new), len(gone)


def ids(index) -> np.ndarray:
    """The FAISS ids the index holds, sorted (int64)."""
    import faiss

    ivf = _ivf(index)
    if ivf is None:
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, dtype=np.int64)


def configure(index, nprobe: int) -> None:
    """Search-time settings, which FAISS does not save: lists probed per query."""
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = min(nprobe, ivf.nlist)


def describe(index) -> str:
    ivf = _ivf(index)
    return "exact" if ivf is None else f"IVF{ivf.nlist},SQ8 nprobe {ivf.nprobe} (trained for {trained_for(index):,})"


def _ivf(index):
    import faiss

    return faiss.try_extract_index_ivf(index)


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


def load(directory: Path):
    """(index, generation) of the newest readable saved file, or (None, None): rebuild from SQLite."""
    import faiss

    for _ in range(3):  # a writer may replace the newest file while we list them: look again
        found = sorted(((int(m.group(1)), p) for p in Path(directory).glob("faiss-*.index")
                        if (m := _FILE.match(p.name))), reverse=True)
        for generation, path in found:
            try:
                return faiss.read_index(str(path)), generation
            except RuntimeError:  # unreadable, or removed meanwhile
                continue
    return None, None


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


def owns(path: Path) -> bool:
    """Is this file one of the vector index's (a saved index or a writer's temporary file)?"""
    return bool(re.fullmatch(r"faiss-\d+\.index", path.name) or _TEMP.match(path.name))
