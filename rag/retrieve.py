"""Stage 5, retrieve: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion.

Pure functions over what they are given: a FAISS index, a Store and a query vector. `Index.search`
is the one way in; it supplies those from the open index.
"""

from __future__ import annotations

import numpy as np

from .config import check_mode
from .model import Hit
from .text import keywords


def search(*, faiss_index, store, query: str, query_vector: np.ndarray | None, k: int, mode: str,
           fusion: str = "convex", alpha: float = 0.5, candidates: int = 100, max_df: int | None = None) -> list[Hit]:
    """Top-k chunks for the query. `query_vector` (1, dim) is needed for dense and hybrid."""
    check_mode(mode)
    fetch = max(k, candidates if mode == "hybrid" else k)
    if mode == "dense":
        ranked = dense(faiss_index, query_vector, fetch)
    elif mode == "bm25":
        ranked = bm25(store, query, fetch, max_df)
    else:
        ranked = fuse(dense(faiss_index, query_vector, fetch), bm25(store, query, fetch, max_df), fusion, alpha)
    return store.hits(ranked[:k])


def dense(faiss_index, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(chunk id, cosine), best first."""
    if faiss_index.ntotal == 0:
        return []
    scores, ids = faiss_index.search(np.asarray(query_vector, dtype=np.float32).reshape(1, -1),
                                     min(k, faiss_index.ntotal))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def bm25(store, query: str, k: int, max_df: int | None = None) -> list[tuple[int, float]]:
    """(chunk id, BM25 score), best first, over the query's content words (those in at most max_df chunks)."""
    return store.keyword_search(keywords(query), k, max_df)


def fuse(dense_hits, keyword_hits, method: str = "convex", alpha: float = 0.5, rrf_k: int = 60):
    """Combine two ranked lists. Convex: min-max normalized scores, weighted; RRF: 1/(rrf_k + rank)."""
    scores: dict[int, float] = {}
    if method == "rrf":
        for weight, hits in ((alpha, dense_hits), (1 - alpha, keyword_hits)):
            for rank, (i, _) in enumerate(hits):
                scores[i] = scores.get(i, 0.0) + weight / (rrf_k + rank + 1)
    else:
        for weight, hits in ((alpha, dense_hits), (1 - alpha, keyword_hits)):
            if not hits:
                continue
            values = [s for _, s in hits]
            low, high = min(values), max(values)
            span = (high - low) or 1.0
            for i, s in hits:
                scores[i] = scores.get(i, 0.0) + weight * (s - low) / span
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))
