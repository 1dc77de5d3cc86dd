"""Stage 2, chunk: sentence-aware chunks with exact offsets, sized in the embedding model's tokens.

Invariants every chunk keeps: `chunk.text == document.text[chunk.start:chunk.end]`, every sentence
span lies inside the chunk, and no chunk crosses a page or a document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .load import Document

CountTokens = Callable[[Sequence[str]], list[int]]

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "fig", "figs", "no", "nos", "inc",
    "ltd", "co", "corp", "gen", "gov", "sen", "rep", "col", "lt", "sgt", "capt", "cf", "al", "approx",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "vol", "pp",
    "ed", "eds", "dept", "univ", "est", "mt", "ft", "e.g", "i.e", "ca", "resp", "ref", "refs", "eq",
}
# End of a sentence: terminal punctuation, closing quotes/brackets, whitespace, then a likely start.
_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9À-ÖØ-Þ])""")
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_LINE_END_PUNCT = tuple(".!?:;\"'”’)]…")


@dataclass
class Chunk:
    source: str
    doc_id: str
    page: int | None
    start: int
    end: int
    text: str
    sentences: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets, like start/end
    title: str = ""

    @property
    def embed_text(self) -> str:
        """What the model sees: the title gives a record's chunks their context."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) in `text`, whitespace trimmed; no text is dropped but whitespace."""
    spans = []
    for block_start, block_end in _blocks(text):
        cut = block_start
        block = text[block_start:block_end]
        for m in _END.finditer(block):
            end = block_start + m.end()
            if _is_abbreviation(text[cut:end]):
                continue
            spans.append((cut, end))
            cut = end
        spans.append((cut, block_end))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s]


def _blocks(text: str):
    """Split at blank lines and at line breaks that end a sentence or a heading, not at hard wraps."""
    start = 0
    lines = text.splitlines(keepends=True)
    pos = 0
    for i, line in enumerate(lines):
        pos += len(line)
        body = line.strip()
        nxt = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
        if not body or not nxt:
            boundary = True
        else:
            starts_new = nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "-*•#>|\"“'‘(["
            boundary = starts_new and (body.endswith(_LINE_END_PUNCT) or len(body) < 50) or body.startswith("#")
        if boundary:
            yield start, pos
            start = pos
    if start < len(text):
        yield start, len(text)


def _is_abbreviation(sentence: str) -> bool:
    m = _WORD_BEFORE.search(sentence.rstrip(".!?…\"'”’)]"))
    if not m:
        return False
    word = m.group(1).lower().strip(".")
    return word in _ABBREVIATIONS or len(word) == 1 or "." in word and len(word) <= 6


def _trim(text: str, a: int, b: int):
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else None


def chunk_document(
    doc: Document, count_tokens: CountTokens, chunk_tokens: int, overlap_tokens: int, max_tokens: int
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most `chunk_tokens` (and what the model can read).

    `max_tokens` is the model's limit for one text, title included: nothing past it is ever cut off
    silently. A sentence longer than the budget is split at word boundaries.
    """
    title_tokens = count_tokens([doc.title])[0] + 1 if doc.title else 0
    budget = min(chunk_tokens, max_tokens - title_tokens)
    if budget < 8:
        budget = max_tokens  # a title too long to leave room: it gets cut, never the text
    spans = split_sentences(doc.text)
    sizes = count_tokens([doc.text[a:b] for a, b in spans]) if spans else []
    pieces: list[tuple[int, int, int]] = []
    for (a, b), n in zip(spans, sizes):
        pieces.extend(_split_long(doc.text, a, b, n, budget, count_tokens) if n > budget else [(a, b, n)])

    chunks, i = [], 0
    while i < len(pieces):
        j, used = i, 0
        while j < len(pieces) and (j == i or used + pieces[j][2] <= budget):
            used += pieces[j][2]
            j += 1
        start, end = pieces[i][0], pieces[j - 1][1]
        chunks.append(
            Chunk(doc.source, doc.doc_id, doc.page, start, end, doc.text[start:end],
                  [(a, b) for a, b, _ in pieces[i:j]], doc.title)
        )
        if j == len(pieces):
            break
        back, carried = j, 0
        while back - 1 > i and carried + pieces[back - 1][2] <= overlap_tokens:
            back -= 1
            carried += pieces[back][2]
        i = back
    return chunks


def _split_long(text, a, b, n, budget, count_tokens):
    """Cut an over-long sentence into word-aligned pieces that each fit the budget."""
    words = [m.span() for m in re.finditer(r"\S+", text[a:b])]
    per_piece = max(1, int(len(words) * budget / n * 0.9))
    out, k = [], 0
    while k < len(words):
        step = per_piece
        while True:
            s, e = a + words[k][0], a + words[min(k + step, len(words)) - 1][1]
            size = count_tokens([text[s:e]])[0]
            if size <= budget or step == 1:
                break
            step = max(1, step * budget // size - 1)
        out.append((s, e, size))
        k += step
    return out
