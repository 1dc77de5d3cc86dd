"""What every backend shares: the tokenizer, length-sorted dynamic batches, mean pooling, span pooling.

A backend only supplies `_forward(input_ids, attention_mask, token_type_ids) -> last_hidden_state`
(float32 numpy, batch x length x dim). Everything the index stores is computed here, in numpy, the
same way for every engine, so two backends differ only by what their forward pass computes.

The tokenizer is the model's tokenizer.json read by the `tokenizers` library (what the HF "fast"
tokenizer wraps), with the file's own fixed padding and truncation switched off: the same ids and
character offsets as `AutoTokenizer`, without importing transformers (a second off every start).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np


class Backend:
    """encode / encode_with_spans / count_tokens / max_tokens / dim: what the indexer and `ask` need."""

    name = "base"
    late_chunking = True  # span vectors come from the chunk's own forward pass
    pad_multiple = 1  # batches are padded to a multiple of this many tokens (see _batches)
    query_pad_multiple = None  # the same for the question pass (_query_forward), when it differs
    document_batch = None  # texts per document pass, when the engine needs a fixed number (else batch_size)

    def __init__(self, model_path: str | os.PathLike, threads: int | None = None):
        self.model_path = Path(model_path)
        self.threads = threads
        self.tokenizer = load_tokenizer(self.model_path)
        config = json.loads((self.model_path / "config.json").read_text())
        self.dim = int(config["hidden_size"])
        self.max_seq_length = _max_seq_length(self.model_path, config)
        self.max_tokens = self.max_seq_length - 2  # [CLS] and [SEP]
        self.tokens = TokenCounter(self.tokenizer, self.max_tokens)

    # -- the engine ------------------------------------------------------------------------------

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _query_forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """The pass for questions and the sentences an answer reads (`encode`, `encode_tokens`); documents
        (`encode_with_spans`) take `_forward`. The same unless an engine quantizes documents only."""
        return self._forward(input_ids, attention_mask, token_type_ids)

    # -- the interface -----------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.tokens.count_tokens(texts)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, encodings, hidden, mask in self._batches(texts, batch_size, self._query_forward, self.query_pad_multiple):
            out[rows] = _mean(hidden, mask)
        return normalized(out)

    def encode_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                          batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same forward pass, the normalized mean of the token vectors
        overlapping each (start, end) character span of it (pool_spans)."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        span_vectors: list = [None] * len(texts)
        for rows, encodings, hidden, mask in self._batches(texts, self.document_batch or batch_size, self._forward,
                                                           self.pad_multiple):
            pooled = _mean(hidden, mask)
            vectors[rows] = pooled
            for k, (row, enc) in enumerate(zip(rows, encodings)):
                n = len(enc.ids)
                offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
                span_vectors[row] = pool_spans(hidden[k, :n], offsets, spans[row], pooled[k])
        return normalized(vectors), span_vectors

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """encode()'s vectors and, from the same forward pass, per text its tokens' normalized vectors and
        (start, end) character offsets, [CLS]/[SEP] left out: what the answerer compares a question with a
        sentence by, word for word."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens: list = [None] * len(texts)
        for rows, encodings, hidden, mask in self._batches(texts, len(texts) or 1, self._query_forward, self.query_pad_multiple):
            vectors[rows] = _mean(hidden, mask)
            for k, (row, enc) in enumerate(zip(rows, encodings)):
                n = len(enc.ids)
                tokens[row] = real_tokens(hidden[k, :n], np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2))
        return normalized(vectors), tokens

    # -- batching ----------------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]):
        """Encodings with [CLS]/[SEP], truncated to max_seq_length, unpadded."""
        return self.tokenizer.encode_batch(list(texts), add_special_tokens=True)

    def _batches(self, texts: Sequence[str], batch_size: int, forward, pad_multiple: int | None):
        """Longest first, padded to the batch's longest text only (dynamic padding), rounded up to pad_multiple:
        an engine that prepares its kernels per input shape (OpenVINO) then sees few shapes."""
        if not len(texts):
            return
        encodings = self.tokenize(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            batch = [encodings[i] for i in rows]
            pad = pad_multiple or self.pad_multiple
            length = min(-(-len(batch[0].ids) // pad) * pad, self.max_seq_length)
            ids = np.zeros((len(batch), length), dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.int64)
            for k, e in enumerate(batch):
                ids[k, :len(e.ids)] = e.ids
                mask[k, :len(e.ids)] = 1
            hidden = forward(ids, mask, np.zeros_like(ids))
            yield rows, batch, np.asarray(hidden, dtype=np.float32), mask


class TokenCounter:
    """The tokenizer and how many tokens the model reads: all the chunker needs, without the model
    (picklable, so a cluster's loading tasks count exactly as the model that embeds)."""

    def __init__(self, tokenizer, max_tokens: int):
        self.tokenizer, self.max_tokens = tokenizer, max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if hasattr(self.tokenizer, "encode_batch"):  # a tokenizers.Tokenizer (the fast backends)
            return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        # a transformers tokenizer (sentence-transformers)
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]


def load_tokenizer(model_path: Path):
    """The fast tokenizer of tokenizer.json, padding/truncation as the model reads (no fixed 128 padding)."""
    from tokenizers import Tokenizer

    path = Path(model_path) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: these backends need a fast tokenizer (tokenizer.json)")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    config = json.loads((Path(model_path) / "config.json").read_text())
    tok.enable_truncation(_max_seq_length(Path(model_path), config))  # counts special tokens, as HF does
    return _CountingTokenizer(tok)


class _CountingTokenizer:
    """count_tokens must never truncate (the chunker measures whole sentences to split them)."""

    def __init__(self, tok):
        self._tok = tok
        self._plain = tok.__class__.from_str(tok.to_str())
        self._plain.no_padding()
        self._plain.no_truncation()

    def encode_batch(self, texts, add_special_tokens=True):
        if add_special_tokens:
            return self._tok.encode_batch(texts, add_special_tokens=True)
        return self._plain.encode_batch(texts, add_special_tokens=False)


def _max_seq_length(model_path: Path, config: dict) -> int:
    st = model_path / "sentence_bert_config.json"
    if st.exists():
        value = json.loads(st.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return int(config.get("max_position_embeddings", 512))


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[:, :, None].astype(np.float32)
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def pool_spans(tokens: np.ndarray, offsets: np.ndarray, spans, fallback: np.ndarray) -> np.ndarray:
    """The normalized mean of the token vectors overlapping each (start, end) character span ("late
    chunking": sentence vectors for the answerer at no extra model cost, each read in its context)."""
    tokens, offsets = _covering_text(tokens, offsets)
    if not len(tokens):
        return normalized(np.tile(fallback, (len(spans), 1)))
    sums = np.vstack([np.zeros((1, tokens.shape[1]), np.float32), np.cumsum(tokens, axis=0)])
    rows = []
    for a, b in spans:
        i = int(np.searchsorted(offsets[:, 1], a, side="right"))  # the first token ending after a
        j = min(max(int(np.searchsorted(offsets[:, 0], b, side="left")), i + 1), len(tokens))  # first at or after b
        i = min(i, j - 1)
        rows.append((sums[j] - sums[i]) / (j - i))
    return normalized(np.asarray(rows, dtype=np.float32).reshape(-1, tokens.shape[1]))


def _covering_text(tokens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vectors and offsets of the tokens that cover text (not [CLS], [SEP] or padding)."""
    real = offsets[:, 1] > offsets[:, 0]
    return tokens[real], offsets[real]


def real_tokens(tokens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normalized vectors and offsets of the tokens that cover text (not [CLS], [SEP] or padding)."""
    tokens, offsets = _covering_text(tokens, offsets)
    return normalized(tokens), offsets


def normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)
