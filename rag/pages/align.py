"""Text pages: which of pdfium's characters (each with its box) every character of the stored text is.

The stored text comes from pypdf, the boxes from pdfium: they read the same content but differ in spaces,
line breaks, ligatures (pypdf's "ﬁ", cleaned to "fi"; pdfium's "f" and "i"), soft hyphens and, once
tables become rows of "Header: cell" pairs, in order and in inserted text. Both are normalized (NFKC,
whitespace and invisible characters left out) and aligned as a longest common subsequence (rapidfuzz's,
bit-parallel: a few ms for a dense page). Islands of a few characters that the subsequence picked out of a
region that differs are dropped (letters matched at random, not text); then each word left unmatched that
occurs among pdfium's unmatched characters (a table cell, a moved block) is matched there, nearest first.
What is matched in neither way has no box: inserted text (a repeated header name, "|") maps to nothing.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

# dropped from both sides: soft hyphens, byte-order marks, zero widths
INVISIBLE = {"\xad", "\ufeff", "\ufffe", "\u200b", "\u200c", "\u200d", "\u2060"}
ISLAND = 3  # matched runs shorter than this between differing regions are chance, not text
# unmatched words worth looking for elsewhere: numbers ("55.9", "1,024"), words of 3 letters or more
SEARCHED = re.compile(r"\d[\d.,:/-]*\d|\w*\d\w*|\w{3,}")


def normalized(text: str) -> tuple[str, np.ndarray]:
    """The characters alignment compares, and for each the index in `text` it came from."""
    out, origin = [], []
    for i, c in enumerate(text):
        if c == "\x02":  # pdfium's hyphen at a line end
            c = "-"
        if c < "\x80":
            if not c.isspace() and c >= " " and c != "\x7f":
                out.append(c)
                origin.append(i)
            continue
        if c in INVISIBLE or c.isspace() or unicodedata.category(c) in ("Cc", "Cf"):
            continue
        for d in unicodedata.normalize("NFKC", c):
            if not d.isspace():
                out.append(d)
                origin.append(i)
    return "".join(out), np.asarray(origin, dtype=np.int64)


def align(stored: str, page: str) -> np.ndarray:
    """For each character of `stored`, the index of the same character in `page` (pdfium's text), or -1."""
    from rapidfuzz.distance import Indel

    a, a_origin = normalized(stored)
    b, b_origin = normalized(page)
    to_b = np.full(len(a), -1, dtype=np.int64)
    ops = Indel.opcodes(a, b)
    for i, op in enumerate(ops):
        if op.tag != "equal":
            continue
        size = op.src_end - op.src_start
        if size < ISLAND and (_differs(ops, i - 1) or _differs(ops, i + 1)):
            continue
        to_b[op.src_start:op.src_end] = np.arange(op.dest_start, op.dest_end)
    _match_moved_words(stored, a, a_origin, b, to_b)
    mapped = np.full(len(stored), -1, dtype=np.int64)
    found = to_b >= 0
    mapped[a_origin[found]] = b_origin[to_b[found]]
    return mapped


def _differs(ops, i: int) -> bool:
    """Is ops[i] a change of ISLAND characters or more (on either side)?"""
    if not 0 <= i < len(ops):
        return False
    op = ops[i]
    return op.tag != "equal" and max(op.src_end - op.src_start, op.dest_end - op.dest_start) >= ISLAND


def _match_moved_words(stored: str, a: str, a_origin: np.ndarray, b: str, to_b: np.ndarray) -> None:
    """Match each whole word of `stored` the alignment left out to its nearest copy among b's unmatched
    characters (`a`, `b` normalized; a_origin: where a's characters are in `stored`)."""
    free = np.ones(len(b), dtype=bool)
    free[to_b[to_b >= 0]] = False
    unmatched = None
    for word in SEARCHED.finditer(stored):
        start, end = np.searchsorted(a_origin, word.span())
        if start == end or (to_b[start:end] >= 0).any():
            continue
        if unmatched is None:  # built once, when a word is missing at all
            unmatched = "".join(np.where(free, np.array(list(b), dtype=object), "\0"))
        before = to_b[:start][to_b[:start] >= 0]
        anchor = int(before[-1]) if len(before) else 0
        copies = [m.start() for m in re.finditer(re.escape(a[start:end]), unmatched)]
        if not copies:
            continue
        at = min(copies, key=lambda j: abs(j - anchor))
        to_b[start:end] = np.arange(at, at + end - start)
        unmatched = unmatched[:at] + "\0" * (end - start) + unmatched[at + end - start:]
