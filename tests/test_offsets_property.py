"""Offsets are exact for any text: sentences, chunks and citations, over arbitrary unicode (hypothesis).

The text mixes words with combining marks, emoji, right-to-left script, every kind of line end
(CRLF, CR, U+2028, U+2029), zero-width characters, markup, missing punctuation and very long lines.
Chunks are counted by the real model's tokenizer; the answerer runs on them with random sentence
vectors (offsets do not depend on the vectors' values).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from rag.answer import extract
from rag.answer.extractive import TUNING, candidate_sentences
from rag.chunk import CHARS_PER_TOKEN, chunk_document, split_sentences
from rag.model import Document, Hit

PIECES = st.one_of(
    st.sampled_from(["The", "vault", "guard", "Dr.", "U.S.", "e.g.", "No.", "3.14", "1990s", "Petrov", "etc."]),
    st.sampled_from([". ", "? ", "! ", "… ", ".\" ", ") ", " [1] ", " <b>", "</b> ", " <script>x</script> "]),
    st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\u2029", "\n\n", "\t", "  "]),
    st.sampled_from(["e\u0301", "n\u0303o", "👍🏽", "👨‍👩‍👧", "שלום", "مرحبا", "\u200b", "\u200d", "\ufeff", "ﬁ"]),
    st.text(min_size=1, max_size=12),
    st.integers(200, 4000).map(lambda n: "a" * n),  # a very long "word"
    st.integers(50, 400).map(lambda n: " ".join(["lorem"] * n)),  # a very long line without punctuation
)
TEXTS = st.lists(PIECES, min_size=1, max_size=60).map(lambda parts: " ".join(parts))
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@settings(max_examples=200, **COMMON)
@given(TEXTS)
def test_sentences_are_exact_trimmed_slices_that_drop_only_whitespace(text):
    spans = split_sentences(text)
    last = 0
    for a, b in spans:
        assert last <= a < b <= len(text)
        assert text[a:b] == text[a:b].strip()
        assert not text[last:a].strip()  # only whitespace between sentences
        last = b
    assert not text[last:].strip()


@settings(max_examples=60, **COMMON)
@given(TEXTS, st.sampled_from(["", "A title", "Τίτλος 👍"]))
def test_chunks_are_exact_slices_within_both_budgets(embedder, text, title):
    doc = Document(source="s.txt", doc_id="s.txt", text=text, title=title)
    chunks = chunk_document(doc, embedder.count_tokens, 64, 16, embedder.max_tokens)
    covered = set()
    for c in chunks:
        assert c.text == text[c.start:c.end] and c.text
        assert len(c.text) <= 64 * CHARS_PER_TOKEN
        assert embedder.count_tokens([c.embed_text])[0] <= embedder.max_tokens
        assert embedder.count_tokens([c.text])[0] <= 64
        for a, b in c.sentences:
            assert c.start <= a < b <= c.end and text[a:b] == text[a:b].strip()
            covered.update(range(a, b))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


@settings(max_examples=60, **COMMON)
@given(TEXTS, st.integers(0, 2**31))
def test_citations_are_exact_slices(embedder, text, seed):
    doc = Document(source="s.txt", doc_id="s.txt", text=text)
    chunks = chunk_document(doc, embedder.count_tokens, 64, 16, embedder.max_tokens)
    rng = np.random.default_rng(seed)
    hits = []
    for i, c in enumerate(chunks[:5]):
        vectors = rng.normal(size=(len(c.sentences), 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        hits.append(Hit(chunk_id=i, doc_id=c.doc_id, source=c.source, page=None, start=c.start, end=c.end,
                        text=c.text, score=1.0, sentences=c.sentences, sentence_vectors=vectors))
    words = text.split()
    question = " ".join(words[:: max(1, len(words) // 5)][:6]) or "what?"
    candidates = candidate_sentences(hits)
    query = candidates[0].vector if candidates else np.ones(8, np.float32) / np.sqrt(8)
    answer = extract(question, question, hits, query, TUNING, min_confidence=0.0,  # never abstain: offsets are the point
                     embedder=embedder)
    assert bool(answer.citations) == bool(candidates)  # the sentence the question points at is cited
    for c in answer.citations:
        assert c.text == text[c.start:c.end] and c.text
        hit = hits[c.passage]
        assert hit.text[c.start - hit.start:c.end - hit.start] == c.text

