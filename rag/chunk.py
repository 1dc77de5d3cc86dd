"""Stage 2, chunk: sentence-aware chunks with exact offsets, sized in the embedding model's tokens.

Invariants every chunk keeps: `chunk.text == document.text[chunk.start:chunk.end]`, every sentence
span lies inside the chunk (trimmed, in order), no chunk crosses a page or a document, and no chunk
holds more than the token budget: `chunk_tokens`, and what the model reads with the title included.
Nor more than CHARS_PER_TOKEN characters a token: a tokenizer reads a 50 MB "word" as one unknown
token, so the token budget alone would let one chunk hold a whole pathological file.
"""

from __future__ import annotations

import re
import statistics
from typing import Callable, Sequence

from .model import CELL_SEPARATOR, Chunk, Document

CountTokens = Callable[[Sequence[str]], list[int]]

# Changes whenever the same text would be cut differently: an index may record it to know when to re-chunk.
CHUNKER_VERSION = 3  # 3: a character budget beside the token budget; sentences end before markup
CHARS_PER_TOKEN = 8  # a chunk holds at most budget * this many characters (English prose has ~4.5)

# Abbreviations a sentence practically never ends with: a name or a number follows.
_NEVER_END = {
    "mr", "mrs", "ms", "messrs", "dr", "prof", "st", "mt", "gen", "gov", "sen", "rep", "col", "lt", "sgt",
    "capt", "cmdr", "adm", "maj", "pres", "hon", "rev", "fr", "cf", "vs", "e.g", "i.e", "eg", "ie", "viz",
    "approx", "ca", "resp", "fig", "figs", "eq", "eqs", "vol", "vols", "pp", "ref", "refs", "dept", "univ",
    "ch", "chap", "sec", "tab", "suppl", "incl", "esp",
}
# Abbreviations only before a number ("No. 5", "p. 12"); elsewhere the word ends a sentence.
_BEFORE_NUMBER = {"no", "nos", "nr", "art", "p", "para", "n"}
# Abbreviations that may end a sentence: they do when a typical sentence opener follows.
_MAY_END = {
    "etc", "al", "inc", "ltd", "co", "corp", "bros", "jr", "sr", "ed", "eds", "est", "ft", "oz", "lb", "lbs",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
_OPENERS = {
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we", "i", "you",
    "his", "her", "their", "our", "my", "there", "here", "in", "on", "at", "for", "to", "by", "with", "as",
    "but", "and", "or", "so", "yet", "if", "when", "while", "after", "before", "although", "though",
    "however", "thus", "therefore", "moreover", "furthermore", "finally", "also", "then", "such", "both",
    "all", "each", "no", "one", "most", "many", "some", "what", "why", "how", "who", "which", "where",
    "because", "since", "during", "despite", "other", "another", "results", "conclusions", "methods",
}
_CLOSERS = "\"'”’)]»"
_OPENERS_PUNCT = "\"'“‘([«"
# A candidate sentence end, followed by whitespace: terminal punctuation with its closing quotes or
# brackets, or an HTML/XML tag (markup never joins the sentence after it).
_END = re.compile(r"(?:[.!?…]+[\"'”’)\]»]*|</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>)(?=\s)")
_TAG = re.compile(r"</?[A-Za-z!]")
_TAG_NAME = re.compile(r"</?([A-Za-z][\w:-]*)")
_INLINE_TAGS = {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q", "s",
                "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var"}
_NEXT_WORD = re.compile(r"[\w’']+")
_DOTTED = re.compile(r"(?:[^\W\d_]{1,3}\.)+[^\W\d_]{1,3}")  # u.s, e.g, ph.d, a.m
_ENUMERATOR = re.compile(r"\(?(?:\d{1,3}(?:\.\d{1,3})*|[ivx]{1,4}|[IVX]{1,4}|[A-Za-z])")
_LIST_ITEM = re.compile(r"(?:[-*•‣◦▪>|+]|\d{1,3}[.)]|[a-z][.)]|\(\w{1,3}\))\s")
_CONNECTOR_END = re.compile(r"(?:[,;(/&\-–—]|\b(?:and|or|of|the|a|an|to|in|for|with|by|on|at|from|as))$")
_PARAGRAPH_LINES = 130  # longer lines are paragraphs, not hard wraps


# --- sentences -------------------------------------------------------------------------------------


def split_sentences(text: str, rows: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Sentence spans (start, end) in `text`, whitespace trimmed, in order; only whitespace is dropped.

    Each of `rows` (the table rows of Document.rows) is one sentence, never split; the text between
    them is split as if it stood alone. Without rows the whole text is split exactly as before rows
    existed, so prose is cut as it always was (no CHUNKER_VERSION change).
    """
    if not rows:
        return _prose_sentences(text)
    spans, at = [], 0
    for a, b in sorted(rows):
        spans += [(s + at, e + at) for s, e in _prose_sentences(text[at:a])]
        spans += [span for span in [_trim(text, a, b)] if span]
        at = b
    return spans + [(s + at, e + at) for s, e in _prose_sentences(text[at:])]


def _prose_sentences(text: str) -> list[tuple[int, int]]:
    spans = []
    for block_start, block_end in _blocks(text):
        cut = block_start
        for m in _END.finditer(text, block_start, block_end):
            if _ends_sentence(text, cut, m.start(), m.end(), block_end):
                spans.append((cut, m.end()))
                cut = m.end()
        spans.append((cut, block_end))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s]


def _ends_sentence(text: str, cut: int, p: int, e: int, limit: int) -> bool:
    """Does the punctuation text[p:e] (followed by whitespace) end the sentence begun at `cut`?"""
    k = e
    while k < limit and text[k].isspace():
        k += 1
    if text[p] == "<" and (_TAG_NAME.match(text, p).group(1).lower() in _INLINE_TAGS or _TAG.match(text, k)):
        return False  # inline markup inside a sentence, or one tag right after another
    if k < limit and _TAG.match(text, k):
        return True  # markup follows: it is not part of this sentence
    if k < limit and text[k] in _OPENERS_PUNCT:
        k += 1
    nxt = text[k] if k < limit else ""
    if not (nxt.isupper() or nxt.isdigit()):
        return False  # lower case, a symbol or nothing follows: the sentence goes on
    punct = text[p:e].rstrip(_CLOSERS)
    if punct != ".":
        return True  # ? ! … or an ellipsis
    before = text[cut:p]
    if _ENUMERATOR.fullmatch(before.strip()):
        return False  # "1." "IV." "a." "2.3." that numbers a heading or an item
    if not before or not (before[-1].isalnum() or before[-1] == "_"):
        return True  # ")." "%." "”." : no abbreviation ends so
    w = p  # the word before the period, scanned back a few characters only
    while w > cut and p - w <= 12 and (text[w - 1].isalnum() or text[w - 1] in "._"):
        w -= 1
    if w > cut and not (text[w - 1].isspace() or text[w - 1] in _OPENERS_PUNCT):
        return True  # the end of a longer token ("Bcl-x.", "14qE.", a URL), not an abbreviation
    word = text[w:p].lstrip("._").lower()
    if word in _NEVER_END:
        return False
    if word in _BEFORE_NUMBER and nxt.isdigit():
        return False
    if word in _MAY_END or (len(word) == 1 and word.isalpha()) or _DOTTED.fullmatch(word):
        following = _NEXT_WORD.match(text, k, limit)
        return bool(following) and following.group(0).lower() in _OPENERS
    return True


def _blocks(text: str):
    """Split at blank lines, headings, list items and, in paragraph-per-line text, every line break.

    In hard-wrapped text (PDF pages, wrapped Markdown) a line break inside a sentence is no boundary;
    sentence ends across line breaks are found by the sentence pattern like any other.
    """
    lines = text.splitlines(keepends=True)
    widths = [len(line.strip()) for line in lines if line.strip()]
    width = statistics.median(widths) if widths else 0
    # Paragraph-per-line text: most of it sits in lines longer than anything hard-wrapped.
    paragraphs = sum(w for w in widths if w > _PARAGRAPH_LINES) > sum(widths) / 2
    start = pos = 0
    for i, line in enumerate(lines):
        pos += len(line)
        body = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not body or not nxt or paragraphs:
            boundary = True
        elif _LIST_ITEM.match(nxt) or body.startswith("#") or nxt.startswith("#"):
            boundary = True
        else:
            starts_new = nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in _OPENERS_PUNCT
            heading = len(body) < 0.6 * width and not _CONNECTOR_END.search(body)
            boundary = starts_new and (body.endswith(":") or heading)
        if boundary:
            yield start, pos
            start = pos
    if start < len(text):
        yield start, len(text)


def _trim(text: str, a: int, b: int):
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else None


# --- chunks ----------------------------------------------------------------------------------------


def chunk_document(
    doc: Document, count_tokens: CountTokens, chunk_tokens: int, overlap_tokens: int, max_tokens: int
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most `chunk_tokens`, within what the model can read.

    `max_tokens` is the model's limit for one text, title included: nothing is ever cut off silently.
    A title longer than half of it is shortened (in the chunks) to leave the text room. A sentence
    longer than the budget is split at word boundaries, a word longer than it between characters.
    Consecutive chunks share whole sentences, up to `overlap_tokens`.
    """
    title, title_tokens = doc.title.strip(), 0
    if title:
        title, title_tokens = _fit(title, max(1, max_tokens // 2), count_tokens)
        title_tokens += 1  # the line break between title and text
    budget = max(1, min(chunk_tokens, max_tokens - title_tokens))
    max_chars = budget * CHARS_PER_TOKEN
    text = doc.text
    rows = set(doc.rows)
    spans = [cut for a, b in split_sentences(text, doc.rows)
             for cut in ([(a, b)] if (a, b) in rows else _cut_chars(text, a, b, max_chars))]
    if not spans:
        return []
    sizes = count_tokens([text[a:b] if b - a <= max_chars else "" for a, b in spans])
    pieces: list[tuple[int, int, int]] = []
    for (a, b), n in zip(spans, sizes):
        if (a, b) in rows and (n > budget or b - a > max_chars):
            pieces.extend(_split_row(text, a, b, budget, max_chars, count_tokens))
        else:
            pieces.extend(_split_long(text, a, b, budget, count_tokens) if n > budget else [(a, b, n)])

    groups = _pack(text, pieces, budget, overlap_tokens, None, max_chars)
    real = count_tokens([text[pieces[i][0]:pieces[j - 1][1]] for i, j in groups])
    if any(n > budget for n in real):  # the tokenizer is not additive across these pieces: check each
        groups = _pack(text, pieces, budget, overlap_tokens, count_tokens, max_chars)
    chunks = []
    for i, j in groups:
        start, end = pieces[i][0], pieces[j - 1][1]
        chunks.append(Chunk(source=doc.source, doc_id=doc.doc_id, page=doc.page, start=start, end=end,
                            text=text[start:end], sentences=[(a, b) for a, b, _ in pieces[i:j]], title=title))
    return chunks


def _pack(text, pieces, budget, overlap_tokens, count_tokens, max_chars) -> list[tuple[int, int]]:
    """Greedy groups [i, j) of pieces; with `count_tokens`, each group is counted as one text."""
    groups, i, new = [], 0, 0  # pieces before `new` are in a chunk already
    while i < len(pieces):
        while True:
            j, used = i + 1, pieces[i][2]
            while j < len(pieces) and used + pieces[j][2] <= budget and pieces[j][1] - pieces[i][0] <= max_chars:
                used += pieces[j][2]
                j += 1
            if count_tokens is not None:
                while j - i > 1 and count_tokens([text[pieces[i][0]:pieces[j - 1][1]]])[0] > budget:
                    j -= 1
            if j > new or i >= new:
                break
            i = new  # the carried sentences leave no room for a new one: start without them
        groups.append((i, j))
        new = j
        if j == len(pieces):
            break
        # Carry whole sentences back, but always leave room for the next new one: no chunk repeats
        # only what the previous one held, and every step moves forward.
        back, carried, room = j, 0, budget - pieces[j][2]
        while (back - 1 > i and carried + pieces[back - 1][2] <= min(overlap_tokens, room)
               and pieces[j][1] - pieces[back - 1][0] <= max_chars):
            back -= 1
            carried += pieces[back][2]
        i = back
    return groups


def _cut_chars(text: str, a: int, b: int, max_chars: int) -> list[tuple[int, int]]:
    """A sentence as spans of at most max_chars, cut at the last whitespace that fits (or anywhere,
    in a run without any), trimmed: time and memory stay in proportion to the text's length."""
    if b - a <= max_chars:
        return [(a, b)]
    out = []
    while b - a > max_chars:
        cut = a + max_chars
        space = max(text.rfind(" ", a + 1, cut + 1), text.rfind("\n", a + 1, cut + 1), text.rfind("\t", a + 1, cut + 1))
        if space > a + max_chars // 2:
            cut = space
        trimmed = _trim(text, a, cut)
        if trimmed:
            out.append(trimmed)
        a = cut
        while a < b and text[a].isspace():
            a += 1
    trimmed = _trim(text, a, b)
    return out + ([trimmed] if trimmed else [])


def _split_row(text, a, b, budget, max_chars, count_tokens) -> list[tuple[int, int, int]]:
    """A table row too long for one chunk, cut between its cells (" | "): runs of whole cells that each
    fit; a cell too long on its own is cut as a long sentence is. Every part keeps its cells' names."""
    cells, at = [], a
    while at < b:
        end = text.find(CELL_SEPARATOR, at, b)
        end = b if end < 0 else end
        cells += _cut_chars(text, at, end, max_chars)
        at = end + len(CELL_SEPARATOR)
    units: list[tuple[int, int, int]] = []
    for (s, e), n in zip(cells, count_tokens([text[s:e] for s, e in cells])):
        units.extend(_split_long(text, s, e, budget, count_tokens) if n > budget else [(s, e, n)])
    if not units:
        return []
    pieces, real = _runs(text, units, count_tokens, lambda cur, u: (  # + 1: the "|" between them
        (cur[0], u[1], cur[2] + u[2] + 1) if cur[2] + u[2] + 1 <= budget and u[1] - cur[0] <= max_chars else None))
    if all(n <= budget for n in real):
        return [(s, e, n) for (s, e, _), n in zip(pieces, real)]
    return units


def _split_long(text, a, b, budget, count_tokens) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence into word-aligned pieces that each fit the budget."""
    words = [(a + m.start(), a + m.end()) for m in re.finditer(r"\S+", text[a:b])]
    units: list[tuple[int, int, int]] = []
    for (s, e), n in zip(words, count_tokens([text[s:e] for s, e in words])):
        units.extend(_split_word(text, s, e, budget, count_tokens) if n > budget else [(s, e, n)])
    # whitespace between two units: their counts add up (not so for parts of one word)
    pieces, real = _runs(text, units, count_tokens, lambda cur, u: (
        (cur[0], u[1], cur[2] + u[2]) if cur[1] < u[0] and cur[2] + u[2] <= budget else None))
    if all(n <= budget for n in real):
        return [(s, e, n) for (s, e, _), n in zip(pieces, real)]
    out = []  # a tokenizer that does not add up: fall back to single units where needed
    for (s, e, _), n in zip(pieces, real):
        out.extend([(s, e, n)] if n <= budget else [u for u in units if s <= u[0] and u[1] <= e])
    return out


def _runs(text, units, count_tokens, merge) -> tuple[list, list[int]]:
    """Greedy runs of (start, end, tokens) units, `merge(run, unit)` giving the longer run or None where a new one
    starts; and the tokenizer's real count of each run (what the estimate must be checked against)."""
    pieces, cur = [], units[0]
    for u in units[1:]:
        joined = merge(cur, u)
        if joined is None:
            pieces.append(cur)
        cur = u if joined is None else joined
    pieces.append(cur)
    return pieces, count_tokens([text[s:e] for s, e, _ in pieces])


def _split_word(text, s, e, budget, count_tokens) -> list[tuple[int, int, int]]:
    """Cut one huge 'word' (a URL, base64, a formula) into character runs that each fit the budget."""
    out = []
    total = count_tokens([text[s:e]])[0]
    per_token = max(1.0, (e - s) / max(total, 1))
    while s < e:
        length = min(e - s, max(1, int(budget * per_token * 0.9)))
        while True:
            n = count_tokens([text[s:s + length]])[0]
            if n <= budget or length == 1:
                break
            length = max(1, min(length - 1, int(length * budget / n * 0.9)))
        out.append((s, s + length, n))
        s += length
    return out


def _fit(title: str, limit: int, count_tokens) -> tuple[str, int]:
    """The title, shortened at a word (or character) boundary to at most `limit` tokens, and its size."""
    n = count_tokens([title])[0]
    if n <= limit:
        return title, n
    ends = [m.end() for m in re.finditer(r"\S+", title)]
    lo, hi = 0, len(ends)  # the largest number of words that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens([title[:ends[mid - 1]]])[0] <= limit:
            lo = mid
        else:
            hi = mid - 1
    if lo:
        short = title[:ends[lo - 1]]
    else:
        first = _split_word(title, 0, ends[0], limit, count_tokens)[0]
        short = title[first[0]:first[1]]
    return short, count_tokens([short])[0]
