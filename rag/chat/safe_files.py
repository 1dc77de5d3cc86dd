"""Nothing the server sends can run code in the chat's origin, whichever route sent it.

Gradio serves the corpus files behind the "open" links on more than one route (`/gradio_api/file=PATH`
and `/gradio_api/file/PATH` in gradio 6), inline and with their own content types. An HTML, SVG or XML
file in the corpus would then run its scripts as the chat itself, for whoever opens it: reading the
session, asking as them. So this ASGI middleware decides by what a response is, not by the route that
made it: a response whose content type is not on a short list of types browsers show without running
code gets `Content-Security-Policy: sandbox` (a unique origin where scripts, forms and plugins never
run), and every response gets `X-Content-Type-Options: nosniff` (the declared type is the one used).
The app's own pages (`pages`: the chat and gradio's login form at "/") are left alone: they need
their scripts. Plain ASGI, so it wraps any Starlette or FastAPI app; paths are taken relative to the
app's root_path.
"""

from __future__ import annotations

# shown as they are, never run as a page: text, PDFs (the browser's viewer has its own origin), JSON,
# the browser's image formats, audio and video, and the scripts and styles the app's page loads
SAFE_INLINE = frozenset({
    "text/plain", "text/css", "text/javascript", "application/javascript", "application/json", "application/pdf",
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/x-icon", "image/vnd.microsoft.icon",
})
SAFE_PREFIXES = ("audio/", "video/", "font/")


def is_safe_inline(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in SAFE_INLINE or kind.startswith(SAFE_PREFIXES)


class SafeFiles:
    def __init__(self, app, pages: tuple[str, ...] = ("/",)):
        self.app = app
        self.pages = frozenset(pages)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope.get("path", ""), scope.get("root_path", "")
        own_page = (path[len(root):] if root and path.startswith(root) else path) or "/"
        own_page = own_page in self.pages

        async def guarded(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != b"x-content-type-options"]
                kinds = [v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"]
                headers.append((b"x-content-type-options", b"nosniff"))
                if not own_page and not (kinds and all(is_safe_inline(k) for k in kinds)):
                    headers.append((b"content-security-policy", b"sandbox"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded)
