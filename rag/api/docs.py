"""/docs: the API's reference (Swagger UI over /openapi.json), working offline.

FastAPI's own page loads Swagger UI's script, style and icon from a CDN; a server without the internet would show
a blank page. The same files come with the `fastapi-offline` package (a Swagger UI that reads OpenAPI 3.1) and are
served from /docs-assets, so the page names no other host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def install(app) -> None:
    import fastapi_offline

    app.mount(ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs():
        here = ASSETS.lstrip("/")  # relative, so the page also works behind a proxy that serves us under a path
        return get_swagger_ui_html(openapi_url=app.openapi_url.lstrip("/"), title=f"{app.title}: API reference",
                                   swagger_js_url=f"{here}/swagger-ui-bundle.js", swagger_css_url=f"{here}/swagger-ui.css",
                                   swagger_favicon_url=f"{here}/favicon.png")

    app.include_router(router)
