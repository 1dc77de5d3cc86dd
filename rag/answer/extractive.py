"""Stage 6, answer (extractive): cite the one to few sentences of the passages that answer, or abstain.

No language model: every word of the answer is a sentence of the documents, cited to its exact span.
The sentence vectors were stored with the chunks, so scoring them costs no model call; deciding whether they
answer reads the cited ones once more (answerability.coverage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..model import ABSTAIN_TEXT, Answer, Citation, Hit, Sentence
from ..text import answer_type, is_heading, is_instruction, keywords, markup_share, stem, words
from . import answerability


@dataclass(kw_only=True)
class Tuning:
    """The extractive answerer's knobs, chosen on XQuAD articles 0-23: the scoring weights by the grid search of
    bench/suites/answers.py --tune before issue 11 (its report: bench/results/answers.md as of commit 927f02f), the
    selection (the fewest cited sentences that keep XQuAD's goals) by bench/fit/fit_answerability.py, which
    writes it to answerability.json as well."""

    lexical_weight: float = 0.5  # weight of the idf-weighted question-word overlap beside embedding similarity
    passage_penalty: float = 0.1  # subtracted from sentences outside the top-ranked passage
    answer_type_weight: float = 0.1  # bonus for a number ("how many"), a date ("when"), a name ("who")
    second_margin: float = 0.2  # further sentences are cited only if they score this close to the best
    max_sentences: int = 3
    duplicate_cosine: float = 0.95  # sentences this similar to one already cited are left out


TUNING = Tuning()


class Candidate(NamedTuple):
    passage: int  # index into the hits
    start: int
    end: int
    text: str  # == the document text[start:end]
    vector: np.ndarray  # made with the chunk, in its context


MAX_MARKUP = 0.4  # sentences with more of their characters inside <tags> are never cited


def candidate_sentences(hits: list[Hit]) -> list[Candidate]:
    """Each distinct sentence of the passages, an exact slice, with its stored vector.

    Sentences addressed to a language model ("ignore previous instructions ..."), sentences that are mostly
    markup and headings are left out: they never state the fact a question asks for.
    """
    seen, out = set(), []
    for p, hit in enumerate(hits):
        for (a, b), vector in zip(hit.sentences, hit.sentence_vectors):
            key = (hit.kb, hit.source, hit.doc_id, hit.page, a, b)
            text = hit.text[a - hit.start:b - hit.start]
            if key in seen or is_instruction(text) or markup_share(text) >= MAX_MARKUP or is_heading(text):
                continue
            seen.add(key)
            out.append(Candidate(p, a, b, text, vector))
    return out


def score(resolved: str, candidates: list[Candidate], query_vector, tuning: Tuning) -> np.ndarray:
    """How well each sentence answers: its cosine to the question, plus the idf-weighted share of the question's
    words it holds (idf over the candidate sentences), plus a bonus when it holds the kind of thing asked for,
    minus a penalty outside the top passage. The sentence vectors were stored with the chunks: no model call."""
    q_words = {stem(w) for w in keywords(resolved)}
    s_words = [{stem(w) for w in words(c.text)} for c in candidates]
    n = len(candidates)
    idf = {w: math.log((n + 1) / (sum(w in s for s in s_words) + 0.5)) for w in q_words}
    total_idf = sum(idf.values())
    # what the question asks for: a number, a date, a name
    holds_answer_type = answer_type(resolved)
    cosine = np.stack([c.vector for c in candidates]) @ np.asarray(query_vector, dtype=np.float32)
    scores = np.empty(n)
    for i, (c, sentence_words, cos) in enumerate(zip(candidates, s_words, cosine)):
        overlap = sum(idf[w] for w in q_words & sentence_words) / total_idf if total_idf else 0.0
        value = float(cos) + tuning.lexical_weight * overlap - (tuning.passage_penalty if c.passage > 0 else 0.0)
        if tuning.answer_type_weight and holds_answer_type and holds_answer_type(c.text):
            value += tuning.answer_type_weight
        scores[i] = value
    return scores


def select(candidates: list[Candidate], scores: np.ndarray, tuning: Tuning) -> list[int]:
    """The best sentence, then the next best while they score within second_margin of it, up to max_sentences,
    leaving out near-duplicates of a sentence already chosen."""
    order = np.argsort(-scores, kind="stable")
    chosen = [int(order[0])]
    for i in order[1:]:
        if len(chosen) >= tuning.max_sentences or scores[i] < scores[order[0]] - tuning.second_margin:
            break
        if all(float(candidates[i].vector @ candidates[j].vector) < tuning.duplicate_cosine for j in chosen):
            chosen.append(int(i))
    return chosen


def extract(question: str, resolved: str, hits: list[Hit], query_vector, tuning: Tuning = TUNING, *,
            min_confidence: float, embedder, question_tokens=None) -> Answer:
    """Cite the one to few sentences that best answer the question, or abstain when the confidence that they
    hold the answer (answerability.py, which may read them with `embedder`, beside the question's
    `question_tokens` when given) is below min_confidence."""
    candidates = candidate_sentences(hits)
    if not candidates:
        return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, passages=hits, confidence=0.0)
    scores = score(resolved, candidates, query_vector, tuning)
    chosen = select(candidates, scores, tuning)
    covered = answerability.coverage(resolved, [candidates[i].text for i in chosen], embedder, question_tokens) \
        if answerability.reads("coverage") else None
    confidence = round(answerability.confidence(answerability.signals(scores, covered)), 4)
    if confidence < min_confidence:
        return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, passages=hits, confidence=confidence)
    probability = answerability.sentence_probability(scores[chosen])
    citations, sentences = [], []
    for n, (i, p) in enumerate(zip(chosen, probability), 1):
        c = candidates[i]
        hit = hits[c.passage]
        citations.append(Citation.in_passage(hit, n=n, passage=c.passage, start=c.start, end=c.end, text=c.text,
                                             score=round(float(p), 4)))
        sentences.append(Sentence(text=f"{c.text} [{n}]", citations=[n]))
    return Answer(question=question, text=" ".join(s.text for s in sentences), abstained=False, citations=citations,
                  passages=hits, sentences=sentences, confidence=confidence)
