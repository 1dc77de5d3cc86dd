"""One error shape for every API route, OpenAI's: {"error": {"message", "type", "code"}} with the right status.

OpenAI's clients read it as they read OpenAI's own errors, and a script reads `error.message`, which says what to
do next. A knowledge base the caller may not read gets the very same 404 as one that does not exist: its message
never names or confirms it. Routes outside the API (the chat, /login, /files) keep their own responses.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import AccessError, IndexLockedError, KnowledgeBaseNotFoundError, RagError

API_PATHS = ("/v1/", "/mcp")
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         405: "invalid_request_error", 409: "conflict_error", 413: "request_too_large", 422: "invalid_request_error",
         500: "server_error", 503: "server_error"}
NOT_FOUND = ("no knowledge base by that name that you may read; GET /v1/kbs (or /v1/models) lists the ones you can "
             "use")
NO_CALLER = ("no valid credentials: send Authorization: Bearer TOKEN with a token from `rag token create NAME "
             "--user USER` (or log in through POST /login); a revoked token, or one whose user was removed, is refused")


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def body(status: int, message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": None,
                      "code": code}}


def response(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"www-authenticate": 'Bearer realm="rag"'} if status == 401 else None
    return JSONResponse(body(status, message, code), status_code=status, headers=headers)


def from_rag_error(e: RagError) -> ApiError:
    """The API's reading of our exception family."""
    if isinstance(e, KnowledgeBaseNotFoundError):
        return ApiError(404, NOT_FOUND, "kb_not_found")
    if isinstance(e, AccessError):
        return ApiError(403, str(e), "forbidden")
    if isinstance(e, IndexLockedError):
        return ApiError(409, str(e), "index_busy")
    return ApiError(422, str(e))


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PATHS)


def install(app) -> None:
    """The exception handlers: ours on API paths, FastAPI's own elsewhere."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return response(e.status, e.message, e.code)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, e: RagError):
        e = from_rag_error(e)
        return response(e.status, e.message, e.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        if not _is_api(request):
            return await request_validation_exception_handler(request, e)
        problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}"
                             for err in e.errors())
        return response(422, f"the request does not fit this route's schema (see /docs): {problems}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        if not _is_api(request):
            return await http_exception_handler(request, e)
        return response(e.status_code, str(e.detail))
