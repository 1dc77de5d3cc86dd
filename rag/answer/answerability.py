"""Do the cited sentences answer the question? A calibrated probability, from a few cheap signals.

The best sentence's score alone (what the extractive answerer abstained on before) scores a question well
against any sentence on its topic, whether or not the sentence says what was asked. Beside it, the signals
look at what the question names that the best sentence's neighbourhood lacks (its names, its numbers) and at a
negated question answered by an affirmative sentence. bench/fit_answerability.py chose these four signals out of
more (words absent from the passages or from the whole index among them) by what they add on the tune data, and
fitted a logistic regression over them (XQuAD articles 0-23; the SQuAD 2.0 tune articles that are not in
XQuAD's report split): P(the cited sentences hold the answer). Its weights are answerability.json, read once per
process. No model call and no query: everything comes from the retrieved passages and their stored vectors.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np

from ..text import keywords, stem, words

WEIGHTS = Path(__file__).with_name("answerability.json")
# words a question uses to ask, not to name what it is about: their absence says nothing
ASKING = frozenset("""name named called call type kind many much long old far large big often one ones also used
use year years known mean means term example""".split())
NEGATION = re.compile(r"\b(not|never|no|none|nothing|without|neither|nor|least|unable|cannot)\b|n['’]t\b", re.I)
TOKEN = re.compile(r"\w+")


@functools.cache
def weights() -> dict:
    """The fitted model (bench/fit_answerability.py writes it): the signals it reads, their coefficients, the
    calibration of sentence scores, and how its default threshold was chosen."""
    return json.loads(WEIGHTS.read_text(encoding="utf-8"))


def asked_words(question: str) -> list[str]:
    """The question's content words that name what it is about (lower-cased, in order): the words whose
    absence from the documents counts."""
    ws = keywords(question)
    return [w for w in ws if w not in ASKING] or ws


def sentence_probability(scores) -> np.ndarray:
    """The extractive scores of sentences as P(this sentence holds the answer), calibrated on the tune data."""
    s = weights()["sentence"]
    return 1 / (1 + np.exp(-(s["coef"] * np.asarray(scores, np.float64) + s["intercept"])))


def signals(question: str, hits, candidates, scores) -> dict[str, float]:
    """What the model reads, by name: the best sentence's score; a negated question answered by an affirmative
    sentence; the share of the question's names, and whether a number of it, missing around the best sentence.
    `candidates` and `scores` are the extractive answerer's (rag/answer/extractive.py)."""
    b = int(np.argmax(scores))
    best = candidates[b]
    asked = set(asked_words(question))
    tokens = TOKEN.findall(question)
    names = {stem(t.lower()) for t in tokens[1:] if t[:1].isupper() and t.lower() in asked}
    numbers = {t for t in tokens if any(ch.isdigit() for ch in t)}
    window = _window(hits[best.passage], best.start, best.end)
    window_words = {stem(w) for w in words(window)}
    return {
        "best": float(scores[b]),
        "negation_mismatch": float(bool(NEGATION.search(question)) and not NEGATION.search(best.text)),
        "entity_missing_best": len(names - window_words) / len(names) if names else 0.0,
        "number_missing_best": float(any(x not in window for x in numbers)),
    }


def confidence(values: dict[str, float]) -> float:
    """P(the cited sentences hold the answer) from the signals (a logistic regression)."""
    a = weights()["answer"]
    z = a["intercept"] + sum(c * values.get(name, 0.0) for name, c in zip(a["names"], a["coef"]))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def _window(hit, start: int, end: int) -> str:
    """The sentence with its neighbours in its passage, and the passage's title."""
    i = hit.sentences.index((start, end))
    a, b = hit.sentences[max(0, i - 1)][0], hit.sentences[min(len(hit.sentences) - 1, i + 1)][1]
    return f"{hit.title} {hit.text[a - hit.start:b - hit.start]}"
