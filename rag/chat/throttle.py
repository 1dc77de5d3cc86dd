"""Slowing down password guessing: after a few failed logins for one user name, each try for it waits.

Gradio's `auth=` callable sees only the name and password, not who is asking, so this is an ASGI
middleware around gradio's own `POST /login` route: it reads the name from the form, holds the attempt
for the delay that name has earned, and learns the outcome from the response status (200 logged in,
400 refused).

Failures count per user name, from whatever address they come, and only that name's own success
starts its count over: logging in as yourself does not buy more guesses at someone else's password,
and changing address does not either. Attempts on one name are checked one at a time, so parallel
requests cannot skip the wait; attempts on other names never wait for them, so a guesser behind a
shared address (a proxy, a share link) slows down only the names they guess. The counts live in
memory; a restart forgets them. The address is only named in the log, taken from the connection
(behind a reverse proxy on this machine uvicorn reads X-Forwarded-For, trusting the addresses in
FORWARDED_ALLOW_IPS, 127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_FORM = 64 * 1024  # a login form is a name and a password: a bigger body is refused unread


@dataclass(kw_only=True)
class _Name:
    failures: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    """ASGI middleware: `free` failures of a name cost nothing, then 1 s, 2 s, 4 s… up to `max_delay` a try.

    A success for the name, or `forget_after` seconds without a failure, starts it over. At most
    `max_names` names are remembered; when full, those with the fewest failures are forgotten first,
    so a flood of made-up names cannot wipe out the count of a name under attack.
    """

    def __init__(self, app, *, free: int = 3, max_delay: float = 30.0, forget_after: float = 900.0,
                 max_names: int = 10_000):
        self.app = app
        self.free, self.max_delay, self.forget_after, self.max_names = free, max_delay, forget_after, max_names
        self._names: OrderedDict[str, _Name] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, b"login form too large")
            return
        name = await _form_name(scope, body)
        address = (scope.get("client") or ("unknown",))[0]
        entry = self._entry(name)
        async with entry.lock:
            delay = self.delay(entry.failures)
            log.debug("login attempt waits %.0f s (%d failures of that name)", delay, entry.failures)
            if delay:
                await asyncio.sleep(delay)
            status = 0

            async def watch(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, _replay(body, receive), watch)
            if status == 200:
                entry.failures = 0
            elif status == 400:  # gradio's "Incorrect credentials"
                entry.failures += 1
                entry.last = time.monotonic()
                self._names.move_to_end(name)
                if entry.failures == self.free:  # never the name itself: people type passwords into it
                    print(f"{self.free} failed logins for one user name, the last from {address}: "
                          "further attempts on that name are slowed down", file=sys.stderr, flush=True)

    def delay(self, failures: int) -> float:
        return 0.0 if failures < self.free else min(2.0 ** (failures - self.free), self.max_delay)

    def _entry(self, name: str) -> _Name:
        """This name's record; stale records are dropped, and when too many, those with fewest failures."""
        now = time.monotonic()
        for key, entry in list(self._names.items()):
            if now - entry.last > self.forget_after and not entry.lock.locked():
                del self._names[key]
        if name not in self._names and len(self._names) >= self.max_names:
            idle = [(e.failures, i, k) for i, (k, e) in enumerate(self._names.items()) if not e.lock.locked()]
            for *_, key in sorted(idle)[: len(self._names) - self.max_names + 1]:
                del self._names[key]
        return self._names.setdefault(name, _Name())


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None past MAX_FORM."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive() that hands the app the body already read, then the connection's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


async def _form_name(scope, body: bytes) -> str:
    """The user name as gradio's login reads it (form field `username`, stripped), urlencoded or multipart."""
    from starlette.requests import Request

    try:
        form = await Request(scope, _replay(body, _disconnected)).form()
        return str(form.get("username") or "").strip()
    except Exception:  # noqa: BLE001 - a malformed form: gradio refuses it; count it under no name
        return ""


async def _disconnected():
    return {"type": "http.disconnect"}


async def _answer(send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})
