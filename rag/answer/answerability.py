"""Do the cited sentences answer the question? A calibrated probability, read from answerability.json.

bench/fit_answerability.py fits a logistic regression on the tune data (XQuAD articles 0-23 asked of several
indexes; the SQuAD 2.0 tune articles that are not in XQuAD's report split) over signals of the retrieved
passages, kept one at a time while they raise the cross-validated AUC. Of the eleven tried (the question's words,
names and numbers missing around the best sentence, from the passages or from the whole index, a negated
question, the margin over the second sentence: bench/signals_tried.py), two paid: the best sentence's score and
the background, how well the passages' other sentences score. An answer stands out from its passages; a
question on the documents' subject that they do not answer finds many sentences scoring alike (the subject's
names match everywhere) and none above them. That is all this module computes. The weights are read once per process; a refit that keeps another signal
fails here (KeyError) until its computation is added. No model call and no query.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("answerability.json")


@functools.cache
def weights() -> dict:
    """The fitted model (bench/fit_answerability.py writes it): the signals it reads, their coefficients, the
    calibration of sentence scores, and how its default threshold was chosen."""
    return json.loads(WEIGHTS.read_text(encoding="utf-8"))


def sentence_probability(scores) -> np.ndarray:
    """The extractive scores of sentences as P(this sentence holds the answer), calibrated on the tune data."""
    s = weights()["sentence"]
    return 1 / (1 + np.exp(-(s["coef"] * np.asarray(scores, np.float64) + s["intercept"])))


BACKGROUND_OF = 20  # the background is the median score of this many best sentences


def signals(scores) -> dict[str, float]:
    """What the model reads, by name, from the extractive scores of the candidate sentences: the best one, and
    the median of the BACKGROUND_OF best (all of them when there are fewer)."""
    top = np.sort(np.asarray(scores, np.float64))[::-1]
    return {"best": float(top[0]), "background": float(np.median(top[:BACKGROUND_OF]))}


def confidence(values: dict[str, float]) -> float:
    """P(the cited sentences hold the answer) from the signals (a logistic regression)."""
    a = weights()["answer"]
    z = a["intercept"] + sum(c * values[name] for name, c in zip(a["names"], a["coef"]))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
