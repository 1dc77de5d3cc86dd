"""Reading a language model's reply: sentences, the [n] markers each one carries, and abstention.

Markers are removed before the reply is split into sentences, so "Putin met Xi. [1] He ..." and
"Putin met Xi [1]." both give the marker to the sentence it follows.
"""

from __future__ import annotations

import re

from ..chunk import split_sentences
from ..model import ABSTAIN_TEXT

# [1] [1, 2] [1][2] [1-3] [Passage 2] [source 3]; the surrounding whitespace goes with the marker
MARKER = re.compile(
    r"\s*\[\s*(?:(?:passage|source|doc(?:ument)?|ref)\s*)?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*(?:(?:passage|source)\s*)?\d{1,3})*)\s*\]",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"\s*\[(?:n|k|x|i|number|num|citation|source|passage|\.\.\.|…)\]", re.IGNORECASE)  # "[n]" echoed
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]+|\d{1,2}[.)]|[a-z][.)])\s+|^#+\s*")  # "1. ", "- ", "a) ", "## "


def parse_markers(text: str) -> tuple[list[tuple[str, list[int]]], str]:
    """Split a model reply into (sentence text without markers, marker numbers in order) pairs; also
    return the marker-free text."""
    text = _PLACEHOLDER.sub("", text)
    clean_parts, marks, pos, last = [], [], 0, 0
    for m in MARKER.finditer(text):
        clean_parts.append(text[last:m.start()])
        pos += m.start() - last
        numbers = _expand(m.group(1))
        marks.append((pos, numbers))
        last = m.end()
    clean_parts.append(text[last:])
    clean = "".join(clean_parts)
    spans = split_sentences(clean)
    out = [(clean[a:b], []) for a, b in spans]
    for p, numbers in marks:
        idx = _owner(spans, p)
        if idx is not None:
            for n in numbers:
                if n not in out[idx][1]:
                    out[idx][1].append(n)
    return out, clean


def _expand(group: str) -> list[int]:
    numbers = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        part = re.sub(r"(?i)passage|source", "", part).strip()
        rng = re.split(r"\s*[-–]\s*", part)
        if len(rng) == 2 and rng[0].isdigit() and rng[1].isdigit() and 0 <= int(rng[1]) - int(rng[0]) <= 20:
            numbers.extend(range(int(rng[0]), int(rng[1]) + 1))
        else:
            numbers.extend(int(x) for x in rng if x.isdigit())
    return numbers


def _owner(spans, p):
    """The sentence a marker at clean-text position p belongs to: the one it sits in or follows."""
    owner = None
    for i, (a, b) in enumerate(spans):
        if a < p <= b or (owner is None and p <= a):
            return i
        if b < p:
            owner = i
    return owner


def reply_sentences(text: str) -> list[tuple[str, list[int]]]:
    """The sentences of a model reply, list bullets removed, each with its marker numbers."""
    parsed, _ = parse_markers(text)
    parsed = [(_LIST_ITEM.sub("", s).strip(), m) for s, m in parsed]
    return [(s, m) for s, m in parsed if s]


def join_sentences(pieces: list[str]) -> str:
    """Sentences joined by spaces; after a piece without final punctuation (a list item), a new line."""
    out = ""
    for p in pieces:
        if out:
            out += " " if re.search(r"[.!?…][\"'”’)\]]*$", out) else "\n"
        out += p
    return out


def with_markers(text: str, numbers: list[int]) -> str:
    """Markers before the final punctuation ("... Xi [1]."), after a closing quote or bracket."""
    if not numbers:
        return text
    marks = "".join(f"[{n}]" for n in dict.fromkeys(numbers))
    m = re.search(r"[.!?…]+$", text)
    if m:
        return f"{text[:m.start()].rstrip()} {marks}{text[m.start():]}"
    return f"{text} {marks}"


def is_abstention(raw: str) -> bool:
    """The model said the passages hold no answer (the reply it was told to give), and nothing else."""
    def norm(t):
        t = MARKER.sub("", t).replace("’", "'").strip().strip('"“”').lower()
        return " ".join(t.split()).rstrip(".! ")
    return norm(raw) in {norm(ABSTAIN_TEXT), "i don't know", "i do not know"}


def strip_markers(text: str) -> str:
    """The text without its [n] markers (they meant the passages of another turn)."""
    return MARKER.sub("", text)
