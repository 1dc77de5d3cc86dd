"""Answerability signals tried and not kept (bench/results/answerability.md measures them): computed here, for
the fit's forward selection, rather than in rag, which computes only the signal the shipped model reads."""

from __future__ import annotations

import re

import numpy as np

from bench.lib import qa_data
from rag.text import WORD, asked_words, stem, words

NEGATION = re.compile(r"\b(not|never|no|none|nothing|without|neither|nor|least|unable|cannot)\b|n['’]t\b", re.I)


def window(hit, start: int, end: int) -> str:
    """The sentence with its neighbours in its passage, and the passage's title."""
    i = hit.sentences.index((start, end))
    a, b = hit.sentences[max(0, i - 1)][0], hit.sentences[min(len(hit.sentences) - 1, i + 1)][1]
    return f"{hit.title} {hit.text[a - hit.start:b - hit.start]}"


def add(items: dict, corpora: qa_data.Corpora) -> None:
    """Candidate signals that did not make it into rag (bench/results/answerability.md says what they add),
    added to each item's signals: the margin to the second sentence; the question's words, names and numbers
    absent from the passages; its words absent from the whole index (idf over the chunks, the everyday
    out-of-corpus case), and those of them without a near-synonym among the candidate sentences (cosine of the
    word's own embedding to a sentence's vector below 0.4: one more model call per question)."""
    vocab = {}
    for name, index in corpora.indexes.items():
        df: dict[str, int] = {}
        for chunk in index.store.chunks():
            for w in {stem(x) for x in words(f"{chunk.title} {chunk.text}")}:
                df[w] = df.get(w, 0) + 1
        vocab[name] = (df, index.store.counts()["chunks"])
    unknown = {}
    for it in (it for its in items.values() for it in its if len(it.candidates)):
        q, hits, cands = it.run.q.text.strip(), it.run.hits, it.candidates
        asked = [stem(w) for w in asked_words(q)]
        tokens = WORD.findall(q)
        names = {stem(t.lower()) for t in tokens[1:] if t[:1].isupper() and stem(t.lower()) in asked}
        numbers = {t for t in tokens if any(ch.isdigit() for ch in t)}
        passage_words = {stem(w) for h in hits for w in words(f"{h.title} {h.text}")}
        sets = [{stem(w) for w in words(c.text)} for c in cands]
        idf = {w: np.log((len(cands) + 1) / (sum(w in x for x in sets) + 0.5)) for w in asked}
        df, n = vocab[it.run.index]
        idf_index = {w: np.log((n + 1) / (df.get(w, 0) + 0.5)) for w in asked}
        top = np.sort(it.scores)[::-1]
        best = cands[int(np.argmax(it.scores))]
        near = window(hits[best.passage], best.start, best.end)
        near_words = {stem(w) for w in words(near)}
        it.signals.update({
            "negation_mismatch": float(bool(NEGATION.search(q)) and not NEGATION.search(best.text)),
            "entity_missing_best": len(names - near_words) / len(names) if names else 0.0,
            "number_missing_best": float(any(x not in near for x in numbers)),
            "gap": float(top[0] - top[1]) if len(top) > 1 else 1.0,
            "absent_words": sum(idf[w] for w in set(asked) - passage_words) / (sum(idf.values()) or 1.0),
            "absent_entities": len(names - passage_words) / len(names) if names else 0.0,
            "absent_numbers": float(any(x not in " ".join(h.text for h in hits) for x in numbers)),
            "unknown_words": sum(v for w, v in idf_index.items() if not df.get(w)) / (sum(idf_index.values()) or 1.0),
        })
        unknown[id(it)] = ([w for w in set(asked) if not df.get(w)], idf_index)
    embedder = next(iter(corpora.indexes.values())).embedder
    todo = sorted({w for ws, _ in unknown.values() for w in ws})
    vectors = dict(zip(todo, embedder.encode(todo))) if todo else {}
    for it in (it for its in items.values() for it in its if len(it.candidates)):
        ws, idf_index = unknown[id(it)]
        matrix = np.stack([c.vector for c in it.candidates])
        alone = [w for w in ws if float((matrix @ vectors[w]).max()) < 0.4]
        it.signals["unknown_unmatched"] = sum(idf_index[w] for w in alone) / (sum(idf_index.values()) or 1.0)
