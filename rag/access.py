"""Who may do what, decided in one place: every route of the chat and the API asks here.

Without a users file there are no logins: the server listens on loopback only (whoever can run programs on this
machine can read the corpora anyway) and everyone may read and add to every knowledge base. Anything wider
(another address) needs a users file (`--auth-file`, RAG_AUTH_FILE), or --no-auth from someone who
means it. With a users file, each request is made by a `Principal`, resolved anew from the file (so `rag user
grant/revoke/remove` applies at the next request): its grants say, per knowledge base, `ask` (read and ask),
`upload` (also add documents and re-index) or nothing. An API token carries its user's rights or fewer.

A knowledge base the principal may not read does not exist for them: `require_read` raises the same
KnowledgeBaseNotFoundError as for a name nobody registered, and lists and counts leave it out. --read-only
(RAG_READ_ONLY) takes adding away from everyone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from dataclasses import dataclass, field

from .errors import AccessError, KnowledgeBaseNotFoundError
from .users import EVERY_KB, UserFile, role_in



@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is asking: a login (None on a server without logins) and its grants, maybe narrowed by an API token."""

    name: str | None
    grants: dict = field(default_factory=dict)  # KB or EVERY_KB -> ask | upload | none (rag/users.py)
    token: str | None = None  # the name of the API token the request came with
    only: tuple[str, ...] = ()  # a token's KBs: nothing else, whatever its user may (empty: no limit)

    def role(self, kb: str) -> str | None:
        """"ask", "upload" or None in this knowledge base."""
        return None if self.only and kb not in self.only else role_in(self.grants, kb)


OPEN = Principal(name=None, grants={EVERY_KB: "upload"})  # a server without logins: everyone may do everything


def is_loopback(host: str) -> bool:
    if (host or "").strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(kw_only=True)
class Access:
    users: UserFile | None = None  # None: no logins at all
    read_only: bool = False

    @classmethod
    def from_settings(cls, settings) -> "Access":
        """Reads and checks the users file now, so a bad one stops the start with its line number."""
        return cls(users=UserFile(settings.auth_file) if settings.auth_file else None, read_only=settings.read_only)

    @property
    def logins(self) -> bool:
        return self.users is not None

    def principal(self, name: str | None, *, token: str | None = None, only=()) -> Principal | None:
        """The principal of a login name as the users file says now; None when logins are on and the name is not
        (or no longer) a user, or the file broke (nobody gets in until it is fixed)."""
        if self.users is None:
            return Principal(name=None, grants=OPEN.grants, token=token, only=tuple(only))
        try:
            user = self.users.get(name)
        except AccessError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return None
        return None if user is None else Principal(name=user.name, grants=user.grants, token=token, only=tuple(only))

    # -- the decisions -----------------------------------------------------------------------------

    def may_read(self, who: Principal | None, kb: str) -> bool:
        return who is not None and who.role(kb) is not None

    def may_add(self, who: Principal | None, kb: str) -> bool:
        return not self.read_only and who is not None and who.role(kb) == "upload"

    def readable(self, who: Principal | None, names) -> list[str]:
        """The KBs of `names` this principal may read, in their order."""
        return [n for n in names if self.may_read(who, n)]

    def addable(self, who: Principal | None, names) -> list[str]:
        return [n for n in names if self.may_add(who, n)]

    def require_read(self, who: Principal | None, kb: str) -> None:
        """Raise KnowledgeBaseNotFoundError unless `who` may read `kb`: the same error as for no such KB."""
        if not self.may_read(who, kb):
            raise KnowledgeBaseNotFoundError(kb)

    def require_add(self, who: Principal | None, kb: str) -> None:
        """May `who` add documents to `kb` and re-index it? Not readable: not found; readable: AccessError."""
        self.require_read(who, kb)
        if self.read_only:
            raise AccessError("this server is read-only: documents are added by whoever runs it (rag index)")
        if not self.may_add(who, kb):
            raise AccessError(f"{who.name or 'this user'} may ask questions in {kb!r} but not add documents or "
                              f"re-index; whoever runs the server can allow it with `rag user grant {who.name or 'NAME'} "
                              f"--kb {kb} --role upload`")

    async def login(self, username: str, password: str) -> bool:
        """Check a password; scrypt runs in a thread, so the server keeps serving meanwhile."""
        try:
            return await asyncio.to_thread(self.users.check, username, password)
        except AccessError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return False


def check_exposure(*, host: str, access: Access, no_auth: bool) -> None:
    """Refuse to publish the server without logins: beyond loopback needs users."""
    if no_auth and access.users is not None:
        raise AccessError("--no-auth and a users file (--auth-file, RAG_AUTH_FILE) contradict each other: drop one")
    if access.users is not None or no_auth or is_loopback(host):
        return
    raise AccessError(
        f"the server would be open on {host}, beyond this machine, with no login: add users with `rag user add NAME "
        "--auth-file users.txt [--can-upload]` and start with --auth-file users.txt (or RAG_AUTH_FILE), "
        "or pass --no-auth if everyone who can reach it may read and add documents"
    )


def no_auth_warning(host: str) -> str:
    return (f"warning: --no-auth: anyone who can reach {host} can read every indexed document and add files; "
            "use --auth-file to require logins")
