"""OCR word boxes: kept at indexing time (Tesseract gives them with the text, and reading the scan again
at question time would cost seconds), packed small, and turned into a citation's boxes by its offsets.

A page's words are the runs of its stored text between spaces and newlines (how rag/load/ocr.py joins
Tesseract's words), so their offsets are not stored, only their boxes: quarter points (a pixel at 300
dpi is 0.24 pt) as uint16, left and top as differences from the word before, column by column, zlib'd.
bench/results/pages.md gives the cost per page.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np

from ..model import PageWords

MAGIC = b"W1"
QUANTUM = 4  # units per point
_HEADER = struct.Struct("<ffI")  # page width, height (points), number of words
WORD = re.compile(r"[^ \n]+")


def pack_words(words: PageWords) -> bytes:
    boxes = np.rint(np.asarray(words.boxes, dtype=np.float64).reshape(-1, 4) * QUANTUM)
    boxes = np.clip(boxes, 0, 65535).astype(np.int64)
    left, top = boxes[:, 0], boxes[:, 1]
    columns = np.stack([np.diff(left, prepend=0), np.diff(top, prepend=0),
                        np.maximum(boxes[:, 2] - left, 0), np.maximum(boxes[:, 3] - top, 0)])
    body = zlib.compress((columns & 0xFFFF).astype("<u2").tobytes(), 9)
    return MAGIC + _HEADER.pack(words.width, words.height, len(boxes)) + body


def unpack_words(blob: bytes) -> PageWords:
    if blob[:2] != MAGIC:
        raise ValueError(f"not packed word boxes (they start with {blob[:2]!r})")
    width, height, n = _HEADER.unpack_from(blob, 2)
    columns = np.frombuffer(zlib.decompress(blob[2 + _HEADER.size:]), dtype="<u2").reshape(4, n).astype(np.int64)
    left, top = np.cumsum(columns[0]) & 0xFFFF, np.cumsum(columns[1]) & 0xFFFF
    boxes = np.stack([left, top, left + columns[2], top + columns[3]], axis=1) / QUANTUM
    return PageWords(width=width, height=height, boxes=[tuple(map(float, b)) for b in boxes])


def span_boxes(text: str, words: PageWords, start: int, end: int) -> list[tuple[float, float, float, float]]:
    """One rectangle per OCR line for text[start:end]: the union of its words' boxes, a word cut by the span
    narrowed in proportion to its characters. [] when the words do not match the text (nothing to trust)."""
    found = list(WORD.finditer(text))
    if len(found) != len(words.boxes):
        return []
    lines: dict[int, list[float]] = {}
    for word, (left, top, right, bottom) in zip(found, words.boxes):
        a, b = max(word.start(), start), min(word.end(), end)
        if a >= b:
            continue
        width = (right - left) / (word.end() - word.start())
        box = [left + width * (a - word.start()), top, right - width * (word.end() - b), bottom]
        line = text.count("\n", 0, word.start())
        have = lines.setdefault(line, box)
        have[:] = [min(have[0], box[0]), min(have[1], box[1]), max(have[2], box[2]), max(have[3], box[3])]
    return [tuple(round(v, 2) for v in lines[k]) for k in sorted(lines)]
