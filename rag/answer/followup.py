"""Follow-up questions: fold the conversation into an elliptical question before retrieval."""

from __future__ import annotations

from ..text import PRONOUNS, keywords, message_text, words

_FOLLOWUP_START = ("and ", "but ", "or ", "also ", "what about", "how about", "same for", "and?", "what of")


def resolve_question(question: str, history=None) -> str:
    """Fold the previous question into a follow-up ("and how many NATO chiefs?") before retrieval.

    `history` is the conversation so far as {"role", "content"} dicts; only the user's turns count.
    """
    previous = [text for text in (message_text(m) for m in (history or []) if _role(m) == "user") if text]
    if not previous:
        return question.strip()
    q = question.strip()
    low = q.lower()
    content = keywords(q)
    pronoun = any(w in PRONOUNS for w in words(low))
    if low.startswith(_FOLLOWUP_START) or (pronoun and len(content) <= 3) or len(content) <= 1:
        return f"{previous[-1]} {q}"
    return q


def _role(message) -> str:
    return message.get("role", "") if isinstance(message, dict) else ""
