"""Who is calling: one answer for every route, from a login session, an API token, or a server without logins.

Sessions are ours, not gradio's: a login (POST /login, the form gradio_client also posts) sets an HttpOnly cookie
whose SHA-256 is kept in library.sqlite, so a session survives a restart, ends at "Log out", when the user is
removed, or when their password changes (the session remembers a fingerprint of the password hash), and is
checked against the users file on every request. The mounted chat learns the user through gradio's
`auth_dependency`; the API reads the same `principal()`. API tokens come as `Authorization: Bearer rag_...` and
carry their user's rights or fewer (rag/tokens.py). Without logins, each browser gets a random cookie of its own
(BrowserCookie), the key its conversations are kept under.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.datastructures import MutableHeaders

from ..access import Access, Principal, is_loopback
from ..api.errors import response
from ..conversations import BROWSER_COOKIE
from ..store import LibraryStore
from ..tokens import principal_for_token

SESSION_COOKIE = "rag-session"
SESSION_IDLE_DAYS = 30  # a session not used for this long ends
BROWSER_COOKIE_DAYS = 400  # the longest a browser keeps a cookie (Chromium's cap)
_PAGE = Path(__file__).resolve().parent / "static" / "login.html"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(password_hash: str) -> str:
    """What a session keeps of the password it was opened with: a new password ends the session."""
    return _sha256(password_hash)[:16]


class Auth:
    def __init__(self, access: Access, store: LibraryStore):
        self.access = access
        self.store = store

    # -- resolving a request -------------------------------------------------------------------------

    def principal(self, request) -> Principal | None:
        """The caller of a Starlette request, or None: not logged in, a dead session, a bad or revoked token."""
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            who = principal_for_token(self.access, self.store, header[7:].strip())
            if who is not None or self.access.logins:
                return who
            # no logins: a key that is no token counts as none (OpenAI's clients must send some key, and anyone
            # may leave it out); a real token still narrows what its request may read
        if not self.access.logins:
            return self.access.principal(None)
        cookie = request.cookies.get(SESSION_COOKIE)
        return self.session_principal(cookie) if cookie else None

    def session_principal(self, cookie: str) -> Principal | None:
        key = _sha256(cookie)
        session = self.store.session(key)
        if session is None or time.time() - session["seen"] > SESSION_IDLE_DAYS * 86400:
            return None
        who = self.access.principal(session["user"])
        user = self.access.users.get(session["user"]) if who is not None else None
        if user is None or fingerprint(user.password_hash) != session["password"]:
            self.store.remove_sessions(token_hash=key)
            return None
        if time.time() - session["seen"] > 60:  # a write a minute at most
            self.store.touch_session(key)
        return who

    def username(self, request) -> str | None:
        """gradio's auth_dependency: the logged-in user's name, None for a caller who is not."""
        who = self.principal(request)
        return None if who is None else who.name

    # -- logging in and out ----------------------------------------------------------------------

    async def login(self, username: str, password: str) -> str | None:
        """A new session's cookie value for a right name and password, else None (the same for a wrong name)."""
        if not await self.access.login(username, password):
            return None
        user = self.access.users.get(username)
        cookie = secrets.token_urlsafe(32)
        self.store.add_session(_sha256(cookie), user.name, fingerprint(user.password_hash))
        self.store.remove_sessions(idle_before=time.time() - SESSION_IDLE_DAYS * 86400)
        return cookie

    def logout(self, cookie: str | None) -> None:
        if cookie:
            self.store.remove_sessions(token_hash=_sha256(cookie))

    def routes(self) -> APIRouter:
        """GET /login (the page), POST /login (name and password as a form), GET /logout."""
        router = APIRouter(include_in_schema=False)

        @router.get("/login")
        def login_page(request: Request):
            if not self.access.logins or self.principal(request) is not None:
                return RedirectResponse("./", status_code=302)
            return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers={"cache-control": "no-store"})

        @router.post("/login")
        async def login(request: Request, username: str = Form(""), password: str = Form("")):
            if not self.access.logins:
                return RedirectResponse("./", status_code=302)
            cookie = await self.login(username.strip(), password)
            if cookie is None:
                return JSONResponse({"detail": "Incorrect credentials."}, status_code=400)
            response = JSONResponse({"success": True})
            response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="lax", path="/",
                                secure=request.url.scheme == "https", max_age=SESSION_IDLE_DAYS * 86400)
            return response

        @router.get("/logout")
        def logout(request: Request):
            self.logout(request.cookies.get(SESSION_COOKIE))
            response = RedirectResponse("login", status_code=302)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response

        return router


class LoginRedirect:
    """ASGI middleware: a browser asking for the chat's page without a login is sent to the login page (the rest
    of the chat's routes answer 401 through gradio's auth_dependency)."""

    def __init__(self, app, *, auth: Auth):
        self.app, self.auth = app, auth

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] == "/" \
                and self.auth.access.logins:
            if self.auth.principal(Request(scope)) is None:
                await RedirectResponse("login?next=" + quote("/"), status_code=302)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BrowserCookie:
    """ASGI middleware for a server without logins: a response to a browser that has no rag-browser cookie sets
    one, 32 random bytes, so the page's next requests say which browser they come from (rag/conversations.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or BROWSER_COOKIE in Request(scope).cookies:
            await self.app(scope, receive, send)
            return
        cookie = (f"{BROWSER_COOKIE}={secrets.token_urlsafe(32)}; Path=/; Max-Age={BROWSER_COOKIE_DAYS * 86400}; "
                  "HttpOnly; SameSite=Lax")

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class LoopbackNames:
    """ASGI middleware for a server without logins on loopback: a request addressed to any name but 127.0.0.1,
    localhost or [::1] gets a 403, on every route (the chat, its files, the page view, the API). DNS rebinding points
    another site's name at 127.0.0.1: that site's pages are then same-origin with this server, and would otherwise
    ask, read documents and upload as the person whose browser runs them."""

    MESSAGE = ("refused: without logins this server answers requests addressed to 127.0.0.1, localhost or [::1] "
               "only; to reach it by another name, give it users (--auth-file) and tokens, or start it with --no-auth")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not is_loopback(urlsplit("//" + host).hostname or ""):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await response(403, self.MESSAGE, "host_refused")(scope, receive, send)
                return
        await self.app(scope, receive, send)
