"""The FastAPI app: login, files, the page view and the API (rag/api/) first, then the Gradio chat mounted at /
(routes added after a mount at / would never be reached). Middleware wraps all of it: SafeFiles on every response,
the login throttle and the login redirect when there are logins, a cookie per browser (its conversations' key)
when there are none.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from ..access import Access, check_users_file
from ..api import install as install_api
from ..chat import ChatApp, build_app
from ..chat.page import poll_less, static_text
from ..chat.safe_files import SafeFiles
from ..chat.throttle import LoginThrottle
from ..chat.uploads import MAX_UPLOAD_MB
from ..config import Settings
from ..kb import Library
from . import cite, files
from .auth import Auth, BrowserCookie, LoginRedirect, LoopbackNames


@dataclass(kw_only=True)
class Server:
    """What the routes share, reachable as app.state.rag."""

    settings: Settings
    library: Library
    access: Access
    auth: Auth
    chat: ChatApp


def build(settings: Settings, *, access: Access | None = None, max_upload_mb: float = MAX_UPLOAD_MB,
          no_auth: bool = False):
    """The whole server as an ASGI app. Start-up indexing of every knowledge base begins once it listens
    (Running.start): a port already taken stops the start before any indexing. no_auth: open without logins beyond
    loopback (--no-auth); otherwise a server without logins answers requests addressed to loopback names only."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no version check, no analytics calls
    import fastapi
    import gradio as gr

    access = access or Access.from_settings(settings)
    library = Library.open(settings)
    check_users_file(settings.auth_file, [library.get(kb).corpus_dir for kb in library.names()])
    auth = Auth(access, library.store)
    chat = ChatApp(settings, library, access, max_upload_mb=max_upload_mb)
    app = fastapi.FastAPI(title="rag", summary="Answers from your documents, every claim cited to its exact span",
                          docs_url=None, redoc_url=None)  # /docs is rag/api/docs.py's, working offline
    app.state.rag = Server(settings=settings, library=library, access=access, auth=auth, chat=chat)
    app.add_middleware(SafeFiles, pages=("/", "/login", "/docs", "/cite"))  # our own pages run their scripts
    if access.logins:
        app.add_middleware(LoginRedirect, auth=auth)
        app.add_middleware(LoginThrottle)  # outermost: every login attempt waits what its sender has earned
    else:
        app.add_middleware(BrowserCookie)
    if not (access.logins or no_auth):
        app.add_middleware(LoopbackNames)  # outermost: DNS rebinding reaches no route
    app.include_router(auth.routes())
    app.include_router(files.routes(auth=auth, library=library))
    app.include_router(cite.routes(auth=auth, library=library, settings=settings, file_url=chat.file_url))
    install_api(app, app.state.rag)
    demo = build_app(chat)
    demo.queue(default_concurrency_limit=2)
    poll_less(demo)  # an idle server sleeps (gradio's queue would look for work every 1 ms)
    gr.mount_gradio_app(
        app, demo, path="/",
        auth_dependency=auth.username if access.logins else None,
        allowed_paths=[],  # documents are served by /files, which checks who asks
        max_file_size=chat.max_upload_bytes,
        css=static_text("chat.css"),
        head=f"<script>\n{static_text('chat.js')}</script>",
        footer_links=["api", "gradio"],
        enable_monitoring=False,  # gradio's traffic dashboard: nothing this server needs to expose
        mcp_server=False,  # gradio's own MCP server would not check the login; ours is at /mcp
    )
    return app


class Running:
    """The server running in a thread of this process (`rag serve` waits on it; tests stop it)."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        self.started = threading.Event()
        outer = self

        class _Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                outer.started.set()

        # proxy headers are trusted from FORWARDED_ALLOW_IPS (default 127.0.0.1): a reverse proxy on this machine
        self.server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=True,
                                             timeout_graceful_shutdown=2))
        self.app, self.host, self.port = app, host, port
        self.thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "Running":
        self.thread = threading.Thread(target=self.server.run, name="rag-server", daemon=True)
        self.thread.start()
        while not self.started.wait(0.1):
            if not self.thread.is_alive():
                raise RuntimeError(f"the server could not start on {self.url}: is the port taken? choose another "
                                   "with --port N (or GRADIO_SERVER_PORT)")
        if self.port == 0:  # the port the system chose
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.app.state.rag.chat.start()  # listening: now index every knowledge base's corpus
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)
