"""MCP: the Model Context Protocol at /mcp (streamable HTTP, the official `mcp` package), so an agent can call the
documents as tools: `search` (ranked passages) and `ask` (a cited answer, or an abstention with the closest
passages). Behind the same tokens as the rest of the API: a request without a valid caller gets 401 before any
MCP message is read, and each tool call asks Access again with the caller of that HTTP request.

Stateless (no MCP session kept between requests): every POST stands alone, so a token revoked between two calls
refuses the second, and any number of server threads can serve calls.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request

from ..errors import RagError
from . import errors
from .errors import ApiError
from .service import Api

TOOL_PASSAGE_KEYS = ("kb", "source", "doc_id", "page", "start", "end", "text", "score")


def server(api: Api):
    """The MCP server with its two tools, and an ASGI endpoint for /mcp that checks the caller first."""
    # MCPServer() sets up the root logger (rich, INFO) unless it has a handler: not its to decide for this process
    root = logging.getLogger()
    placeholder = None if root.handlers else logging.NullHandler()
    if placeholder:
        root.addHandler(placeholder)
    try:
        mcp = MCPServer("rag", instructions="Answers from the user's documents, every claim cited to its exact span. "
                                            "Use `ask` for a cited answer, `search` for the passages themselves.")
    finally:
        if placeholder:
            root.removeHandler(placeholder)

    def caller(ctx: Context):
        request = ctx.request_context.request
        try:
            return api.caller(request)
        except ApiError as e:
            raise ToolError(e.message) from None

    def run(work):
        try:
            return work()
        except ApiError as e:
            raise ToolError(e.message) from None
        except RagError as e:  # the same messages the REST routes give
            raise ToolError(errors.from_rag_error(e).message) from None

    @mcp.tool(structured_output=True, description=(
        "A cited answer from the documents: `answer` with [n] markers, each citation the exact words of a file "
        "(kb, source, doc_id, page, start, end, text, score), and the `confidence`; when the documents do not "
        "answer, `abstained` is true and `passages` holds the closest ones. kbs: knowledge bases to search as one "
        "(empty: your default ones)."))
    def ask(question: str, ctx: Context, kbs: list[str] | None = None) -> dict[str, Any]:
        who = caller(ctx)
        answer = run(lambda: api.answer(who, question, kbs or []))
        d = answer.to_dict()
        return {"answer": answer.text, "abstained": answer.abstained, "confidence": answer.confidence,
                "resolved_question": answer.resolved_question,
                "citations": [{"n": c["n"], **{k: c[k] for k in TOOL_PASSAGE_KEYS}} for c in d["citations"]],
                "passages": [{k: p[k] for k in TOOL_PASSAGE_KEYS} for p in d["passages"]]}

    @mcp.tool(structured_output=True, description=(
        "The passages of the documents that best match a query, ranked across the knowledge bases named (empty: "
        "your default ones): kb, source, doc_id, page, start, end, text, score."))
    def search(query: str, ctx: Context, kbs: list[str] | None = None, k: int = 5) -> dict[str, Any]:
        who = caller(ctx)
        hits = run(lambda: api.search(who, query, kbs or [], k))
        return {"hits": [{k_: h.to_dict()[k_] for k_ in TOOL_PASSAGE_KEYS} for h in hits]}

    # the Host and Origin checks are off: this server decides who may call by the same login or token as every
    # other route (beyond loopback only with logins: rag/access.py check_exposure)
    mcp.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True,
                            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    manager = mcp.session_manager

    class Endpoint:  # an ASGI app (a class, so Starlette's Route hands it the raw request)
        async def __call__(self, scope, receive, send):
            try:
                api.caller(Request(scope))
            except ApiError as e:
                await errors.response(e.status, e.message, e.code)(scope, receive, send)
                return
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def running():
        async with manager.run():
            yield

    return Endpoint(), running
