"""Vectors as stored (rag/store.py): int8 rows with a float32 scale each, a quarter of float32."""

from __future__ import annotations

import numpy as np


def pack(vectors: np.ndarray) -> bytes:
    """Rows as int8 with a float32 scale each (max |x| / 127): 4 + dim bytes a row, cosine within ~1e-3.

    Computed in float64, so unpack(pack(x), exact=True) packs to the same bytes again: a reused
    vector is stored unchanged.
    """
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    scales = (np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127).astype(np.float32)
    q = np.clip(np.rint(rows / scales[:, None].astype(np.float64)), -127, 127).astype(np.int8)
    return scales.tobytes() + q.tobytes()


def unpack(blob: bytes, dim: int, exact: bool = False) -> np.ndarray:
    """(rows, dim) float32, or float64 with exact=True (what pack() reproduces bit for bit)."""
    n = len(blob) // (4 + dim)
    scales = np.frombuffer(blob, dtype=np.float32, count=n)
    q = np.frombuffer(blob, dtype=np.int8, offset=4 * n).reshape(n, dim)
    kind = np.float64 if exact else np.float32
    return q.astype(kind) * scales.astype(kind)[:, None]


def unpack_rows(blobs: list[bytes], dim: int) -> np.ndarray:
    """Many one-row pack() blobs at once: (len(blobs), dim) float32."""
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 4 + dim)
    scales = raw[:, :4].copy().view(np.float32)
    return raw[:, 4:].view(np.int8).astype(np.float32) * scales
