"""Verifying a generated answer: every sentence must be supported by the exact span it cites.

Support of a span for a sentence is embedding cosine plus lexical overlap, minus a penalty when the
sentence states a number the span lacks. Instruction-like spans never count as support.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..chunk import split_sentences
from ..model import Citation, Dropped, Hit, Sentence
from ..text import content_tokens, is_instruction, numbers_in
from .reply import join_sentences, reply_sentences, with_markers

# ---------------------------------------------------------------------------------------------------
# Support thresholds. Calibrated on XQuAD-en by bench/fit/calibrate_support.py (see its docstring and
# bench/results/calibration.md): claims made of question + gold answer against the gold paragraph
# (positives) versus the same claims against the most similar other paragraph of the same article,
# a paragraph of another article, and the gold paragraph with the answer swapped for a wrong one.
# ---------------------------------------------------------------------------------------------------
COS_WEIGHT = 0.4  # support = COS_WEIGHT * cosine + (1 - COS_WEIGHT) * lexical overlap - number penalty
NUMBER_PENALTY = 1.0  # subtracted when the span lacks a number the sentence states (so it cannot pass)
SUPPORT_THRESHOLD = 0.56  # a cited span supports a sentence at or above this (max TPR - FPR)
ADD_THRESHOLD = 0.63  # an unmarked (or wrongly marked) sentence gets a citation at or above this (hard FPR <= 1%)
MAX_WINDOW = 2  # a citation covers 1 or 2 adjacent sentences of a passage
MIN_WORDS = 2  # a sentence needs this many content words, one of them not a number, to be checked at all


@dataclass(kw_only=True)
class Verified:
    """What `verify` makes of a reply."""

    sentences: list[Sentence] = field(default_factory=list)  # shown; unsupported ones too if kept (flagged)
    citations: list[Citation] = field(default_factory=list)  # numbered 1..m in order of first use, exact spans
    dropped: list[Dropped] = field(default_factory=list)  # sentences and markers taken out, with the reason
    text: str = ""  # the sentences with their renumbered [n] markers; kept unsupported ones end "[unsupported]"


def lexical_support(sentence_tokens: set[str], span_tokens: set[str]) -> float:
    """Share of the sentence's content tokens found in the span (0 when it has none: nothing to check)."""
    if not sentence_tokens:
        return 0.0
    return len(sentence_tokens & span_tokens) / len(sentence_tokens)


def support_score(cosine: float, lexical: float, missing_numbers: int = 0, weight: float | None = None) -> float:
    w = COS_WEIGHT if weight is None else weight
    return w * float(cosine) + (1.0 - w) * float(lexical) - (NUMBER_PENALTY if missing_numbers else 0.0)


@dataclass(kw_only=True)
class Claim:
    """A generated sentence as the verifier sees it."""

    text: str
    tokens: set
    numbers: set
    vector: np.ndarray

    def score(self, window: "Window", weight: float | None = None) -> float:
        return support_score(float(self.vector @ window.vector), lexical_support(self.tokens, window.tokens),
                             len(self.numbers - window.numbers), weight)


_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_CACHE_SIZE = 8192
_CACHE_LOCK = threading.Lock()


def encode_cached(embedder, texts: Sequence[str]) -> np.ndarray:
    """Normalized vectors, with a per-process cache: the same passages come back turn after turn."""
    model = (getattr(embedder, "model_name", ""), getattr(embedder, "name", None) or id(embedder))
    with _CACHE_LOCK:
        found = {t: _CACHE[model + (t,)] for t in dict.fromkeys(texts) if model + (t,) in _CACHE}
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing:
        vecs = embedder.encode(missing)
        with _CACHE_LOCK:
            for t, v in zip(missing, vecs):
                found[t] = v
                _CACHE[model + (t,)] = v
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
    with _CACHE_LOCK:
        for t in found:
            if model + (t,) in _CACHE:
                _CACHE.move_to_end(model + (t,))
    if not texts:
        return np.zeros((0, getattr(embedder, "dim", 0)), dtype=np.float32)
    return np.stack([found[t] for t in texts])


@dataclass(kw_only=True)
class Window:
    """A run of 1..MAX_WINDOW adjacent sentences of one passage: a candidate citation."""

    passage: int
    start: int  # absolute offsets into the document text
    end: int
    text: str
    tokens: set
    numbers: set
    vector: np.ndarray
    instruction: bool


def passage_windows(hit: Hit) -> list[tuple[int, int]]:
    """Sentence spans of a hit, absolute and clipped to it; split afresh if the hit has none."""
    spans = [(max(a, hit.start), min(b, hit.end)) for a, b in (hit.sentences or [])]
    spans = [(a, b) for a, b in spans if a < b]
    if not spans:
        spans = [(hit.start + a, hit.start + b) for a, b in split_sentences(hit.text)]
    return sorted(spans)


def build_windows(hits: Sequence[Hit], embedder) -> list[list[Window]]:
    """Every single sentence and every run of adjacent sentences, for each hit, with vectors.

    A run's vector is the normalized mean of its sentences' vectors (one encode per sentence)."""
    per_hit_spans = [passage_windows(h) for h in hits]
    texts = [h.text[a - h.start:b - h.start] for h, spans in zip(hits, per_hit_spans) for a, b in spans]
    vecs = encode_cached(embedder, texts)
    out, i = [], 0
    for p, (hit, spans) in enumerate(zip(hits, per_hit_spans)):
        sent_vecs = vecs[i:i + len(spans)]
        i += len(spans)
        windows = []
        for j in range(len(spans)):
            for size in range(1, MAX_WINDOW + 1):
                if j + size > len(spans):
                    break
                a, b = spans[j][0], spans[j + size - 1][1]
                text = hit.text[a - hit.start:b - hit.start]
                v = sent_vecs[j:j + size].mean(axis=0)
                v = v / (np.linalg.norm(v) or 1.0)
                parts = [hit.text[x - hit.start:y - hit.start] for x, y in spans[j:j + size]]
                windows.append(Window(passage=p, start=a, end=b, text=text, tokens=content_tokens(text),
                                      numbers=numbers_in(text), vector=v,
                                      instruction=any(is_instruction(t) for t in parts)))
        out.append(windows)
    return out


def best_window(claim: Claim, windows: Sequence[Window]):
    """(score, window) of the best-supporting window that is not an instruction; (0, None) if none."""
    best, best_w = float("-inf"), None
    for w in windows:
        if w.instruction:
            continue
        s = claim.score(w)
        # prefer the shorter window on ties: a citation should be as narrow as the evidence
        if s > best + 1e-9:
            best, best_w = s, w
    return (best, best_w) if best_w is not None else (0.0, None)


def verify(text: str, hits: Sequence[Hit], embedder, keep_unsupported: bool = False) -> Verified:
    """Check every sentence of a generated answer against the passages it cites.

    For each sentence: markers that point at no passage are dropped; each remaining marker [n] is
    mapped to the window (1 or 2 adjacent sentences) of passage n that supports the sentence best;
    the sentence is supported when one cited window scores >= SUPPORT_THRESHOLD, or the cited
    windows together do (a sentence that joins facts from two passages). Cited passages that add
    nothing are dropped. A sentence with no supporting citation is given the best window of any
    passage if that scores >= ADD_THRESHOLD, otherwise it is unsupported: removed from the shown
    text (or kept and flagged with keep_unsupported) and listed in `dropped` with the reason.
    Instruction-like spans ("ignore previous instructions ...") never count as support.

    Every citation is an exact span of a passage: citation.text == hit.text[start - hit.start:end - hit.start].
    """
    return verify_parsed(reply_sentences(text), hits, embedder, keep_unsupported)


def verify_parsed(parsed, hits, embedder, keep_unsupported: bool = False) -> Verified:
    """`verify` for a reply already split into (sentence, markers) pairs."""
    dropped: list[Dropped] = []
    if not parsed:
        return Verified()
    windows = build_windows(hits, embedder)
    all_windows = [w for ws in windows for w in ws]
    vecs = encode_cached(embedder, [s for s, _ in parsed])

    citations: list[Citation] = []
    by_span: dict[tuple[int, int, int], int] = {}

    def cite(w: Window, score: float) -> int:
        key = (w.passage, w.start, w.end)
        if key not in by_span:
            hit = hits[w.passage]
            n = len(citations) + 1
            citations.append(Citation.in_passage(hit, n=n, passage=w.passage, start=w.start, end=w.end, text=w.text,
                                                 score=round(float(score), 4)))
            by_span[key] = n
        return by_span[key]

    def drop_marker(stext, n, reason):
        dropped.append(Dropped(kind="marker", text=stext, marker=n, reason=reason))

    sentences: list[Sentence] = []
    shown: list[str] = []
    for (stext, markers), vec in zip(parsed, vecs):
        claim = Claim(text=stext, tokens=content_tokens(stext), numbers=numbers_in(stext), vector=vec)
        question = stext.rstrip("\"'”’)] ").endswith("?")
        if question or not checkable(claim):
            claim.tokens = set()  # "1", "Yes.", "The answer is:", a question -- nothing a citation could vouch for
        valid: list[int] = []
        for n in markers:
            if not 1 <= n <= len(hits):
                drop_marker(stext, n, f"[{n}] points at no passage (there are {len(hits)})")
            elif n not in valid:
                valid.append(n)
        scored = []  # (score, window, marker), best first
        for n in valid:
            score, w = best_window(claim, windows[n - 1])
            if w is not None:
                scored.append((score, w, n))
        scored.sort(key=lambda x: -x[0])
        chosen = [x for x in scored if x[0] >= SUPPORT_THRESHOLD]
        if not chosen and len(scored) > 1 and joint_score(claim, [w for _, w, _ in scored]) >= SUPPORT_THRESHOLD:
            # together, not alone: keep each cited window whose removal would break the support
            chosen = list(scored)
            for x in list(scored):
                rest = [y[1] for y in chosen if y is not x]
                if rest and joint_score(claim, rest) >= SUPPORT_THRESHOLD:
                    chosen.remove(x)
        if chosen:
            for score, _, n in scored:
                if all(n != c[2] for c in chosen):
                    drop_marker(stext, n, f"passage [{n}] does not support the sentence (support {score:.2f})")
        else:
            score, w = best_window(claim, all_windows)
            if w is not None and score >= ADD_THRESHOLD:
                chosen = [(score, w, w.passage + 1)]
                for s2, _, n in scored:
                    drop_marker(stext, n, f"passage [{n}] does not support the sentence (support {s2:.2f}); "
                                          f"passage [{w.passage + 1}] does")
        if chosen:
            numbers = [cite(w, s) for s, w, _ in chosen]
            sentences.append(Sentence(text=stext, citations=numbers, supported=True))
            shown.append(with_markers(stext, numbers))
            continue
        injected = bool(claim.tokens) and _instruction_support(claim, all_windows)
        if question:
            reason = "it is a question, not a statement a passage could support"
        elif not claim.tokens:
            reason = "it is too short to state anything a passage could support"
        elif not valid:
            reason = ("it cites no passage" if not markers else "it cites only passages that do not exist") + \
                f", and no passage supports it enough to cite (best {max(score, 0.0):.2f} < {ADD_THRESHOLD:.2f})"
        else:
            best = max((x[0] for x in scored), default=0.0)
            missing = sorted(claim.numbers - set().union(*(w.numbers for _, w, _ in scored))) if scored else []
            reason = (f"the cited passage {''.join(f'[{n}]' for n in valid)} does not support it "
                      f"(support {max(best, 0.0):.2f} < {SUPPORT_THRESHOLD:.2f})")
            if missing:
                reason += f"; the passage does not state {', '.join(missing)}"
        if injected:
            reason += "; the passage text it repeats is an instruction to the model, not a fact"
        dropped.append(Dropped(kind="sentence", text=stext, reason=reason, markers=list(markers),
                               score=round(float(max([0.0, score] + [x[0] for x in scored])), 4), injection=injected))
        if keep_unsupported:
            numbers = [cite(w, s) for s, w, _ in scored]
            sentences.append(Sentence(text=stext, citations=numbers, supported=False))
            shown.append(with_markers(stext, numbers) + " [unsupported]")
    return Verified(sentences=sentences, citations=citations, dropped=dropped, text=join_sentences(shown))


def checkable(claim: Claim) -> bool:
    return len(claim.tokens) >= MIN_WORDS and bool(claim.tokens - claim.numbers)


def joint_score(claim: Claim, ws: Sequence[Window]) -> float:
    """Support by several windows read together: union of their words and numbers, mean vector."""
    v = np.mean([w.vector for w in ws], axis=0)
    v = v / (np.linalg.norm(v) or 1.0)
    toks = set().union(*(w.tokens for w in ws))
    nums = set().union(*(w.numbers for w in ws))
    return support_score(float(claim.vector @ v), lexical_support(claim.tokens, toks), len(claim.numbers - nums))


def _instruction_support(claim: Claim, windows: Sequence[Window]) -> bool:
    """Would the sentence have been supported by an instruction span? (a sign of prompt injection)"""
    return any(w.instruction and claim.score(w) >= SUPPORT_THRESHOLD for w in windows)
