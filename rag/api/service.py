"""What the three ways in (REST, OpenAI-compatible, MCP) share: who is calling, which knowledge bases a request
may search, and answering or searching them, as the chat does (its ChatApp answers and stores uploads for both).

A request names no KB: the caller's default ones (the chat's picker starts on the same). It names some: each must
be one the caller may read, else the one 404 that a KB which does not exist gets. At most CONCURRENT_ANSWERS
questions are worked on at once; the others wait their turn (more at once on a few cores only makes each slower).
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from starlette.requests import Request

from ..access import Principal
from ..answer.followup import resolve_question
from ..errors import KnowledgeBaseNotFoundError
from ..model import Answer, Hit
from .errors import NO_CALLER, NOT_FOUND, ApiError

CONCURRENT_ANSWERS = 4  # the same bound as the chat's gradio ask endpoint
SOURCES_HEADING = "\n\nSources:\n"  # what the OpenAI-compatible reply adds after the answer (see openai.py)


class Api:
    """The server's state (app.state.rag: settings, library, access, auth, chat) as the API routes use it."""

    def __init__(self, server):
        self.server = server
        self.chat = server.chat
        self.library = server.library
        self.access = server.access
        self._slots = threading.BoundedSemaphore(CONCURRENT_ANSWERS)

    def caller(self, request: Request) -> Principal:
        """The principal of a request (token, session, or the open server), else 401. Refused first, as pages of other
        sites could otherwise use a server without logins from the visitor's browser: a request such a page made
        (its Origin is not this server: a multipart form needs no CORS preflight, and could post files into a KB).
        Requests addressed to another name than a loopback one never get here on a server without logins on
        loopback (rag/server/auth.py, LoopbackNames: DNS rebinding)."""
        host = request.headers.get("host") or ""
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != host:
            raise ApiError(403, "refused: a page of another site sent this request; the API answers scripts and "
                                "tools, and pages served by this server", "cross_site")
        who = self.server.auth.principal(request)
        if who is None:
            raise ApiError(401, NO_CALLER, "invalid_api_key")
        return who

    def kbs(self, who: Principal, names=None) -> list[str]:
        """The KBs a request searches: those it names, each readable by the caller, else the caller's default."""
        names = [names] if isinstance(names, str) else list(dict.fromkeys(names or []))
        if not names:
            chosen = self.chat.default_kbs(who)
            if not chosen:
                raise ApiError(404, NOT_FOUND, "kb_not_found")
            return chosen
        known = set(self.library.names())
        for name in names:
            self.access.require_read(who, name)
            if name not in known:  # a grant on every KB reaches names nobody registered: still not there
                raise KnowledgeBaseNotFoundError(name)
        return names

    def ready(self) -> None:
        """Wait for the start-up pass that brings every KB's index up to date (the first requests after a start)."""
        self.chat.started.wait()

    def answer(self, who: Principal, question: str, kbs=None, history=None, k=None, mode=None,
               on_token=None) -> Answer:
        """ask() over the KBs the caller names (or their default ones), as the chat answers it."""
        question = (question or "").strip()
        if not question:
            raise ApiError(422, "the question is empty; ask something about your documents")
        chosen = self.kbs(who, kbs)
        self.ready()
        with self._slots:
            return self.chat.answer(question, chosen, history, on_token, k, mode)

    def search(self, who: Principal, query: str, kbs=None, k=None, mode=None) -> list[Hit]:
        query = (query or "").strip()
        if not query:
            raise ApiError(422, "the query is empty; send some words to search for")
        chosen = self.kbs(who, kbs)
        self.ready()
        choices = self.chat.choices(k, mode)
        with self._slots:
            return self.library.select(chosen, build=False).search(query, choices["k"], choices["mode"])


def conversation(messages: list[dict]) -> tuple[str, list[dict]]:
    """The question (the last user message) and the history ask() reads, from chat messages as OpenAI's API sends
    them: each earlier user turn written out against the turns before it, as the chat hands back resolved questions,
    so a follow-up of a follow-up still knows its subject. System and tool messages are not part of it."""
    turns = [(m["role"], text_of(m.get("content"))) for m in messages if m.get("role") in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise ApiError(422, "the last message must be the user's question (role \"user\", some text)")
    history: list[dict] = []
    for role, text in turns[:-1]:
        if role == "user":
            history.append({"role": "user", "content": resolve_question(text, history)})
        else:  # an answer: without the sources list the OpenAI-compatible reply added after it
            history.append({"role": "assistant", "content": text.split(SOURCES_HEADING, 1)[0]})
    return turns[-1][1], history


def text_of(content) -> str:
    """A message's text: a string, or OpenAI's list of parts (the text parts, joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
