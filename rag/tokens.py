"""API tokens: what scripts and other tools log in with, so they never hold a person's password.

`rag token create NAME [--user USER] [--kb KB ...]` prints a token once (`rag_` and 43 random characters); only
its SHA-256 is stored (library.sqlite). A token carries the rights of its user as the users file says at each
request, narrowed to its KBs when it names some: never more than its user. On a server without logins a token
has no user and may do everything (within its KBs). Revoked, or its user removed: refused at the next request.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from .access import Access, Principal
from .config import check_kb_name
from .errors import AccessError
from .store import LibraryStore

PREFIX = "rag_"
_NAME = re.compile(r"[\w.@+-]{1,64}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(store: LibraryStore, name: str, *, user: str | None, kbs: list[str]) -> str:
    """Store a new token's hash and return the token itself (shown once, never stored)."""
    if not _NAME.fullmatch(name or ""):
        raise AccessError(f"token name {name!r} is not usable: 1-64 letters, digits or . @ + - _")
    token = PREFIX + secrets.token_urlsafe(32)
    store.add_token(name, token_hash(token), user, [check_kb_name(kb) for kb in kbs])
    return token


def principal_for_token(access: Access, store: LibraryStore, token: str) -> Principal | None:
    """The principal a token speaks for, or None (unknown or revoked, its user gone, or no user where logins are on)."""
    record = store.token(token_hash(token)) if token.startswith(PREFIX) else None
    if record is None or (access.logins and not record["user"]):
        return None
    return access.principal(record["user"] if access.logins else None, token=record["name"], only=record["kbs"])
