"""Stage 5, retrieve: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import RagError


@dataclass
class Hit:
    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    start: int  # offsets into the document text (the page text for PDFs)
    end: int
    text: str  # == document text[start:end]
    score: float
    sentences: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets
    title: str = ""
    # one normalized row per sentence, made when the chunk was embedded (the answerer scores with them)
    sentence_vectors: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sentence_vectors"}
        d["sentences"] = [list(s) for s in self.sentences]
        return d


_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def keywords(text: str) -> list[str]:
    """Content words of a query, lowercased, in order, without repeats."""
    seen = []
    for w in _WORD.findall(text.lower()):
        if w not in _STOPWORDS and w not in seen:
            seen.append(w)
    return seen


def search(index, query: str, k: int, mode: str, query_vector=None) -> list[Hit]:
    """Top-k chunks for the query; pass query_vector when the caller has embedded it already."""
    s = index.settings
    fetch = max(k, s.candidates if mode == "hybrid" else k)
    if mode == "dense":
        ranked = dense(index, query, fetch, query_vector)
    elif mode == "bm25":
        ranked = bm25(index, query, fetch)
    elif mode == "hybrid":
        ranked = fuse(dense(index, query, fetch, query_vector), bm25(index, query, fetch), s.fusion, s.alpha)
    else:
        raise RagError(f"mode must be dense, bm25 or hybrid, not {mode!r}")
    ranked = ranked[:k]
    rows = index.store.hits([i for i, _ in ranked])
    return [_hit(rows[i], score) for i, score in ranked if i in rows]


def dense(index, query: str, k: int, query_vector=None) -> list[tuple[int, float]]:
    faiss_index = index.faiss()
    if faiss_index.ntotal == 0:
        return []
    vector = index.embedder.encode([query]) if query_vector is None else query_vector
    scores, ids = faiss_index.search(vector, min(k, faiss_index.ntotal))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def bm25(index, query: str, k: int) -> list[tuple[int, float]]:
    words = keywords(query)
    if not words:
        return []
    return index.store.keyword_search(" OR ".join(f'"{w}"' for w in words), k)


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


def _hit(row, score: float) -> Hit:
    chunk_id, doc_id, source, page, start, end, text, sentences, title, sentence_vectors = row
    spans = [tuple(s) for s in json.loads(sentences)]
    vectors = np.frombuffer(sentence_vectors, dtype=np.float16).astype(np.float32).reshape(len(spans), -1)
    return Hit(chunk_id, doc_id, source, page, start, end, text, float(score), spans, title, vectors)
