"""Stage 5, retrieve: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion.

Pure functions over what they are given: shards (a FAISS index and a Store each, under a KB's name) and a
query vector. `Index.search` (one index) and `Selection.search` (several knowledge bases, rag/kb.py) are the ways
in; they supply those from the open indexes. Several shards make one ranking: their candidates are pooled before
fusion. Cosines share one scale across shards; BM25 scores do not (each collection has its own idf: in a KB of a
few chunks FTS5 gives every word almost none), so each shard's keyword scores are min-max scaled on their own
first, and the dense side decides between shards. With one shard this is exactly the search of that index alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .config import check_mode
from .model import Hit
from .text import keywords


class Shard(NamedTuple):
    kb: str  # named on every hit from it
    faiss_index: Any  # None for bm25
    store: Any


def search(*, shards: list[Shard], query: str, query_vector: np.ndarray | None, k: int, mode: str,
           fusion: str = "convex", alpha: float = 0.5, candidates: int = 100, max_df: int | None = None) -> list[Hit]:
    """Top-k chunks for the query over the shards, one ranking. `query_vector` (1, dim) is needed for dense and
    hybrid. Ranked ids are (shard number, chunk id) pairs."""
    check_mode(mode)
    fetch = max(k, candidates if mode == "hybrid" else k)

    def pooled(side) -> list[tuple[tuple[int, int], float]]:
        ranked = [((n, i), score) for n, shard in enumerate(shards) for i, score in side(shard)]
        return sorted(ranked, key=lambda x: (-x[1], x[0]))[:fetch] if len(shards) > 1 else ranked

    def dense_side(shard):
        return dense(shard.faiss_index, query_vector, fetch)

    def bm25_side(shard):
        ranked = bm25(shard.store, query, fetch, max_df)
        return scaled(ranked) if len(shards) > 1 else ranked
    if mode == "dense":
        ranked = pooled(dense_side)
    elif mode == "bm25":
        ranked = pooled(bm25_side)
    else:
        ranked = fuse(pooled(dense_side), pooled(bm25_side), fusion, alpha)
    return hits(shards, ranked[:k])


def hits(shards: list[Shard], ranked) -> list[Hit]:
    """Hits for ((shard number, chunk id), score) pairs, in the given order, each named by its shard's KB."""
    by_shard: dict[int, list] = {}
    for (n, i), score in ranked:
        by_shard.setdefault(n, []).append((i, score))
    found = {}
    for n, pairs in by_shard.items():
        for hit in shards[n].store.hits(pairs):
            hit.kb = shards[n].kb
            found[(n, hit.chunk_id)] = hit
    return [found[key] for key, _ in ranked if key in found]


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


def scaled(ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Scores min-max scaled to [0, 1] (all equal: 1), order kept."""
    if not ranked:
        return ranked
    low, high = min(s for _, s in ranked), max(s for _, s in ranked)
    return [(i, (s - low) / (high - low) if high > low else 1.0) for i, s in ranked]


def fuse(dense_hits, keyword_hits, method: str = "convex", alpha: float = 0.5, rrf_k: int = 60):
    """Combine two ranked lists of (id, score). Convex: min-max normalized scores, weighted; RRF: 1/(rrf_k + rank)."""
    scores: dict = {}
    if method == "rrf":
        for weight, side in ((alpha, dense_hits), (1 - alpha, keyword_hits)):
            for rank, (i, _) in enumerate(side):
                scores[i] = scores.get(i, 0.0) + weight / (rrf_k + rank + 1)
    else:
        for weight, side in ((alpha, dense_hits), (1 - alpha, keyword_hits)):
            if not side:
                continue
            values = [s for _, s in side]
            low, high = min(values), max(values)
            span = (high - low) or 1.0
            for i, s in side:
                scores[i] = scores.get(i, 0.0) + weight * (s - low) / span
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))
