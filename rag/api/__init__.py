"""The headless API: the same answers, knowledge bases and access rules as the chat, for other tools.

  service.py  what every way in shares: the caller (token, session, or the open server), which KBs, answering
  errors.py   one error shape for all of it (OpenAI's), with the statuses 401, 403, 404, 409, 413, 422
  openai.py   /v1/models and /v1/chat/completions (plain and streamed): Open WebUI, the OpenAI SDKs, ...
  rest.py     /v1/ask, /v1/search, /v1/kbs and their documents (list, upload, delete)
  mcp.py      /mcp: the Model Context Protocol (streamable HTTP), tools `search` and `ask`
  docs.py     /docs: the reference, served without the internet

rag/server/app.py calls `install` before it mounts the chat at / (a mount at / shadows routes added after it).
"""

from __future__ import annotations

import contextlib

from fastapi import Request

from . import docs, errors, mcp, openai, rest
from .service import Api


def install(app, server) -> Api:
    """Every API route, the error handlers and the MCP server's lifespan, on the FastAPI app."""
    api = Api(server)
    errors.install(app)
    docs.install(app)
    app.include_router(openai.routes(api))
    app.include_router(rest.routes(api))
    endpoint, running = mcp.server(api)
    app.add_route("/mcp", endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(path: str, request: Request):
        raise errors.ApiError(404, f"no API route {request.method} /v1/{path}; the reference is at /docs")

    before = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        async with before(a), running():
            yield

    app.router.lifespan_context = lifespan
    return api
