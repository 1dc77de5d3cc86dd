"""Do the cited sentences answer the question? A calibrated probability, read from answerability.json.

bench/fit/fit_answerability.py fits a logistic regression on the tune data (XQuAD articles 0-23 asked of several
indexes; the SQuAD 2.0 tune articles that are not in XQuAD's report split) over signals of the retrieved
passages, kept one at a time while they raise the cross-validated AUC. Of the twelve tried (the question's
words, names and numbers missing around the best sentence, from the passages or from the whole index, a negated
question, the margin over the second sentence: bench/fit/signals_tried.py), three paid: the best sentence's score;
the coverage, the question's words matched token by token in the sentences cited; and the background, how well
the passages' other sentences score. An answer stands out from its passages and holds what the question asks
about; a question on the documents' subject that they do not answer finds many sentences scoring alike (the
subject's names match everywhere), none above them, and none with the word it asks about.

That is all this module computes: coverage costs one model call over the sentences an answer would cite (a few
milliseconds). The weights are read once per process; a refit that keeps another signal fails here (KeyError)
until its computation is added.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from ..text import WORD, asked_words

WEIGHTS = Path(__file__).with_name("answerability.json")


@functools.cache
def weights() -> dict:
    """The fitted model (bench/fit/fit_answerability.py writes it): the signals it reads, their coefficients, the
    calibration of sentence scores, and how its default threshold was chosen."""
    return json.loads(WEIGHTS.read_text(encoding="utf-8"))


def sentence_probability(scores) -> np.ndarray:
    """The extractive scores of sentences as P(this sentence holds the answer), calibrated on the tune data."""
    s = weights()["sentence"]
    return 1 / (1 + np.exp(-(s["coef"] * np.asarray(scores, np.float64) + s["intercept"])))


BACKGROUND_OF = 20  # the background is the median score of this many best sentences


def reads(name: str) -> bool:
    """Does the fitted model read this signal? (coverage costs a model call: computed only when read)"""
    return name in weights()["answer"]["names"]


def signals(scores, coverage: float | None = None) -> dict[str, float]:
    """What the model reads, by name: from the extractive scores of the candidate sentences, the best one and
    the median of the BACKGROUND_OF best (all of them when there are fewer); and the coverage, when given."""
    top = np.sort(np.asarray(scores, np.float64))[::-1]
    out = {"best": float(top[0]), "background": float(np.median(top[:BACKGROUND_OF]))}
    if coverage is not None:
        out["coverage"] = coverage
    return out


def coverage(question: str, sentences: list[str], embedder, question_tokens=None) -> float:
    """How well the best-covering of the sentences holds what the question asks about, token by token: each
    word the question asks about (text.asked_words) is matched by its tokens' closest tokens of the sentence
    (cosine, each text read on its own), averaged over the word's tokens, then over the words. "What is
    Putin's favourite breakfast?" of an article about Putin that never mentions food: "Putin" is matched
    everywhere, "breakfast" nowhere. question_tokens: the question's (vectors, offsets), if already made
    (Index.embed_question); one model call reads the sentences."""
    if not sentences:
        return 0.0
    _, others = embedder.encode_tokens(list(sentences) if question_tokens is not None else [question, *sentences])
    if question_tokens is None:
        question_tokens, others = others[0], others[1:]
    q, offsets = question_tokens
    groups = asked_token_groups(question, offsets)
    best = 0.0
    for vectors, _ in others:
        if len(vectors) and len(q):
            best = max(best, float(word_coverage(q, groups, vectors).mean()))
    return best


def asked_token_groups(question: str, offsets: np.ndarray) -> list[np.ndarray]:
    """Per word the question asks about (text.asked_words), the indices of its tokens, from their (start, end)
    character offsets; all the tokens as one group when no asked word has any."""
    asked = set(asked_words(question))
    groups = [np.flatnonzero((offsets[:, 0] >= m.start()) & (offsets[:, 1] <= m.end()))
              for m in WORD.finditer(question) if m.group(0).lower() in asked]
    return [g for g in groups if len(g)] or [np.arange(len(offsets))]


def word_coverage(question_vectors: np.ndarray, groups: list[np.ndarray], sentence_vectors: np.ndarray) -> np.ndarray:
    """Per group of question tokens, the mean cosine of its tokens to their closest sentence token."""
    closest = (question_vectors @ sentence_vectors.T).max(axis=1)
    return np.array([closest[g].mean() for g in groups])


def confidence(values: dict[str, float]) -> float:
    """P(the cited sentences hold the answer) from the signals (a logistic regression)."""
    a = weights()["answer"]
    z = a["intercept"] + sum(c * values[name] for name, c in zip(a["names"], a["coef"]))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
