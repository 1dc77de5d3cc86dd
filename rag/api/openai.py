"""OpenAI-compatible chat, for the tools people already use (Open WebUI, LibreChat, editor plugins, the SDKs).

  GET  /v1/models             `rag` (your default knowledge bases) and `rag:KB` for each KB you may read
  POST /v1/chat/completions   plain, or `stream: true` as server-sent events in OpenAI's chunk format

`model` picks what is searched: `rag`, `rag:hr`, or several as one ranking, `rag:hr+eng`. The last user message
is the question; the earlier messages are the conversation, so a follow-up resolves against them as in the chat.
The assistant's message is the answer with its [n] markers, then a "Sources:" list naming each [n]'s file, page and
words, so a person in any chat client can check it; an abstention is an ordinary message saying so. The answer is
extractive, or generated and verified when the server has an LLM (RAG_LLM_URL), exactly as ask() decides.

Everything else travels in the extra top-level field `rag` (in the last chunk when streaming):
  answer, abstained, confidence, mode, note, resolved_question,
  citations [{n, kb, source, doc_id, page, start, end, text, score, ...}]  (text == the document's text[start:end])
  passages  [{kb, source, page, start, end, text, score, ...}]            (the closest passages, also on abstaining)
Sampling options (temperature, max_tokens, ...) are accepted and ignored: the documents decide the answer.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..access import Principal
from ..errors import RagError
from ..model import Answer
from . import errors
from .errors import ApiError
from .service import SOURCES_HEADING, Api, conversation

MODEL = "rag"
QUOTE_CHARS = 240  # of each cited span in the Sources list (the whole span is in `rag.citations`)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's other options: accepted, not used
    model: str = Field(default=MODEL, description="rag, rag:KB or rag:KB+KB (GET /v1/models)")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def kbs_of(model: str) -> list[str]:
    """The KBs a model name picks ([]: the caller's default ones)."""
    if model == MODEL:
        return []
    names = model[len(MODEL) + 1:].split("+") if model.startswith(MODEL + ":") else []
    if not names or not all(names):
        raise ApiError(404, f"no model {model!r} here: the models are {MODEL} (your default knowledge bases), "
                            f"{MODEL}:KB or {MODEL}:KB+KB; GET /v1/models lists yours", "model_not_found")
    return names


def sources(answer: Answer, several_kbs: bool) -> str:
    """The Sources list after an answer: each marker's file, page and words (cut at QUOTE_CHARS)."""
    lines = []
    for c in answer.citations:
        quote = c.text if len(c.text) <= QUOTE_CHARS else c.text[:QUOTE_CHARS].rstrip() + "…"
        where = c.source + (f", page {c.page}" if c.page else "") + (f" ({c.kb})" if several_kbs and c.kb else "")
        lines.append(f"- [{c.n}] {where}: “{' '.join(quote.split())}”")
    return SOURCES_HEADING + "\n".join(lines) if lines else ""


def reply_text(answer: Answer, kbs: list[str]) -> str:
    return answer.text + ("" if answer.abstained else sources(answer, len(kbs) > 1))


def extra(answer: Answer) -> dict:
    """The documented `rag` field: the citations, the closest passages and the confidence."""
    d = answer.to_dict()
    keys = ("abstained", "confidence", "mode", "note", "resolved_question", "citations", "passages")
    return {"answer": answer.text, **{k: d[k] for k in keys}}


def routes(api: Api) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    def models_of(who: Principal) -> list[dict]:
        names = [MODEL] + [f"{MODEL}:{kb}" for kb in api.access.readable(who, api.library.names())]
        return [{"id": name, "object": "model", "created": 0, "owned_by": "rag"} for name in names]

    @router.get("/models", summary="rag, and rag:KB for each knowledge base you may read")
    def models(who: Principal = Depends(api.caller)) -> dict:
        return {"object": "list", "data": models_of(who)}

    @router.get("/models/{model}", summary="One model, if it is yours")
    def model(model: str, who: Principal = Depends(api.caller)) -> dict:
        found = [m for m in models_of(who) if m["id"] == model]
        if not found:
            raise ApiError(404, "no such model that you may use; GET /v1/models lists yours", "model_not_found")
        return found[0]

    @router.post("/chat/completions", summary="A cited answer as an OpenAI chat completion (stream: true for SSE)")
    def completions(body: ChatRequest, who: Principal = Depends(api.caller)):
        question, history = conversation([m.model_dump() for m in body.messages])
        kbs = api.kbs(who, kbs_of(body.model))  # a refusal comes now, as a status, before any stream starts
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if not body.stream:
            answer = api.answer(who, question, kbs, history)
            return {**head, "object": "chat.completion", "rag": extra(answer), "choices": [{
                "index": 0, "message": {"role": "assistant", "content": reply_text(answer, kbs)},
                "finish_reason": "stop", "logprobs": None}]}
        return StreamingResponse(_stream(api, who, question, kbs, history, head), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    return router


def _stream(api: Api, who, question: str, kbs: list[str], history: list[dict], head: dict):
    """The answer as chat.completion.chunk events. A generated answer streams as it is verified, a sentence at a
    time, when the server streams verified text (RAG_VERIFIED_STREAM); otherwise the answer comes whole once
    made: raw model tokens may be taken back by the verifier, and a sent chunk cannot be."""

    def event(data: dict) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def chunk(delta: dict, finish: str | None = None, **more) -> str:
        return event({**head, "object": "chat.completion.chunk", **more,
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    tokens: queue.Queue = queue.Queue()
    box: dict = {}

    def run():
        try:
            box["answer"] = api.answer(who, question, kbs, history,
                                       on_token=tokens.put if api.server.settings.verified_stream else None)
        except ApiError as e:
            box["error"] = e
        except RagError as e:
            box["error"] = errors.from_rag_error(e)
        except Exception as e:  # noqa: BLE001 - the stream must end with a reason, not hang
            box["error"] = ApiError(500, f"answering failed: {type(e).__name__}: {e}")
        finally:
            tokens.put(None)

    threading.Thread(target=run, name="rag-api-stream", daemon=True).start()
    sent = ""
    while (token := tokens.get()) is not None:
        sent += str(token)
        yield chunk({"content": str(token)})
    if "error" in box:
        e = box["error"]
        yield event(errors.body(e.status, e.message, e.code))
        return
    answer = box["answer"]
    full = reply_text(answer, kbs)
    rest = full[len(sent):] if full.startswith(sent) else "\n\n" + full
    if rest:
        yield chunk({"content": rest})
    yield chunk({}, "stop", rag=extra(answer))
    yield "data: [DONE]\n\n"
