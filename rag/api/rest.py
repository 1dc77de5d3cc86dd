"""REST: ask, search, the knowledge bases and their documents, for scripts. JSON in, `to_dict()` out.

  POST   /v1/ask                          {"question", "kbs"?, "k"?, "mode"?, "history"?} -> Answer.to_dict()
  POST   /v1/search                       {"query", "kbs"?, "k"?, "mode"?} -> {"hits": [Hit.to_dict()]}
  GET    /v1/kbs                          the KBs the caller may read, with counts and whether they may add
  GET    /v1/kbs/{kb}/documents           its indexed files
  POST   /v1/kbs/{kb}/documents           multipart `files`: stored and indexed as the chat's upload (same checks)
  DELETE /v1/kbs/{kb}/documents/{id}      a file out of the index (and out of the corpus folder, when it is there)

Uploads are indexed before the response: once it says "added", the document answers. The index keeps serving
its last committed state meanwhile.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from ..access import Principal
from ..chat.app import MAX_K
from ..chat.render import human_size
from ..chat.uploads import inside, screen
from ..config import MODES
from . import errors
from .errors import ApiError
from .service import Api

MAX_FILES = 20  # files in one upload request; with the per-file limit it bounds what a request may send


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str = Field(description="the question; a follow-up is resolved against `history`")
    kbs: list[str] = Field(default=[], description="knowledge bases to search as one ([]: your default ones)")
    k: int | None = Field(default=None, ge=1, le=MAX_K, description="passages to retrieve (default: the server's)")
    mode: Literal[MODES] | None = Field(default=None, description="retrieval mode (default: the server's)")
    history: list[Message] = Field(default=[], description="the conversation so far, oldest first: hand back each "
                                                           "answer's resolved_question as the user's turn")


class SearchRequest(BaseModel):
    query: str
    kbs: list[str] = []
    k: int | None = Field(default=None, ge=1, le=MAX_K)
    mode: Literal[MODES] | None = None


def routes(api: Api) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["REST"])
    max_bytes = api.chat.max_upload_bytes

    @router.post("/ask", summary="A cited answer, or an abstention with the closest passages")
    def ask(body: AskRequest, who: Principal = Depends(api.caller)) -> dict:
        return api.answer(who, body.question, body.kbs, [m.model_dump() for m in body.history], body.k,
                          body.mode).to_dict()

    @router.post("/search", summary="The ranked passages for a query, across the KBs named")
    def search(body: SearchRequest, who: Principal = Depends(api.caller)) -> dict:
        hits = api.search(who, body.query, body.kbs, body.k, body.mode)
        return {"hits": [h.to_dict() for h in hits]}

    @router.get("/kbs", summary="The knowledge bases you may read")
    def kbs(who: Principal = Depends(api.caller)) -> dict:
        rows, default = [], api.chat.default_kbs(who)
        for name in api.access.readable(who, api.library.names()):
            counts = api.library.index(name, build=False).store.counts()
            rows.append({"name": name, **counts, "can_add": api.access.may_add(who, name),
                         "default": name in default})
        return {"kbs": rows}

    @router.get("/kbs/{kb}/documents", summary="The files indexed in a knowledge base")
    def documents(kb: str, who: Principal = Depends(api.caller)) -> dict:
        api.access.require_read(who, kb)
        store = api.library.index(kb, build=False).store
        counts = store.file_counts()
        rows = [{"id": f["source"], "source": f["source"], "bytes": f["size"], "indexed_at": f["indexed_at"],
                 "documents": counts.get(path, (0, 0))[0], "chunks": counts.get(path, (0, 0))[1]}
                for path, f in store.files().items()]
        return {"kb": kb, "documents": sorted(rows, key=lambda r: r["id"])}

    class Capped(APIRoute):
        """Refuse an upload larger than it may be before its body is read (a per-file check follows)."""

        def get_route_handler(self):
            handler = super().get_route_handler()

            async def capped(request: Request):
                if int(request.headers.get("content-length") or 0) > MAX_FILES * max_bytes + 1024 * 1024:
                    return errors.response(413, f"the upload is larger than {MAX_FILES} files of "
                                                f"{human_size(max_bytes)}: send fewer or smaller files per request")
                return await handler(request)

            return capped

    uploads = APIRouter(tags=["REST"], route_class=Capped)  # into `router`, which adds /v1

    @uploads.post("/kbs/{kb}/documents", summary="Add files: stored in the KB's corpus and indexed before the reply")
    def add(kb: str, files: list[UploadFile] = File(description="the files, as multipart `files`"),
            who: Principal = Depends(api.caller)) -> dict:
        api.access.require_add(who, kb)
        if len(files) > MAX_FILES:
            raise ApiError(413, f"{len(files)} files in one request: send at most {MAX_FILES}")
        staging = Path(tempfile.mkdtemp(prefix="rag-upload-"))
        try:
            received = []
            for n, f in enumerate(files):
                path = staging / str(n) / "upload"
                path.parent.mkdir()
                with open(path, "wb") as out:
                    shutil.copyfileobj(f.file, out)
                received.append((path, f.filename or ""))
            accepted, rejected = screen(received, max_bytes)
            if not accepted:
                too_large = all(why.startswith("too large") for _, why in rejected)
                raise ApiError(413 if too_large else 422, "nothing was added: " + "; ".join(
                    f"{name}: {why}" for name, why in rejected))
            notes: list[str] = []
            report = api.chat.store_and_index(kb, accepted, staging, notes)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {"kb": kb, "added": report.added, "unchanged": report.unchanged,
                "failed": [{"file": Path(e.path).name, "line": e.line, "reason": e.reason} for e in report.failed],
                "rejected": [{"file": name, "reason": why} for name, why in rejected],
                "notes": notes, "chunks": report.chunks, "embedded": report.embedded,
                "seconds": round(report.seconds, 3)}

    @router.delete("/kbs/{kb}/documents/{id:path}", summary="Remove a file from the index and the KB's corpus folder")
    def remove(kb: str, id: str, who: Principal = Depends(api.caller)) -> dict:
        api.access.require_add(who, kb)
        index = api.library.index(kb, build=False)
        corpus = api.library.get(kb).corpus_dir
        with api.chat.writer(kb):
            paths = [path for path, f in index.store.files().items() if f["source"] == id]
            if not paths:
                raise ApiError(404, f"no document {id!r} in {kb!r}; GET /v1/kbs/{kb}/documents lists them",
                               "document_not_found")
            kept = []
            for path in paths:  # the file first: should the index write not happen, the next pass prunes it
                if inside(Path(path), corpus):
                    Path(path).unlink(missing_ok=True)
                else:
                    kept.append(path)
            report = index.remove(paths)
        return {"kb": kb, "removed": report.removed,
                "notes": [f"{id} lies outside the knowledge base's corpus folder: it left the index, the file stays "
                          "where it is"] if kept else []}

    router.include_router(uploads)
    return router
