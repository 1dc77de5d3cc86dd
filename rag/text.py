"""The text vocabulary every stage shares: word tokens, stop words by purpose, a stemmer, message text.

Thresholds were calibrated on exactly these tokenizers (bench/suites/answers.py, bench/fit/calibrate_support.py):
change one and re-run the calibration.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+", re.UNICODE)

# Words a query can do without: what BM25 and the extractive answerer drop from a question.
QUERY_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())

# Words a generated claim can do without when its support is checked: function words, and the words a
# model uses to talk about the passages rather than the world.
CLAIM_STOPWORDS = frozenset("""
a an the and or but if then else of to in on at by for with from into onto over under about as is are
was were be been being am do does did doing have has had having it its it's this that these those there
here what which who whom whose when where why how not no nor so than too very can could should would
may might must shall will just also only own same such both each few more most other some any all
i me my we our you your he him his she her they them their us one ones s t d ll m re ve said says
according passage passages text source sources answer question
""".split())

# Words that point back at something said before: a follow-up that uses them needs the conversation.
PRONOUNS = frozenset("it its he him his she her they them their theirs that this those these there one".split())


# Text addressed to a language model, not about the world: never cited, never accepted as support.
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:(?:all|any|the|your|my|of|these|those)\s+)*"
    r"(?:(?:previous|prior|above|earlier|preceding|former|original|system)\s+"
    r"(?:instructions?|prompts?|directions|guidelines|rules|messages?|context)|instructions?|prompts?|above\b)"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b"
    r"|\byou\s+(?:are|must|will|should)\s+now\b"
    r"|\b(?:new|updated|real)\s+instructions?\b"
    r"|\b(?:tell|inform)\s+the\s+(?:user|reader)\b"
    r"|\bas\s+an?\s+(?:ai|assistant|language\s+model)\b"
    r"|\b(?:answer|reply|respond|say|write|output|print)\b[^.!?\n]{0,30}\binstead\b"
    r"|\b(?:reply|respond|answer)\s+only\s+with\b",
    re.IGNORECASE,
)


def is_instruction(text: str) -> bool:
    """True for text addressed to a language model ("ignore previous instructions ...")."""
    return bool(_INJECTION.search(text))


_HEADING = re.compile(r"[^\n.!?:;\"\u201d\u2019|\d]{1,80}")


def is_heading(text: str) -> bool:
    """True for a heading ("The lakes of Velmora"): one short line of at most 10 words with no digit and no
    sentence-ending punctuation. It names a topic and states nothing, yet scores high on the topic's words;
    list items and table rows are not headings."""
    text = text.strip()
    return bool(_HEADING.fullmatch(text)) and len(text.split()) <= 10 and not text.startswith(("-", "*", "\u2022"))


_MARKUP = re.compile(r"<[^<>]{0,500}>")


def markup_share(text: str) -> float:
    """The share of the text's visible characters that sit inside <tags>: prose has none, injected
    or leftover markup has most. A sentence that is mostly markup states nothing to cite."""
    if "<" not in text:  # the answerer asks this of every candidate sentence: prose returns at once
        return 0.0
    chars = len("".join(text.split()))
    tags = sum(len("".join(m.group(0).split())) for m in _MARKUP.finditer(text))
    return tags / chars if chars else 0.0


def words(text: str) -> list[str]:
    """Lower-cased word tokens, in order."""
    return WORD.findall(text.lower())


def keywords(text: str) -> list[str]:
    """Content words of a query, lowercased, in order, without repeats."""
    seen = []
    for w in words(text):
        if w not in QUERY_STOPWORDS and w not in seen:
            seen.append(w)
    return seen


# words a question uses to ask, not to name what it is about: whether the documents hold them says nothing
ASKING = frozenset("""name named called call type kind many much long old far large big often one ones also used
use year years known mean means term example""".split())


def asked_words(question: str) -> list[str]:
    """The question's content words that name what it is about (lower-cased, in order)."""
    ws = keywords(question)
    return [w for w in ws if w not in ASKING] or ws


_WANTS_NUMBER = re.compile(r"\bhow (many|much|long|old|far|large|big|tall|often|high|fast)\b"
                           r"|\bwhat (percentage|percent|proportion|number|amount)\b")
_WANTS_DATE = re.compile(r"\bwhen\b|\b(what|which|in what|in which) (year|century|decade|date|month|day)\b")
_WANTS_NAME = re.compile(r"\b(who|whom|whose)\b")
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                     r"fifty|hundred|thousand|million|billion|dozen|half)\b", re.I)
_DATE = re.compile(r"\b(1\d{3}|20\d\d|\d{1,4}s|\d{1,2}(st|nd|rd|th) century|January|February|March|April|May|June|"
                   r"July|August|September|October|November|December)\b")
_NAME = re.compile(r"\b[A-Z][a-z]+")


def answer_type(question: str):
    """What kind of thing the question asks for (a number for "how many", a date for "when", a name for "who"),
    as a test of a sentence: does it hold one? None when the question asks for no particular kind."""
    q = question.lower()
    number, date, name = _WANTS_NUMBER.search(q), _WANTS_DATE.search(q), _WANTS_NAME.search(q)
    if not (number or date or name):
        return None
    asked = set(words(question))

    def holds(text: str) -> bool:
        return bool(number and _NUMBER.search(text) or date and _DATE.search(text)
                    or name and any(m.group(0).lower() not in asked for m in _NAME.finditer(text[1:])))
    return holds


def stem(word: str) -> str:
    """A plural "s" off: enough for matching question words to sentence words."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_tokens(text: str) -> set[str]:
    """Lower-cased word tokens without claim stop words, cut to 6 characters (a cheap stemmer)."""
    out = set()
    for w in words(text):
        if w in CLAIM_STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        out.add(w if w.isdigit() else w[:6])
    return out


def numbers_in(text: str) -> set[str]:
    """Word tokens holding a digit ("2014", "5th", "1990s"): a claim may not state numbers its span lacks."""
    return {w for w in words(text) if any(c.isdigit() for c in w)}


def message_text(message) -> str:
    """The text of a chat message (a {"role", "content"} dict or a plain string).

    Gradio may hand content over as a list of parts: [{"type": "text", "text": ...}].
    """
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content.strip() if isinstance(content, str) else ""
