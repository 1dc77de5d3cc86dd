"""The installation's own records, beside the indexes: `library.sqlite` in the default index folder.

It holds what is not derived from documents and cannot be rebuilt from a corpus: the registered knowledge bases
(the default one is implicit: the configured corpus and index folders), login sessions, API tokens (only their
hashes), and, added by the modules that own them, conversations and feedback. Every statement is here; callers get
plain dicts and tuples.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import RagError, explain

DB_NAME = "library.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kbs (
    name TEXT PRIMARY KEY,
    corpus TEXT NOT NULL,        -- its corpus folder: absolute, or relative to the library folder
    index_dir TEXT NOT NULL,     -- its index folder, the same way
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, -- sha256 of the cookie: a stolen database opens no session
    user TEXT NOT NULL,
    password TEXT NOT NULL,      -- fingerprint of the password hash at login: a new password ends the session
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,  -- sha256 of the token, which is shown once and never stored
    user TEXT,                   -- whose rights it carries, NULL on a server without logins
    kbs TEXT NOT NULL,           -- JSON list of the KBs it is limited to, [] for whatever its user may read
    created REAL NOT NULL,
    used REAL                    -- last use
);
"""


class LibraryStore:
    """One library.sqlite. Connections are per thread (WAL: readers never wait for the one writer)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.path = self.dir / DB_NAME
        self._local = threading.local()
        self._ready = False

    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except (OSError, sqlite3.Error) as e:  # unwritable, full or damaged: one line saying what to do
                raise RagError(f"cannot open {self.path}: {explain(e, self.dir)}") from None
            self._local.conn = conn
            if not self._ready:
                self._create(conn)
        return conn

    def _create(self, conn) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (json.dumps(SCHEMA_VERSION),))
            elif json.loads(row[0]) > SCHEMA_VERSION:
                raise RagError(f"{self.path} was written by a newer version of rag (schema {row[0]}); upgrade rag")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise RagError(f"{self.path} is not a usable library database ({e}); move it aside and start again") from None
        self._ready = True

    def _write(self, sql: str, params=()) -> int:
        try:
            return self._db.execute(sql, params).rowcount
        except sqlite3.IntegrityError as e:
            raise RagError(f"{self.path}: {e}") from None

    # -- knowledge bases --------------------------------------------------------------------------

    def kbs(self) -> dict[str, dict]:
        """{name: {"corpus", "index_dir", "created"}} of every registered KB (the paths as stored)."""
        rows = self._db.execute("SELECT name, corpus, index_dir, created FROM kbs ORDER BY name")
        return {n: {"corpus": c, "index_dir": i, "created": t} for n, c, i, t in rows}

    def add_kb(self, name: str, corpus: str, index_dir: str) -> None:
        self._write("INSERT INTO kbs VALUES (?, ?, ?, ?)", (name, corpus, index_dir, time.time()))

    def remove_kb(self, name: str) -> bool:
        return self._write("DELETE FROM kbs WHERE name = ?", (name,)) > 0

    # -- login sessions ----------------------------------------------------------------------------

    def add_session(self, token_hash: str, user: str, password: str) -> None:
        now = time.time()
        self._write("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (token_hash, user, password, now, now))

    def session(self, token_hash: str) -> dict | None:
        """{"user", "password", "created", "seen"} of a session, or None."""
        row = self._db.execute("SELECT user, password, created, seen FROM sessions WHERE token_hash = ?",
                               (token_hash,)).fetchone()
        return dict(zip(("user", "password", "created", "seen"), row)) if row else None

    def touch_session(self, token_hash: str) -> None:
        self._write("UPDATE sessions SET seen = ? WHERE token_hash = ?", (time.time(), token_hash))

    def remove_sessions(self, *, token_hash: str | None = None, user: str | None = None,
                        idle_before: float | None = None) -> int:
        """End one session, every session of a user, or those not seen since a time; how many ended."""
        if token_hash is not None:
            return self._write("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        if user is not None:
            return self._write("DELETE FROM sessions WHERE user = ?", (user,))
        return self._write("DELETE FROM sessions WHERE seen < ?", (idle_before,))

    # -- API tokens --------------------------------------------------------------------------------

    def add_token(self, name: str, token_hash: str, user: str | None, kbs: list[str]) -> None:
        if self._db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
            raise RagError(f"a token named {name!r} exists already: revoke it first (rag token revoke {name}) "
                           "or choose another name")
        self._write("INSERT INTO tokens (name, token_hash, user, kbs, created) VALUES (?, ?, ?, ?, ?)",
                    (name, token_hash, user, json.dumps(kbs), time.time()))

    def tokens(self) -> list[dict]:
        """{"name", "user", "kbs", "created", "used"} of every token, by name (never a hash)."""
        rows = self._db.execute("SELECT name, user, kbs, created, used FROM tokens ORDER BY name")
        return [{"name": n, "user": u, "kbs": json.loads(k), "created": c, "used": used} for n, u, k, c, used in rows]

    def token(self, token_hash: str) -> dict | None:
        """{"name", "user", "kbs"} of the token with this hash, or None; its last use is recorded."""
        row = self._db.execute("SELECT name, user, kbs, used FROM tokens WHERE token_hash = ?",
                               (token_hash,)).fetchone()
        if row is None:
            return None
        now = time.time()
        if row[3] is None or now - row[3] > 60:  # a write a minute at most, not one per request
            self._write("UPDATE tokens SET used = ? WHERE token_hash = ?", (now, token_hash))
        return {"name": row[0], "user": row[1], "kbs": json.loads(row[2])}

    def remove_token(self, name: str) -> bool:
        return self._write("DELETE FROM tokens WHERE name = ?", (name,)) > 0

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
