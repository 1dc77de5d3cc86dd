"""Follow-up questions: write an elliptical follow-up out against the previous turn before retrieval.

Prepending the whole previous question (what this module did before) lets it outweigh the new one, so the
previous answer came back; rewriting only what the follow-up leaves out answers it as well as the question
written out (bench/results/answers.md, follow-up chains). Regular expressions only, no model:

1. "and how many NATO chiefs?" / "what about NATO chiefs?" (no verb of its own): the previous question's frame
   with the new phrase in place of the one it asked about;
2. pronouns (he, his, they, it, ...): replaced by their antecedent, the person the previous answer named for a
   "who" question that names no one ("Who was the first leader to call Bush?", not "Who is Angela Stent?"),
   else the previous question's topic (its subject, else its first named entity); a pronoun with no antecedent
   stays, and the previous question's words are added in parentheses;
3. "that friendship": "the friendship", with the previous turn's names added in parentheses for retrieval
   (the antecedent of a pronoun first, so that a pronoun in the turn after still finds it); a "that" after a
   noun ("the areas that make up ...") starts a relative clause and stays.

The previous question is the last user message of the history: callers that hand back the *resolved* question
(Answer.resolved_question, as the chat does) keep chains of follow-ups resolved.
"""

from __future__ import annotations

import re

from ..model import ABSTAIN_TEXT
from ..text import message_text

FOLLOW_START = re.compile(r"^\s*(and|but|or|also|so|then|ok|okay)\b[\s,]*", re.I)
WHAT_ABOUT = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(.+?)\s*\??\s*$", re.I)
PRONOUN = re.compile(r"\b(he|she|him|her|his|they|them|their|it|its)\b", re.I)
POSSESSIVE = {"his", "her", "their", "its"}
NEUTER = {"it", "its"}
PERSONAL = {"he", "she", "him", "her", "his", "hers"}
REFERRING = {"he", "she", "they", "him", "her", "them", "his", "their", "its", "it"}
DEMONSTRATIVE = re.compile(r"\b(that|this|these|those)\s+(?!is\b|was\b|are\b|were\b|has\b|had\b|does\b|did\b)"
                           r"([a-z][a-z-]+)", re.I)
AUX = "is|are|was|were|do|does|did|has|have|had|can|could|will|would|should|may|might|must"
# words after which "that X" points back (prepositions, conjunctions, wh-words, auxiliaries, common past verbs)
POINTING_AFTER = frozenset("""of to by for with from in on at about into after before during since until over under
and but or so what which who whom when where why how won made led began fought signed wrote built took gave got
saw found""".split()) | frozenset(AUX.split("|"))
# capitalized words that start sentences and questions without naming anything
STOP_CAPS = frozenset("""The A An In On At Of For By To From With And But Or What Which Who Whom Whose When Where
Why How Is Are Was Were Do Does Did Has Have Had Can Could Will Would Should May Might Must This That These Those
It Its He She They His Her Their I We You After Before During Since Until If Then There Here As Also
""".split())
ENTITY = re.compile(r"(?:[A-Z][\w’'.&-]*|U\.S\.|U\.K\.)(?:\s+(?:of|the|de|von|van|and)?\s*(?:[A-Z][\w’'.&-]*|\d+\b))*")
# words of a question that carry no topic: left out of the context added for an unresolved pronoun
CONTEXT_WORDS = 4  # of the previous question, added for a pronoun left unresolved
_QSTOP = frozenset("""a an the of in on at to for by with from and or but what which who whom whose when where why
how is are was were do does did has have had can could will would should may might must this that these those
it its he she they his her their there many much long""".split())


def resolve_question(question: str, history=None) -> str:
    """The follow-up written out against the previous turn; any other question unchanged (stripped).

    `history` is the conversation so far as {"role", "content"} dicts (content a string or gradio's list of
    parts); the last user message is the previous question, the last assistant message its answer.
    """
    q = question.strip()
    prev_q = _last(history, "user")
    if not prev_q or not is_followup(q):
        return q
    prev_a = _last(history, "assistant")
    if prev_a.startswith(ABSTAIN_TEXT):
        prev_a = ""
    body = FOLLOW_START.sub("", q)
    about = WHAT_ABOUT.match(q)
    if about:
        return _swap_phrase(prev_q, about.group(1))
    if not _has_verb(body) and not PRONOUN.search(body) and not _demonstrative(body) and len(body.split()) <= 6:
        return _swap_frame(prev_q, body)
    out = body[:1].upper() + body[1:] if FOLLOW_START.match(q) else q
    used, unresolved = [], []

    def replace(m):
        word = m.group(0)
        low = word.lower()
        ante = antecedent(prev_q, prev_a, low, body)
        if not ante or ante in used:  # "How did he finance his work?": named once, as written out
            if not ante or low in NEUTER:  # a second "it" may mean something else
                unresolved.append(low)
            return word
        used.append(ante)
        if low in POSSESSIVE and not (low == "her" and _object_position(out, m.start())):
            return ante + "’s"
        return ante

    out = PRONOUN.sub(replace, out)
    if unresolved or (out == q and not _demonstrative(out)):
        context = [w for w in re.findall(r"[A-Za-z][\w-]*", prev_q) if w.lower() not in _QSTOP
                   and w.lower() not in out.lower()]
        if context:
            return out.rstrip(" ?") + " (" + " ".join(context[:CONTEXT_WORDS]) + ")?"
    if _demonstrative(out):
        # the one a pronoun of the next turn would mean comes first: chains of follow-ups keep their subject
        first = antecedent(prev_q, prev_a, "he", body)
        names = [e for e in [first] + entities(prev_q) + entities(_strip_markers(prev_a))
                 if e and e.lower() not in out.lower()]
        out = DEMONSTRATIVE.sub(lambda m: "the " + m.group(2) if _points(out, m) else m.group(0), out)
        if names:
            out = out.rstrip(" ?") + " (" + ", ".join(dict.fromkeys(names[:3])) + ")?"
    return out


def is_followup(question: str) -> bool:
    """Does the question lean on the previous turn: a leading "and", "what about", a pronoun, "that X", or
    two words or fewer?"""
    q = question.strip()
    ws = re.findall(r"[a-z’']+", q.lower())
    return bool(FOLLOW_START.match(q) or WHAT_ABOUT.match(q) or any(w in REFERRING for w in ws)
                or _demonstrative(q) or len(ws) <= 2)


def entities(text: str) -> list[str]:
    """Capitalized word runs ("George W. Bush", "Angela Merkel"), in order, without leading function words. A single
    capitalized word that starts a sentence ("Notably") counts only if the text capitalizes it again later."""
    out = []
    for m in ENTITY.finditer(text):
        ws = [re.sub(r"[’']s?$", "", w) for w in m.group(0).split()]
        initial = m.start() == 0 or bool(re.search(r"[.!?:;\"“]\s*$", text[:m.start()]))
        while ws and (ws[0] in STOP_CAPS or ws[0].lower() in ("of", "the", "and")):
            ws, initial = ws[1:], False
        while ws and ws[-1].lower() in ("of", "the", "and", "de", "von", "van"):
            ws = ws[:-1]
        if not ws:
            continue
        e = " ".join(ws).rstrip(".")
        if initial and len(ws) == 1 and not re.search(rf"(?<![.!?]\s)\b{re.escape(e)}\b", text[m.end():]):
            continue
        if e and e not in out and not re.fullmatch(r"[A-Z]", e):
            out.append(e)
    return out


def topic(question: str) -> list[str]:
    """The question's entities, its grammatical subject first ("How many U.S. presidents has Putin outlasted?" ->
    Putin: the entity right after the auxiliary, followed by its verb)."""
    ents = entities(question)
    m = re.search(rf"\b({AUX})\s+([A-Z][\w.’'-]*(?:\s+[A-Z][\w.’'-]*)*)\s+[a-z]", question)
    if m:
        subject = [e for e in ents if m.group(2).startswith(e) or e.startswith(m.group(2))]
        ents = subject + [e for e in ents if e not in subject]
    return ents


def antecedent(previous_question: str, previous_answer: str, pronoun: str, followup: str = "") -> str:
    """Whom or what the pronoun stands for (never a name the follow-up already says), or ""."""
    q_ents = [e for e in topic(previous_question) if e.lower() not in followup.lower()]
    if pronoun in PERSONAL:  # "the General Conference on Weights and Measures" is no "him"
        q_ents = [e for e in q_ents if not re.search(rf"\bthe\s+{re.escape(e)}", previous_question, re.I)
                  and not re.search(r"\s(and|of)\s", e)] or q_ents
    a_ents = [e for e in entities(_strip_markers(previous_answer)) if e not in q_ents
              and not any(e in x or x in e for x in q_ents)]
    who = re.match(r"^\s*(?:and\s+)?(who|whom|whose|which (?:person|leader|man|woman|president|king))\b",
                   previous_question, re.I)
    if pronoun in PERSONAL and who and a_ents and not _names_subject(previous_question, q_ents):
        return a_ents[0]
    if q_ents:
        return q_ents[0]
    return a_ents[0] if a_ents and pronoun in PERSONAL else ""


def _names_subject(question: str, names: list[str]) -> bool:
    """Does a "who" question name the one it is about ("Who is Angela Stent?", "Who did Putin meet?"), so that a
    pronoun after it means that name rather than the person its answer names?"""
    rest = re.sub(rf"^\s*(?:and\s+)?\w+\s+(?:{AUX})\s+", "", question, count=1, flags=re.I)
    return rest != question and any(re.match(rf"{re.escape(n)}(\s*\??\s*$|\s+[a-z])", rest) for n in names)


def _demonstrative(text: str) -> bool:
    return any(_points(text, m) for m in DEMONSTRATIVE.finditer(text))


def _points(text: str, m: re.Match) -> bool:
    """Does "that X" at m point back ("how did that friendship end?") rather than start a relative clause ("the
    areas that make up")? A pointing "that" opens the question or follows a preposition, an auxiliary, a
    conjunction, a wh-word or a past-tense verb; after a noun it is relative."""
    before = re.findall(r"[a-z’']+", text[:m.start()].lower())[-1:]
    return not before or before[0] in POINTING_AFTER or before[0].endswith("ed")


def _last(history, role: str) -> str:
    for m in reversed(history or []):
        if isinstance(m, dict) and m.get("role") == role and message_text(m):
            return message_text(m)
    return ""


def _strip_markers(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text)


def _has_verb(text: str) -> bool:
    return bool(re.search(rf"\b({AUX}|[a-z]{{3,}}ed|[a-z]{{3,}}ing)\b", text.lower()))


def _object_position(text: str, i: int) -> bool:
    """Is "her" at i an object (after a verb or preposition) rather than a possessive (before a noun)?"""
    after = text[i:].split()[1:2]
    return not after or after[0].lower() in ("?", "in", "on", "at", "to", "for", "with", "and", "first", "when")


def _swap_frame(prev_q: str, body: str) -> str:
    """'how many NATO chiefs' after 'How many U.S. presidents has Putin outlasted?' ->
    'how many NATO chiefs has Putin outlasted?'."""
    body = body.strip().rstrip("?").strip()
    m = re.match(r"^(how (?:many|much|long|old|far|often)|what|which|who|whom|when|where|why)\b(.*)$", body, re.I)
    if not m:
        return _swap_phrase(prev_q, body)
    pm = re.match(rf"^\s*({re.escape(m.group(1).lower())})\b(.*?)\b({AUX})\b(.*)$", prev_q, re.I)
    if pm:
        return f"{body} {pm.group(3)}{pm.group(4)}".strip()
    return f"{body} {prev_q}"


def _swap_phrase(prev_q: str, phrase: str) -> str:
    """'what about NATO chiefs?' after 'How many U.S. presidents has Putin outlasted?': the phrase in place of
    the previous question's asked-about phrase (its wh-phrase's noun, else its first entity), else appended."""
    phrase = phrase.strip().rstrip("?").strip()
    pm = re.match(rf"^\s*(how (?:many|much)|what|which)\s+(.+?)\s+({AUX})\b(.*)$", prev_q, re.I)
    if pm:
        return f"{pm.group(1)} {phrase} {pm.group(3)}{pm.group(4)}"
    ents = entities(prev_q)
    if ents:
        return prev_q.replace(ents[0], phrase, 1)
    return f"{prev_q.rstrip('?')} {phrase}?"
