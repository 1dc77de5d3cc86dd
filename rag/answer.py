"""Stage 6, answer: compose an answer from cited sentence spans, or abstain."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import retrieve
from .config import Settings
from .errors import LLMError, RagError
from .retrieve import Hit, keywords


@dataclass
class Citation:
    n: int  # the marker [n] in the answer text
    source: str
    doc_id: str
    page: int | None
    start: int  # offsets into the document text (the page text for PDFs)
    end: int
    text: str  # == document text[start:end], exactly
    score: float
    passage: int = 0  # index into Answer.passages of the passage the span lies in


@dataclass
class Sentence:
    text: str
    citations: list[int] = field(default_factory=list)  # citation numbers
    supported: bool = True


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    mode: str = "extractive"  # extractive | generative
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # generated sentences removed, with the reason
    note: str = ""  # one line about how the answer was made, e.g. why it fell back to extractive
    resolved_question: str = ""  # the question after folding in the conversation history

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passages"] = [p.to_dict() for p in self.passages]
        return d


# -- the extractive answerer ---------------------------------------------------------------------

ABSTAIN_TEXT = "I can't find that in the documents."
_FOLLOWUP_START = ("and ", "but ", "or ", "also ", "what about", "how about", "same for", "and?", "what of")
_PRONOUNS = frozenset("it its he him his she her they them their theirs that this those these there one".split())

_default_indexes: dict = {}
_default_lock = threading.Lock()


@dataclass
class Tuning:
    """The extractive answerer's knobs, chosen on XQuAD articles 0-23 (bench/answers.py --tune)."""

    lexical_weight: float = 0.5  # weight of the idf-weighted question-word overlap beside embedding similarity
    passage_penalty: float = 0.1  # subtracted from sentences outside the top-ranked passage
    answer_type_weight: float = 0.1  # bonus for a number ("how many"), a date ("when"), a name ("who")
    second_margin: float = 0.25  # further sentences are cited only if they score this close to the best
    max_sentences: int = 3
    duplicate_cosine: float = 0.95  # sentences this similar to one already cited are left out
    abstain_below: float = 0.5  # best sentence score under which the answer abstains


TUNING = Tuning()


def ask(question: str, index=None, history=None, settings: Settings | None = None, on_token=None,
        k: int | None = None, mode: str | None = None, tuning: Tuning | None = None) -> Answer:
    """Answer from the index, every sentence cited to an exact span, or abstain.

    With no index, the default one (settings.index_dir) is used, built from settings.corpus_dir
    on first use. `history` is the conversation so far as {"role", "content"} dicts.
    """
    if not question or not question.strip():
        raise RagError("the question is empty; ask something about your documents")
    if index is None:
        index = default_index(settings)
    settings = settings or index.settings
    timings: dict[str, float] = {}
    t = time.perf_counter()
    resolved = resolve_question(question, history)
    embedder = index.embedder
    query_vector = embedder.encode([resolved])
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    hits = retrieve.search(index, resolved, k or settings.k, mode or settings.mode, query_vector=query_vector)
    timings["search"] = time.perf_counter() - t
    t = time.perf_counter()
    answer = None
    if settings.llm_url and hits:
        from . import generate

        try:
            answer = generate.generate_answer(question, hits, settings, embedder, on_token=on_token, history=history)
        except LLMError as e:
            note = f"answered extractively: the language model failed ({e})"
            answer = extract(question, resolved, hits, query_vector[0], tuning or TUNING)
            answer.note = note
    if answer is None:
        answer = extract(question, resolved, hits, query_vector[0], tuning or TUNING)
    timings["compose"] = time.perf_counter() - t
    answer.timings = {**timings, "total": sum(timings.values())}
    answer.resolved_question = resolved
    return answer


def default_index(settings: Settings | None = None):
    """The index at settings.index_dir, opened once per process and built from the corpus if empty (or
    written by an older version)."""
    from .index import Index

    settings = settings or Settings.from_env()
    key = (str(Path(settings.index_dir).resolve()), settings.model)
    with _default_lock:
        index = _default_indexes.get(key)
        if index is None:
            index = Index.open(settings.index_dir, settings, upgrade=True)
            if index.store.counts()["chunks"] == 0:
                report = index.add([settings.corpus_dir])
                if not report.added and not report.unchanged:
                    raise RagError(f"nothing to answer from: no document could be indexed in {settings.corpus_dir}")
            _default_indexes[key] = index
    return index


def resolve_question(question: str, history=None) -> str:
    """Fold the previous question into a follow-up ("and how many NATO chiefs?") before retrieval."""
    previous = [text for text in (_content(m) for m in (history or []) if _role(m) == "user") if text]
    if not previous:
        return question.strip()
    q = question.strip()
    low = q.lower()
    words = keywords(q)
    pronoun = any(w in _PRONOUNS for w in _words(low))
    if low.startswith(_FOLLOWUP_START) or (pronoun and len(words) <= 3) or len(words) <= 1:
        return f"{previous[-1]} {q}"
    return q


def _role(message) -> str:
    return message.get("role", "") if isinstance(message, dict) else ""


def _content(message):
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, list):  # gradio may hand over [{"type": "text", "text": ...}]
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


class Candidate(NamedTuple):
    passage: int  # index into the hits
    start: int
    end: int
    text: str  # == the document text[start:end]
    vector: np.ndarray  # made with the chunk, in its context


def candidate_sentences(hits: list[Hit]) -> list[Candidate]:
    """Each distinct sentence of the passages, an exact slice, with its stored vector."""
    seen, out = set(), []
    for p, hit in enumerate(hits):
        for (a, b), vector in zip(hit.sentences, hit.sentence_vectors):
            key = (hit.source, hit.doc_id, hit.page, a, b)
            if key in seen:
                continue
            seen.add(key)
            out.append(Candidate(p, a, b, hit.text[a - hit.start:b - hit.start], vector))
    return out


def extract(question: str, resolved: str, hits: list[Hit], query_vector, tuning: Tuning) -> Answer:
    """Cite the one to few sentences that best answer the question, or abstain.

    A sentence scores its cosine to the question, plus the idf-weighted share of the question's words
    it holds (idf over the candidate sentences), plus a bonus when it holds the kind of thing asked for,
    minus a penalty outside the top passage. The sentence vectors were stored with the chunks: no model
    call here.
    """
    candidates = candidate_sentences(hits)
    if not candidates:
        return Answer(question, ABSTAIN_TEXT, True, passages=hits)
    q_words = {_stem(w) for w in keywords(resolved)}
    s_words = [{_stem(w) for w in _words(c.text)} for c in candidates]
    n = len(candidates)
    idf = {w: math.log((n + 1) / (sum(w in s for s in s_words) + 0.5)) for w in q_words}
    total_idf = sum(idf.values())
    # what the question asks for: a number, a date, a name
    q_low = resolved.lower()
    wants_number = re.search(r"\bhow (many|much|long|old|far|large|big|tall|often|high|fast)\b"
                             r"|\bwhat (percentage|percent|proportion|number|amount)\b", q_low)
    wants_date = re.search(r"\bwhen\b|\b(what|which|in what|in which) (year|century|decade|date|month|day)\b", q_low)
    wants_name = re.search(r"\b(who|whom|whose)\b", q_low)
    q_all = set(_words(resolved))

    def holds_answer_type(text: str) -> bool:
        if wants_number and re.search(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                                      r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|half)\b",
                                      text, re.I):
            return True
        if wants_date and re.search(r"\b(1\d{3}|20\d\d|\d{1,4}s|\d{1,2}(st|nd|rd|th) century|January|February|"
                                    r"March|April|May|June|July|August|September|October|November|December)\b", text):
            return True
        return bool(wants_name) and any(m.group(0).lower() not in q_all
                                        for m in re.finditer(r"\b[A-Z][a-z]+", text[1:]))

    cosine = np.stack([c.vector for c in candidates]) @ np.asarray(query_vector, dtype=np.float32)
    scores = []
    for c, words, cos in zip(candidates, s_words, cosine):
        overlap = sum(idf[w] for w in q_words & words) / total_idf if total_idf else 0.0
        score = float(cos) + tuning.lexical_weight * overlap - (tuning.passage_penalty if c.passage > 0 else 0.0)
        if tuning.answer_type_weight and holds_answer_type(c.text):
            score += tuning.answer_type_weight
        scores.append(score)
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    best = order[0]
    if scores[best] < tuning.abstain_below:
        return Answer(question, ABSTAIN_TEXT, True, passages=hits)
    chosen = [best]
    for i in order[1:]:
        if len(chosen) >= tuning.max_sentences or scores[i] < scores[best] - tuning.second_margin:
            break
        if all(float(candidates[i].vector @ candidates[j].vector) < tuning.duplicate_cosine for j in chosen):
            chosen.append(i)
    citations, sentences = [], []
    for n, i in enumerate(chosen, 1):
        c = candidates[i]
        hit = hits[c.passage]
        citations.append(Citation(n, hit.source, hit.doc_id, hit.page, c.start, c.end, c.text, round(scores[i], 4),
                                  c.passage))
        sentences.append(Sentence(f"{c.text} [{n}]", [n], True))
    return Answer(question, " ".join(s.text for s in sentences), False, citations, hits, sentences=sentences)
