"""sentence-transformers: the backend for any model it can load (any pooling, any tokenizer).

The general fallback: the fast backends serve mean-pooling models with a fast tokenizer (tokenizer.json);
anything else, a model by hub name you have downloaded, say, runs here. A model that does not mean-pool,
or whose tokenizer gives no character offsets (a "slow" one), gets its sentences encoded on their own.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from ..errors import RagError
from .base import TokenCounter, normalized, pool_spans, real_tokens


class SentenceTransformersBackend:
    """Normalized embeddings plus the model's own token counts, so chunks fit what it can read."""

    precision = "fp32"

    def __init__(self, path: str, name: str, device: str = "cpu"):
        self.name = "sentence-transformers-fp32"
        self.model_name = name
        if os.path.isdir(path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" on every start is noise
        # count_tokens measures whole sentences on purpose, to split them; the length warning is noise
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)

        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as e:
            raise RagError(
                f"cannot load embedding model {name!r} ({type(e).__name__}: {e}); "
                "name a local folder or a model you have downloaded"
            ) from None
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        self.max_tokens = int(self.model.max_seq_length) - 2  # [CLS] and [SEP]
        self.tokenizer = self.model.tokenizer
        self.tokens = TokenCounter(self.tokenizer, self.max_tokens)
        # sentence vectors pooled from the chunk's token vectors need character offsets and a mean-pooling model
        pooling = next((m for m in self.model if type(m).__name__ == "Pooling"), None)
        mode = getattr(pooling, "pooling_mode", None)
        mean = mode == "mean" or (mode is None and getattr(pooling, "pooling_mode_mean_tokens", False))
        self.late_chunking = bool(getattr(self.tokenizer, "is_fast", False) and mean)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.tokens.count_tokens(texts)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True,
            show_progress_bar=progress, convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """encode()'s vectors and per text its tokens' normalized vectors and character offsets ([CLS]/[SEP]
        left out). A tokenizer without offsets (a "slow" one) gives the text's whole span to every token."""
        rows = self._token_outputs(list(texts))
        vectors = np.asarray([v for v, _, _ in rows], dtype=np.float32).reshape(-1, self.dim)
        return normalized(vectors), [real_tokens(hidden, offsets) for _, hidden, offsets in rows]

    def _token_outputs(self, batch: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per text, from one forward pass: its pooled vector, its token vectors ([CLS] and [SEP] included) and
        their (start, end) character offsets (the whole text for every token when the tokenizer has none)."""
        if not batch:
            return []
        outputs = self.model.encode(batch, batch_size=len(batch), output_value=None, show_progress_bar=False)
        if self.late_chunking:
            offsets = self.tokenizer(batch, return_offsets_mapping=True, truncation=True,
                                     max_length=int(self.model.max_seq_length))["offset_mapping"]
        else:
            offsets = [None] * len(batch)
        rows = []
        for text, out, offs in zip(batch, outputs, offsets):
            tokens = out["token_embeddings"][:int(out["attention_mask"].sum())].float().cpu().numpy()
            if offs is None:
                offs = [(0, 0)] + [(0, len(text))] * (len(tokens) - 2) + [(0, 0)]
            if len(offs) != len(tokens):
                raise RagError(f"the tokenizer of {self.model_name!r} gives {len(offs)} offsets for {len(tokens)} tokens")
            rows.append((out["sentence_embedding"].float().cpu().numpy(), tokens,
                         np.asarray(offs, dtype=np.int64).reshape(-1, 2)))
        return rows

    def encode_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                          batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same forward pass, a vector per (start, end) span of it.

        A span's vector is the normalized mean of the token vectors that overlap it ("late chunking"):
        sentence vectors for the answerer at no extra model cost, and each one read in its context.
        A model that does not mean-pool, or whose tokenizer gives no character offsets (a "slow" one),
        gets its spans encoded on their own instead.
        """
        if not self.late_chunking:
            alone = self.encode([t[a:b] for t, s in zip(texts, spans) for a, b in s], batch_size)
            bounds = np.cumsum([0, *map(len, spans)])
            return self.encode(texts, batch_size), [alone[x:y] for x, y in zip(bounds, bounds[1:])]
        vectors, span_vectors = [], []
        for i in range(0, len(texts), batch_size):  # one batch at a time: token vectors are big
            rows = self._token_outputs(list(texts[i:i + batch_size]))
            for (vector, tokens, offsets), text_spans in zip(rows, spans[i:i + batch_size]):
                vectors.append(vector)
                span_vectors.append(pool_spans(tokens, offsets, text_spans, vector))
        if not vectors:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return normalized(np.asarray(vectors, dtype=np.float32)), span_vectors
