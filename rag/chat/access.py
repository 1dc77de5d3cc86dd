"""Who may ask and who may add: the chat's logins, roles and the refusal to go public without them.

Without a users file the chat has no login and listens on loopback only: whoever can run programs on
this machine can read the corpus anyway. Anything wider (another address, --share) needs a users
file (`--auth-file`, RAG_AUTH_FILE), or --no-auth from someone who means it. With a users file every
page, API call and file link needs a login (gradio's `auth=`: the login page is gradio's); users
with the `ask` role only ask, `upload` users may also add documents and re-index; --read-only
(RAG_READ_ONLY) takes adding away from everyone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from dataclasses import dataclass

from ..errors import AccessError
from ..users import UserFile
from .uploads import inside

LOGIN_MESSAGE = "Log in with the name and password you were given: whoever runs this chat adds users with <code>rag user add</code>."


def is_loopback(host: str) -> bool:
    if (host or "").strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(kw_only=True)
class Access:
    users: UserFile | None = None  # None: no login at all
    read_only: bool = False

    @classmethod
    def from_settings(cls, settings) -> "Access":
        """Reads and checks the users file now, so a bad one stops the start with its line number."""
        if settings.auth_file and inside(settings.auth_file, settings.corpus_dir):
            raise AccessError(
                f"the users file {settings.auth_file} is inside the corpus folder {settings.corpus_dir}: it would be "
                "indexed, served to every reader and replaced by an upload of the same name; move it out of the "
                "corpus and point --auth-file (RAG_AUTH_FILE) at its new place")
        return cls(users=UserFile(settings.auth_file) if settings.auth_file else None, read_only=settings.read_only)

    def may_add(self, user: str | None) -> bool:
        """May this user (gradio's request.username; None without a login) add documents and re-index?"""
        if self.read_only:
            return False
        if self.users is None:
            return True
        try:
            return self.users.can_upload(user)
        except AccessError as e:  # the file broke while running: nobody may add until it is fixed
            print(f"error: {e}", file=sys.stderr, flush=True)
            return False

    def require_add(self, user: str | None) -> None:
        if self.read_only:
            raise AccessError("this chat is read-only: documents are added by whoever runs it (rag index)")
        if not self.may_add(user):
            raise AccessError(f"{user or 'this user'} may ask questions but not add documents or re-index; "
                              "whoever runs the chat can allow it with `rag user add NAME --can-upload`")

    async def login(self, username: str, password: str) -> bool:
        """gradio's auth callable. scrypt runs in a thread: the server keeps serving meanwhile."""
        try:
            return await asyncio.to_thread(self.users.check, username, password)
        except AccessError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return False


def check_exposure(*, host: str, share: bool, access: Access, no_auth: bool) -> None:
    """Refuse to publish the chat without logins: beyond loopback, or a share link, needs users."""
    if no_auth and access.users is not None:
        raise AccessError("--no-auth and a users file (--auth-file, RAG_AUTH_FILE) contradict each other: drop one")
    if access.users is not None or no_auth or (is_loopback(host) and not share):
        return
    where = "a public --share link" if share else f"{host}, beyond this machine,"
    raise AccessError(
        f"the chat would be open on {where} with no login: add users with `rag user add NAME "
        "--auth-file users.txt [--can-upload]` and start with --auth-file users.txt (or RAG_AUTH_FILE), "
        "or pass --no-auth if everyone who can reach it may read and add documents"
    )


def no_auth_warning(host: str, share: bool) -> str:
    where = "a public share link" if share else host
    return (f"warning: --no-auth: anyone who can reach {where} can read every indexed document and add files; "
            "use --auth-file to require logins")
