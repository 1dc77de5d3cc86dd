"""Slowing down password guessing: after a few failed logins from one address, each attempt waits.

Gradio's `auth=` callable sees only the name and password, not who is asking, so this is an ASGI
middleware around gradio's own `POST /login` route (installed through launch(app_kwargs=...)): it
reads the client address from the connection, holds each attempt for the delay that address has
earned, and learns the outcome from the response status (200 logged in, 400 refused).

Attempts from one address are checked one at a time, so parallel requests cannot skip the wait.
The counts live in memory only; a restart forgets them. Behind a reverse proxy on the same machine,
uvicorn takes the address from X-Forwarded-For (it trusts 127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class _Address:
    failures: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    """ASGI middleware: `free` failures cost nothing, then 1 s, 2 s, 4 s… up to `max_delay` a try.

    A success from the address, or `forget_after` seconds without a failure, starts it over.
    """

    def __init__(self, app, *, free: int = 3, max_delay: float = 30.0, forget_after: float = 900.0,
                 max_addresses: int = 10_000):
        self.app = app
        self.free, self.max_delay, self.forget_after, self.max_addresses = free, max_delay, forget_after, max_addresses
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        entry = self._entry(address)
        async with entry.lock:
            delay = self.delay(entry.failures)
            if delay:
                await asyncio.sleep(delay)
            status = 0

            async def watch(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, watch)
            if status == 200:
                entry.failures = 0
            elif status == 400:  # gradio's "Incorrect credentials"
                entry.failures += 1
                entry.last = time.monotonic()
                self._addresses.move_to_end(address)
                if entry.failures == self.free:
                    print(f"{self.free} failed logins from {address}: further attempts from it are slowed down",
                          file=sys.stderr, flush=True)

    def delay(self, failures: int) -> float:
        return 0.0 if failures < self.free else min(2.0 ** (failures - self.free), self.max_delay)

    def _entry(self, address: str) -> _Address:
        """This address's record; stale records are dropped, and the oldest when there are too many."""
        now = time.monotonic()
        for key, entry in list(self._addresses.items()):
            if now - entry.last > self.forget_after and not entry.lock.locked():
                del self._addresses[key]
        while len(self._addresses) >= self.max_addresses:
            self._addresses.popitem(last=False)
        return self._addresses.setdefault(address, _Address())
