"""The installation's own records, beside the indexes: `library.sqlite` in the default index folder.

It holds what is not derived from documents and cannot be rebuilt from a corpus: the registered knowledge bases
(the default one is implicit: the configured corpus and index folders), login sessions, API tokens (only their
hashes), conversations with their turns (rag/conversations.py) and feedback on answers. Every statement is here;
callers get plain dicts and tuples.

Schema versions: 1 knowledge bases, sessions, tokens; 2 adds conversations, turns and feedback. An older file is
brought up to date in place when opened (the new tables are made; nothing is rewritten).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import RagError

DB_NAME = "library.sqlite"
SCHEMA_VERSION = 2

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
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,         -- random, URL-safe: what `rag history` names
    owner TEXT NOT NULL,         -- user:NAME with logins, browser:ID without (rag/conversations.py)
    title TEXT NOT NULL,         -- the first question, until renamed
    created REAL NOT NULL,
    updated REAL NOT NULL        -- the last question asked, or renamed
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL,  -- conversations.id, deleted with it
    n INTEGER NOT NULL,          -- 1, 2, ... in the order asked
    question TEXT NOT NULL,      -- as typed (the answer holds it written out: resolved_question)
    kbs TEXT NOT NULL,           -- JSON list of the knowledge bases asked
    answer TEXT NOT NULL,        -- JSON of Answer.to_dict() as it was given, every citation whole
    created REAL NOT NULL,
    PRIMARY KEY (conversation, n)
);
CREATE TABLE IF NOT EXISTS feedback (
    conversation TEXT NOT NULL,  -- the rated turn (the record stays when the conversation is deleted)
    n INTEGER NOT NULL,
    owner TEXT NOT NULL,
    rating INTEGER NOT NULL,     -- 1 thumbs up, -1 thumbs down
    comment TEXT NOT NULL,
    question TEXT NOT NULL,
    resolved TEXT NOT NULL,      -- the question as it was searched
    kbs TEXT NOT NULL,           -- JSON list of the knowledge bases asked
    answer TEXT NOT NULL,        -- JSON of Answer.to_dict(): text, citations, confidence
    confidence REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (conversation, n)
);
"""
CONVERSATION = ("id", "owner", "title", "created", "updated", "turns")
FEEDBACK = ("conversation", "n", "owner", "rating", "comment", "question", "resolved", "kbs", "answer", "confidence",
            "created", "updated")


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
            except (OSError, sqlite3.Error) as e:
                raise RagError(f"cannot open {self.path} ({e}); check that the folder exists and is writable") from None
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
            elif json.loads(row[0]) < SCHEMA_VERSION:  # the tables added since were made above, empty
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (json.dumps(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise RagError(f"{self.path} is not a usable library database ({e}); move it aside and start again") from None
        self._ready = True

    def schema(self) -> int:
        return json.loads(self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])

    @contextmanager
    def _transaction(self):
        """Several statements as one: all or none, and no other writer in between."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

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

    # -- conversations ---------------------------------------------------------------------------

    def add_conversation(self, conversation: str, owner: str, title: str) -> None:
        now = time.time()
        self._write("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (conversation, owner, title, now, now))

    def conversations(self, owner: str | None = None) -> list[dict]:
        """{"id", "owner", "title", "created", "updated", "turns"} of an owner's conversations (None: everyone's),
        the latest first."""
        rows = self._db.execute(
            "SELECT id, owner, title, created, updated, (SELECT count(*) FROM turns WHERE conversation = id) "
            "FROM conversations WHERE ? IS NULL OR owner = ? ORDER BY updated DESC, rowid DESC", (owner, owner))
        return [dict(zip(CONVERSATION, row)) for row in rows]

    def conversation(self, conversation: str) -> dict | None:
        row = self._db.execute(
            "SELECT id, owner, title, created, updated, (SELECT count(*) FROM turns WHERE conversation = id) "
            "FROM conversations WHERE id = ?", (conversation,)).fetchone()
        return dict(zip(CONVERSATION, row)) if row else None

    def rename_conversation(self, conversation: str, title: str) -> bool:
        return self._write("UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                           (title, time.time(), conversation)) > 0

    def remove_conversation(self, conversation: str) -> bool:
        """The conversation and its turns; feedback given on them stays."""
        with self._transaction() as db:
            db.execute("DELETE FROM turns WHERE conversation = ?", (conversation,))
            return db.execute("DELETE FROM conversations WHERE id = ?", (conversation,)).rowcount > 0

    def add_turn(self, conversation: str, question: str, kbs: list[str], answer: dict) -> int:
        """Append a turn; its number."""
        now = time.time()
        with self._transaction() as db:
            n = db.execute("SELECT coalesce(max(n), 0) + 1 FROM turns WHERE conversation = ?",
                           (conversation,)).fetchone()[0]
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)",
                       (conversation, n, question, json.dumps(kbs), json.dumps(answer, ensure_ascii=False), now))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation))
        return n

    def turns(self, conversation: str) -> list[dict]:
        """{"n", "question", "kbs", "answer", "created"} of each turn, in order (answer: the dict as stored)."""
        rows = self._db.execute("SELECT n, question, kbs, answer, created FROM turns WHERE conversation = ? "
                                "ORDER BY n", (conversation,))
        return [{"n": n, "question": q, "kbs": json.loads(k), "answer": json.loads(a), "created": c}
                for n, q, k, a, c in rows]

    # -- feedback ----------------------------------------------------------------------------------

    def set_feedback(self, *, conversation: str, n: int, owner: str, rating: int, question: str, resolved: str,
                     kbs: list[str], answer: dict, confidence: float) -> None:
        """Rate a turn, or rate it anew (a comment already given stays)."""
        now = time.time()
        self._write(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (conversation, n) "
            "DO UPDATE SET rating = excluded.rating, updated = excluded.updated",
            (conversation, n, owner, rating, question, resolved, json.dumps(kbs),
             json.dumps(answer, ensure_ascii=False), confidence, now, now))

    def comment_feedback(self, conversation: str, n: int, comment: str) -> bool:
        return self._write("UPDATE feedback SET comment = ?, updated = ? WHERE conversation = ? AND n = ?",
                           (comment, time.time(), conversation, n)) > 0

    def remove_feedback(self, conversation: str, n: int) -> bool:
        return self._write("DELETE FROM feedback WHERE conversation = ? AND n = ?", (conversation, n)) > 0

    def feedback(self, *, conversation: str | None = None, owner: str | None = None) -> list[dict]:
        """Feedback records (of one conversation, or one owner; None: all), oldest first; kbs and answer decoded."""
        rows = self._db.execute(
            f"SELECT {', '.join(FEEDBACK)} FROM feedback WHERE (? IS NULL OR conversation = ?) "
            "AND (? IS NULL OR owner = ?) ORDER BY created, conversation, n",
            (conversation, conversation, owner, owner))
        out = []
        for row in rows:
            record = dict(zip(FEEDBACK, row))
            record["kbs"], record["answer"] = json.loads(record["kbs"]), json.loads(record["answer"])
            out.append(record)
        return out

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
