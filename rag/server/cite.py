"""GET /cite: the page view of one citation of an answer; GET /cite/page: its page drawn, the cited lines highlighted.

Stateless: the link (rag.pages.view.view_query, made by the chat's Sources panel) carries the spans of all the
answer's citations and which one to show. For that one the server checks that the caller may read its knowledge
base (401 without a login where logins are on; a KB they may not read, like a KB, document or span that does not
exist, is the same 404), takes the quote from the stored text by the span's offsets (never from the link), places
it on its page from stored data (rag.pages.locate) and draws the page through the disk cache (rag.pages.render).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..errors import RagError
from ..pages.locate import locate_one
from ..pages.render import MEDIA_TYPE, PageCache, page_image
from ..pages.view import POLICY, page_view, read_spans, view_query

NO_STORE = {"cache-control": "private, no-cache"}


def routes(*, auth, library, settings, file_url) -> APIRouter:
    """`file_url(kb, source)`: the /files link of a document inside its KB's corpus folder, else None."""
    router = APIRouter(include_in_schema=False)
    cache = PageCache.from_settings(settings)
    passwords = settings.pdf_passwords

    def resolve(request: Request, values: list[str], i: int):
        """(the spans, the one shown with its stored text, its stored page), or the HTTP refusal."""
        who = auth.principal(request)
        if who is None:
            raise HTTPException(401, "log in first (POST /login), or send Authorization: Bearer TOKEN")
        try:
            spans = read_spans(values)
        except RagError as e:
            raise HTTPException(400, str(e)) from None
        if not 0 <= i < len(spans):
            raise HTTPException(400, f"the link carries {len(spans)} citation(s): i must be 0 to {len(spans) - 1}")
        cited = spans[i]
        missing = HTTPException(404, "no such cited text in a knowledge base you may read")
        try:
            auth.access.require_read(who, cited.kb)
            page = library.index(cited.kb, build=False).store.page_of(cited.source, cited.doc_id, cited.page)
        except RagError:
            raise missing from None
        if page is None or cited.end > len(page["text"]):
            raise missing
        cited.text, cited.ocr = page["text"][cited.start:cited.end], page["ocr"]
        return spans, cited, page

    @router.get("/cite")
    def view(request: Request, c: list[str] = Query(default=[]), i: int = 0):
        spans, cited, page = resolve(request, c, i)
        image = scan = note = ""
        text = None
        if not drawable(page):
            text = page["text"]
        elif unchanged(page):
            locate_one(cited, page, passwords)
            one = view_query([asdict(cited)], 0)
            image = "cite/page?" + one
            scan = "cite/page?" + one + "&crop=1" if cited.ocr and cited.boxes else ""
        else:  # its page may say something else now: show what was indexed and cited
            text = page["text"]
            note = (f"{cited.source} changed or is gone since it was indexed: this is the text that was indexed "
                    "and cited; re-index it (Re-index, or rag index) to see its page.")
        html = page_view(cited, position=(i + 1, len(spans)), image_url=image, scan_url=scan,
                         file_url=file_url(cited.kb, cited.source) or "", text=text, note=note,
                         previous_url="cite?" + urlencode({"i": i - 1, "c": c}, doseq=True) if i > 0 else "",
                         next_url="cite?" + urlencode({"i": i + 1, "c": c}, doseq=True) if i + 1 < len(spans) else "")
        return HTMLResponse(html, headers={**NO_STORE, "content-security-policy": POLICY})

    @router.get("/cite/page")
    def image(request: Request, c: list[str] = Query(default=[]), i: int = 0, crop: bool = False):
        _, cited, page = resolve(request, c, i)
        if not drawable(page):
            raise HTTPException(404, f"{cited.source} has no page to draw: it is shown as text")
        locate_one(cited, page, passwords)
        try:
            data = page_image(cache, page["path"], page["hash"], cited.page, cited.boxes, width=cited.page_width,
                              crop=crop, passwords=passwords)
        except RagError:
            raise HTTPException(404, f"{cited.source} changed or is gone since it was indexed; re-index it to see "
                                     "its page") from None
        return Response(data, media_type=MEDIA_TYPE, headers=NO_STORE)

    return router


def drawable(page: dict) -> bool:
    """A page with a picture to show: a PDF page, or a scan read by OCR."""
    return page["ocr"] or page["path"].lower().endswith(".pdf")


def unchanged(page: dict) -> bool:
    """Is the file still there, as it was indexed?"""
    try:
        return hashlib.sha256(Path(page["path"]).read_bytes()).hexdigest() == page["hash"]
    except OSError:
        return False
