"""GET /files/{kb}/{path}: an indexed document itself, the target of the chat's "open" links.

Served only to callers who may read that knowledge base (anyone else, and a name that does not exist, get the same
404), only from inside its corpus folder. What the file may do in the browser is the SafeFiles middleware's
business: an active type (HTML, SVG, XML...) never runs as the chat.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from ..chat.uploads import inside
from ..errors import RagError


def routes(*, auth, library) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/files/{kb}/{path:path}")
    def file(kb: str, path: str, request: Request):
        who = auth.principal(request)
        if who is None:
            raise HTTPException(401, "log in first (POST /login), or send Authorization: Bearer TOKEN")
        missing = HTTPException(404, f"no file {path!r} in a knowledge base you may read")
        try:
            auth.access.require_read(who, kb)
            folder = library.get(kb).corpus_dir
        except RagError:
            raise missing from None
        target = folder / path
        if not inside(target, folder) or not target.is_file() or any(p.startswith(".") for p in target.relative_to(folder).parts):
            raise missing
        return FileResponse(target, content_disposition_type="inline", headers={"cache-control": "private, no-cache"})

    return router
