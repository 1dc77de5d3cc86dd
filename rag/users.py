"""The users file: who may log in, and what each may do in which knowledge base.

One user a line, `NAME:PASSWORD-HASH:ROLES`; lines starting with # are comments.

  PASSWORD-HASH  scrypt$N$r$p$SALT$HASH: hashlib.scrypt with its cost parameters, a random 16-byte
                 salt and the 32-byte result, both base64. Passwords are never stored.
  ROLES          comma-separated grants. `ask` (questions only) or `upload` (may also add documents
                 and re-index) alone applies to every knowledge base, as in files written before KBs
                 existed; `hr=ask`, `eng=upload` apply to one KB; `hr=none` takes one KB away from a
                 user whose plain role covers all. Empty: the user may log in and read nothing.

`rag user add|remove|grant|revoke|list` edits it: written whole to a temporary file (mode 0600) and
renamed into place, so a running server never reads half a file. It re-reads it when it changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .config import check_kb_name
from .errors import AccessError, RagError

ROLES = ("ask", "upload")
EVERY_KB = "*"  # the key of a plain role: every knowledge base
NONE = "none"  # a KB's entry that takes it away from a plain role
MIN_PASSWORD = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB and ~0.1 s a check: the usual interactive-login cost
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16  # what a hash in the file may ask for: bounds memory and time
_FIX = "fix or delete that line (then `rag user add` that user again)"
_NAME = re.compile(r"[\w.@+-]{1,64}")
HEADER = (
    "# rag users: NAME:PASSWORD-HASH:ROLES, one a line. Edit with `rag user add|remove|grant|revoke|list`.\n"
    "# PASSWORD-HASH is scrypt$N$r$p$SALT$HASH (base64); ROLES is ask (questions only) or upload (may also\n"
    "# add documents and re-index) in every knowledge base, and/or KB=ask|upload|none for one, comma-separated.\n"
)


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    password_hash: str = field(repr=False)
    grants: dict = field(default_factory=lambda: {EVERY_KB: "ask"})  # KB (or EVERY_KB) -> ask | upload | none

    def role(self, kb: str) -> str | None:
        return role_in(self.grants, kb)

    @property
    def roles(self) -> str:
        """The ROLES field: the plain role first, then the KBs by name."""
        plain = [self.grants[EVERY_KB]] if EVERY_KB in self.grants else []
        return ",".join(plain + [f"{kb}={r}" for kb, r in sorted(self.grants.items()) if kb != EVERY_KB])


def role_in(grants: dict, kb: str) -> str | None:
    """"ask", "upload" or None (may not read) in this knowledge base: its own entry, else the plain role."""
    role = grants.get(kb, grants.get(EVERY_KB))
    return None if role == NONE else role


def parse_roles(text: str) -> dict:
    """The ROLES field as {KB or EVERY_KB: role}; ValueError says what is wrong."""
    grants = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        kb, _, role = item.rpartition("=")
        if not kb:
            if role not in ROLES:
                raise ValueError(f"{item!r} is no role: ask or upload, or KB=ask|upload|none")
            kb = EVERY_KB
        else:
            check_kb_name(kb)
            if role not in ROLES + (NONE,):
                raise ValueError(f"{item!r}: a KB's role is ask, upload or none")
        grants[kb] = role
    return grants


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise AccessError(f"user name {name!r} is not usable: 1-64 letters, digits or . @ + - _")
    return name


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, r, p, 32)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time comparison of scrypt(password) with the stored hash."""
    n, r, p, salt, digest = _parse_hash(encoded)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(digest)), digest)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024  # what OpenSSL needs for these parameters, and a margin
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    try:
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = (base64.b64decode(x, validate=True) for x in parts[4:6])
    except (ValueError, binascii.Error):
        raise AccessError("the password hash is not scrypt$N$r$p$SALT$HASH") from None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P and salt and len(digest) >= 16):
        raise AccessError("the password hash has unusable scrypt parameters")
    return n, r, p, salt, digest


def read_users(path: Path) -> dict[str, User]:
    """Every user in the file, by name. A missing or malformed file says which line and what to do."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccessError(f"users file {path} does not exist: create it with `rag user add NAME --auth-file {path}`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AccessError(f"cannot read users file {path}: {e}") from None
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        where = f"{path} line {number}"
        if len(parts) != 3:
            raise AccessError(f"{where}: expected NAME:PASSWORD-HASH:ROLES (ROLES: ask, upload, or KB=ask|upload|none, "
                              f"comma-separated); {_FIX}")
        name, password_hash, roles = parts
        try:
            check_name(name)
            _parse_hash(password_hash)
            grants = parse_roles(roles)
        except (AccessError, RagError, ValueError) as e:
            raise AccessError(f"{where}: {e}; {_FIX}") from None
        users[name] = User(name=name, password_hash=password_hash, grants=grants)
    return users


def write_users(path: Path, users: list[User]) -> None:
    """The whole file, atomically: a temporary file beside it (mode 0600), flushed, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = HEADER + "".join(f"{u.name}:{u.password_hash}:{u.roles}\n" for u in users)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sys.platform != "win32":
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


def add_user(path: Path, name: str, password: str, *, can_upload: bool = False, kbs: dict | None = None) -> bool:
    """Add a user, or replace the password and roles of one that exists (then True). Without `kbs` ({KB: role})
    the user may ask (with can_upload: and add) in every KB; with it, in those KBs only (can_upload adds
    upload everywhere)."""
    check_name(name)
    grants = {**({EVERY_KB: "upload"} if can_upload else {}), **kbs} if kbs else {EVERY_KB: "upload" if can_upload else "ask"}
    user = User(name=name, password_hash=hash_password(password), grants=grants)
    users = read_users(path) if Path(path).exists() else {}
    existed = name in users
    users[name] = user
    write_users(path, list(users.values()))
    return existed


def _change(path: Path, name: str, change) -> User:
    users = read_users(path)
    if name not in users:
        raise AccessError(f"no user {name!r} in {path}; `rag user list --auth-file {path}` shows who is there")
    grants = dict(users[name].grants)
    change(grants)
    users[name] = User(name=name, password_hash=users[name].password_hash, grants=grants)
    write_users(path, list(users.values()))
    return users[name]


def grant(path: Path, name: str, kbs: list[str], role: str) -> User:
    """Give a user `role` (ask or upload) in these KBs; the user keeps their other grants."""
    if role not in ROLES:
        raise AccessError(f"the role is ask or upload, not {role!r}")
    return _change(path, name, lambda grants: grants.update({check_kb_name(kb): role for kb in kbs}))


def revoke(path: Path, name: str, kbs: list[str]) -> User:
    """Take these KBs away from a user (from a plain role too: the KB is then marked none)."""
    def take(grants):
        for kb in map(check_kb_name, kbs):
            if EVERY_KB in grants:
                grants[kb] = NONE
            else:
                grants.pop(kb, None)
    return _change(path, name, take)


def forget_kb(path: Path, kb: str) -> list[str]:
    """Drop a removed KB from every user's grants (a KB made later under its name starts with no readers);
    return the users that had one."""
    users = read_users(path)
    touched = [u.name for u in users.values() if kb in u.grants]
    if touched:
        write_users(path, [User(name=u.name, password_hash=u.password_hash,
                                grants={k: r for k, r in u.grants.items() if k != kb}) for u in users.values()])
    return touched


def remove_user(path: Path, name: str) -> None:
    users = read_users(path)
    if users.pop(name, None) is None:
        raise AccessError(f"no user {name!r} in {path}; `rag user list --auth-file {path}` shows who is there")
    write_users(path, list(users.values()))


class UserFile:
    """The users file as a running chat sees it: checked at start, re-read whenever it changes, so
    `rag user add/remove` applies to the next login without a restart."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = None
        self._users: dict[str, User] = {}
        self._dummy = hash_password(secrets.token_urlsafe(16))  # an unknown name costs as much as a known one
        if not self.users():
            raise AccessError(f"users file {self.path} has no users: add one with `rag user add NAME --auth-file {self.path}`")

    def users(self) -> dict[str, User]:
        """The current users; an unreadable or broken file raises AccessError (no one gets in)."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp is None or stamp != self._stamp:
                self._users = read_users(self.path)
                self._stamp = stamp
            return self._users

    def check(self, name: str, password: str) -> bool:
        user = self.users().get(name)
        ok = verify_password(password, user.password_hash if user else self._dummy)
        return ok and user is not None

    def get(self, name: str | None) -> User | None:
        return self.users().get(name or "")
