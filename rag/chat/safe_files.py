"""Corpus files served to the browser can never run code in the chat's origin.

The "open" links serve indexed files through gradio's file route, with their own content type. An
HTML or SVG file put into the corpus would then run its scripts as the chat itself (reading the
session, asking as the logged-in user). This ASGI middleware adds `Content-Security-Policy: sandbox`
(a unique origin, no scripts) to such responses, and `X-Content-Type-Options: nosniff` to all files.
"""

from __future__ import annotations

ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml")


class SafeFiles:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "/file=" not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return

        async def guarded(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                kind = next((v.decode("latin-1").lower() for k, v in headers if k.lower() == b"content-type"), "")
                headers.append((b"x-content-type-options", b"nosniff"))
                if kind.startswith(ACTIVE_TYPES):
                    headers.append((b"content-security-policy", b"sandbox"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded)
