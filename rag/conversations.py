"""Conversations kept, exported and rated: the logic between the chat (or `rag history`) and library.sqlite.

A conversation belongs to one owner: `user:NAME` on a server with logins, else `browser:ID`, the browser's own
random cookie (rag-browser, set by the server) hashed, so its owner sees it across restarts and nobody else does.
Its turns keep Answer.to_dict() whole as it was given. What an owner is shown of it is decided each time it is
read, from what they may read now: a citation or passage into a knowledge base they can no longer read (revoked,
or the KB removed) is withheld, never quoted, in the chat, in the exports and in `rag history`; so is each answer
sentence that cites one, and the KB's name.

Feedback (thumbs up or down and a comment) is a record of its own: the question, the question as searched, the
KBs asked, the answer with its citations and confidence, copied from the stored turn. It stays when the
conversation is deleted (it was given to whoever runs the server) and `rag feedback export` writes it as JSONL,
the deployment's own labelled questions (bench/suites/answers.py --feedback reads them).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
from typing import Callable

from .access import Access
from .errors import AccessError, ConversationNotFoundError, RagError
from .kb import DEFAULT_KB, Library
from .model import WITHHELD

BROWSER_COOKIE = "rag-browser"
ANY_OWNER = "*"  # the administrator (`rag history`): every owner's conversations, each shown as its owner may see it
TITLE_CHARS = 120
WITHHELD_ANSWER = "(withheld: this answer quotes a knowledge base you may no longer read)"
CITATION_KEYS = ("n", "kb", "source", "doc_id", "page", "start", "end", "text", "score", "ocr")


def browser_id(cookie: str) -> str:
    """What is kept of a browser's cookie: enough to tell browsers apart, never enough to act as one."""
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()[:16]


def owner_key(user: str | None, browser_cookie: str | None = None, *, logins: bool) -> str | None:
    """Whose conversations a request sees: the login's, else (no logins) the browser's; None: nobody's."""
    if logins:
        return f"user:{user}" if user else None
    return f"browser:{browser_id(browser_cookie)}" if browser_cookie else None


def one_line(text: str, limit: int | None = None) -> str:
    line = " ".join((text or "").split())
    return line if limit is None or len(line) <= limit else line[: limit - 1].rstrip() + "…"


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def withhold(answer: dict, may_read: Callable[[str], bool]) -> dict:
    """The answer as someone who may read only what `may_read` allows sees it: citations and passages into other
    KBs replaced by {"n", "withheld": True} / {"withheld": True}, the sentences citing them taken out of the text."""
    citations, passages = answer.get("citations") or [], answer.get("passages") or []
    hidden = {c.get("n") for c in citations if not may_read(c.get("kb") or DEFAULT_KB)}
    hidden_passages = {i for i, p in enumerate(passages) if not may_read(p.get("kb") or DEFAULT_KB)}
    if not hidden and not hidden_passages:
        return answer
    out = dict(answer, citations=[{"n": c.get("n"), "withheld": True} if c.get("n") in hidden else c
                                  for c in citations],
               passages=[{"withheld": True} if i in hidden_passages else p for i, p in enumerate(passages)])
    if hidden:
        text, whole, sentences = answer.get("text") or "", not answer.get("sentences"), []
        for s in answer.get("sentences") or []:
            cited = s.get("citations") or []
            if not set(cited) & hidden:
                sentences.append(s)
                continue
            stand_in = "(withheld) " + " ".join(f"[{n}]" for n in cited)
            whole = whole or s.get("text", "") not in text
            text = text.replace(s.get("text", ""), stand_in)
            sentences.append({**s, "text": stand_in})
        quoted = [c.get("text") for c in citations if c.get("n") in hidden and c.get("text")]
        if whole or any(q in text for q in quoted):  # a sentence not found as such: withhold the lot
            text, sentences = WITHHELD_ANSWER, []
        out.update(text=text, sentences=sentences, dropped=[])
    return out


class Conversations:
    """Each owner's conversations and feedback, in the library's library.sqlite."""

    def __init__(self, library: Library, access: Access):
        self.library = library
        self.store = library.store
        self.access = access

    # -- an owner's list -------------------------------------------------------------------------

    def list(self, owner: str | None) -> list[dict]:
        """{"id", "owner", "title", "created", "updated", "turns"}, the latest first (ANY_OWNER: everyone's)."""
        if owner is None:
            return []
        return self.store.conversations(None if owner == ANY_OWNER else owner)

    def get(self, owner: str | None, conversation: str | None) -> dict:
        """The conversation's row, if it is this owner's (the same error for someone else's and for none)."""
        row = self.store.conversation(conversation) if owner and conversation else None
        if row is None or owner not in (ANY_OWNER, row["owner"]):
            raise ConversationNotFoundError(conversation or "")
        return row

    def add(self, owner: str, conversation: str | None, question: str, kbs: list[str], answer: dict) -> tuple[str, int]:
        """Append an answered question to the owner's conversation, or to a new one titled by the question (also
        when the one named is gone); (conversation id, turn number)."""
        try:
            conversation = self.get(owner, conversation)["id"]
        except ConversationNotFoundError:
            conversation = secrets.token_urlsafe(9)
            self.store.add_conversation(conversation, owner, one_line(question, TITLE_CHARS) or "(no question)")
        return conversation, self.store.add_turn(conversation, question, list(kbs), answer)

    def rename(self, owner: str | None, conversation: str | None, title: str) -> dict:
        row = self.get(owner, conversation)
        title = one_line(title, TITLE_CHARS)
        if not title:
            raise RagError("a title needs at least one character: type one, then Rename")
        self.store.rename_conversation(row["id"], title)
        return {**row, "title": title}

    def delete(self, owner: str | None, conversation: str | None) -> None:
        self.store.remove_conversation(self.get(owner, conversation)["id"])

    # -- reading, as the owner may see it now ----------------------------------------------------

    def reader(self, owner: str) -> Callable[[str], bool]:
        """May this owner read this KB now? From the users file as it is (and the KBs that still exist)."""
        kind, _, name = owner.partition(":")
        if kind == "user" and not self.access.logins:
            raise AccessError(f"this conversation belongs to the login {name!r}: name the users file (--auth-file or "
                              f"RAG_AUTH_FILE), so that what {name} may read now decides which citations are shown")
        return self.may_read(self.access.principal(name if kind == "user" else None))

    def may_read(self, who) -> Callable[[str], bool]:
        """May this principal read this KB now (one that still exists)?"""
        names = set(self.library.names())
        return lambda kb: kb in names and self.access.may_read(who, kb)

    def turns(self, owner: str | None, conversation: str | None) -> list[dict]:
        """{"n", "question", "kbs", "answer", "created", "feedback"} of each turn as its owner may see it now."""
        row = self.get(owner, conversation)
        may_read = self.reader(row["owner"])
        rated = {f["n"]: f for f in self.store.feedback(conversation=row["id"])}
        return [{**t, "kbs": [kb for kb in t["kbs"] if may_read(kb)], "answer": withhold(t["answer"], may_read),
                 "feedback": ({"rating": "up" if rated[t["n"]]["rating"] > 0 else "down",
                               "comment": rated[t["n"]]["comment"]} if t["n"] in rated else None)}
                for t in self.store.turns(row["id"])]

    def export(self, owner: str | None, conversation: str | None, fmt: str) -> str:
        """The conversation as Markdown ("markdown") or JSON ("json"), as its owner may see it now."""
        row = self.get(owner, conversation)
        turns = self.turns(owner, conversation)
        if fmt == "json":
            return json.dumps(as_json(row, turns), ensure_ascii=False, indent=2) + "\n"
        return markdown(row, turns)

    # -- feedback ----------------------------------------------------------------------------------

    def rate(self, owner: str | None, conversation: str | None, n: int, liked: bool | None) -> None:
        """Thumbs up (True) or down (False) on a turn's answer, or neither any more (None)."""
        row = self.get(owner, conversation)
        turn = next((t for t in self.store.turns(row["id"]) if t["n"] == n), None)
        if turn is None:
            raise ConversationNotFoundError(f"{row['id']} turn {n}")
        if liked is None:
            self.store.remove_feedback(row["id"], n)
            return
        answer = turn["answer"]
        self.store.set_feedback(conversation=row["id"], n=n, owner=row["owner"], rating=1 if liked else -1,
                                question=turn["question"], resolved=answer.get("resolved_question") or turn["question"],
                                kbs=turn["kbs"], answer=answer, confidence=float(answer.get("confidence") or 0.0))

    def comment(self, owner: str | None, conversation: str | None, n: int, comment: str) -> bool:
        """A comment on a rated answer; False when the answer is not rated (there is nothing to comment on)."""
        return self.store.comment_feedback(self.get(owner, conversation)["id"], n, (comment or "").strip())

    def feedback(self, owner: str | None = None) -> list[dict]:
        """Every feedback record (or one owner's) as `rag feedback export` writes them, oldest first."""
        return [feedback_record(r) for r in self.store.feedback(owner=owner)]


def feedback_record(r: dict) -> dict:
    """One line of `rag feedback export`: what bench/suites/answers.py --feedback reads."""
    a = r["answer"]
    return {"rating": "up" if r["rating"] > 0 else "down", "comment": r["comment"], "question": r["question"],
            "resolved_question": r["resolved"], "kbs": r["kbs"], "answer": a.get("text", ""),
            "abstained": bool(a.get("abstained")), "confidence": r["confidence"], "mode": a.get("mode", ""),
            "citations": [{k: c.get(k) for k in CITATION_KEYS} for c in a.get("citations") or []],
            "conversation": r["conversation"], "turn": r["n"], "owner": r["owner"], "rated": iso(r["updated"])}


# -- exports ---------------------------------------------------------------------------------------


def owner_label(owner: str) -> str:
    kind, _, name = owner.partition(":")
    return f"{kind} {name}"


def as_json(row: dict, turns: list[dict]) -> dict:
    return {"format": "rag-conversation", "version": 1, "id": row["id"], "title": row["title"], "owner": row["owner"],
            "created": iso(row["created"]), "updated": iso(row["updated"]),
            "turns": [{"n": t["n"], "question": t["question"],
                       "resolved_question": t["answer"].get("resolved_question") or t["question"], "kbs": t["kbs"],
                       "asked": iso(t["created"]), "answer": t["answer"], "feedback": t["feedback"]} for t in turns]}


def quote(text: str) -> list[str]:
    """A Markdown blockquote holding the text exactly: each line after "> " ("> " taken off gives it back)."""
    return [f"> {line}" if line else ">" for line in text.split("\n")]


def markdown(row: dict, turns: list[dict]) -> str:
    """Each question, its answer with the markers [n], then each citation: KB, file, page, characters, quoted text."""
    out = [f"# {one_line(row['title'])}", "",
           f"Conversation {row['id']} · {owner_label(row['owner'])} · {len(turns)} question"
           f"{'' if len(turns) == 1 else 's'} · {iso(row['created'])} to {iso(row['updated'])}", ""]
    for t in turns:
        a = t["answer"]
        out += [f"## {t['n']}. {one_line(t['question'])}", ""]
        resolved = one_line(a.get("resolved_question") or "")
        if resolved and resolved != one_line(t["question"]):
            out += [f"Searched as: {resolved}", ""]
        out += [a.get("text") or "", ""]
        facts = [f"asked {iso(t['created'])}", f"knowledge bases: {', '.join(t['kbs']) or '-'}", a.get("mode") or ""]
        if a.get("abstained"):
            facts.append("no answer: the documents do not support one clearly enough")
        if isinstance(a.get("confidence"), (int, float)):
            facts.append(f"confidence {a['confidence']:.2f}")
        out += [" · ".join(f for f in facts if f), ""]
        for c in a.get("citations") or []:
            if c.get("withheld"):
                out += [f"[{c.get('n')}] {WITHHELD}", ""]
                continue
            where = [c.get("kb") or DEFAULT_KB, c.get("source") or "?"]
            where += [f"page {c['page']}"] if c.get("page") is not None else []
            where += ["OCR"] if c.get("ocr") else []
            where.append(f"characters {c.get('start')}–{c.get('end')}")
            out += [f"[{c.get('n')}] {' · '.join(map(str, where))}", ""] + quote(c.get("text") or "") + [""]
        if t["feedback"]:
            fb = t["feedback"]
            out += [f"Feedback: thumbs {fb['rating']}" + (f": {one_line(fb['comment'])}" if fb["comment"] else ""), ""]
    return "\n".join(out).rstrip() + "\n"
