"""Stage 4, store: SQLite is the one source of truth, and this module is the one door into it.

SQLite holds files, documents (their exact text), chunks with their vectors, the FTS5 keyword
index, the manifest and the failures, all changed in one transaction per batch; each commit bumps
a generation number that the vector index (rag/ann.py) is keyed by. Every SQL statement of the
project is in this file. Reads return documented shapes: Hit objects, dicts, tuples of arrays.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, IndexNotFoundError, RagError
from .model import Hit

FORMAT_VERSION = 3  # 2: sentence vectors beside each chunk's vector; 3: documents.ocr
DB_NAME = "rag.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,        -- absolute path
    source TEXT NOT NULL,         -- path relative to the folder that was indexed
    hash TEXT NOT NULL,           -- sha256 of the bytes: unchanged content is never re-read
    size INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
    source TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    page INTEGER,
    title TEXT NOT NULL,
    text TEXT NOT NULL,           -- offsets of chunks and citations index into this
    ocr INTEGER NOT NULL DEFAULT 0  -- 1: the text was read from the page image by OCR
);
CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,       -- the FAISS id
    document INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    sentences TEXT NOT NULL,      -- JSON [[start, end], ...], absolute offsets
    embed_hash TEXT NOT NULL,     -- lets an unchanged chunk of a changed file keep its vector
    vector BLOB NOT NULL,         -- float32, normalized
    sentence_vectors BLOB NOT NULL  -- float16, one normalized row per entry of sentences
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(body, tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS failures (path TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL);
"""


_HIT_COLUMNS = ("c.id, d.doc_id, d.source, d.page, c.start, c.end, c.text, c.sentences, d.title, d.ocr, "
                "c.sentence_vectors")


class Store:
    """One index folder's database. Connections are per thread; WAL lets readers see the last commit
    while one writer works. Writes happen inside `with store.transaction() as tx:` and take `tx`."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.db_path = self.dir / DB_NAME
        self._local = threading.local()

    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def exists(self) -> bool:
        """Is there a committed index here? A database file whose schema never committed (a first
        build killed in its first instant) is no index yet: create() finishes it."""
        if not self.db_path.exists():
            return False
        try:
            return self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'manifest'").fetchone() is not None \
                and self._db.execute("SELECT 1 FROM manifest WHERE key = 'generation'").fetchone() is not None
        except sqlite3.DatabaseError as e:
            raise RagError(f"{self.db_path} is not a readable index ({e}); delete the folder and run rag index") from None

    def create(self, manifest: dict) -> None:
        """The schema and manifest, in one transaction; a no-op on an index that has them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.transaction() as tx:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)
            if not tx.execute("SELECT 1 FROM manifest WHERE key = 'generation'").fetchone():
                manifest = {**manifest, "format_version": FORMAT_VERSION, "generation": 0}
                tx.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in manifest.items()])

    def manifest(self) -> dict:
        """{model, dim, chunk_tokens, overlap_tokens, chunker, format_version, generation, ...}."""
        if not self.exists():
            raise IndexNotFoundError(f"no index yet in {self.dir}; build one with: rag index --index {self.dir}")
        try:
            rows = self._db.execute("SELECT key, value FROM manifest").fetchall()
        except sqlite3.DatabaseError as e:
            raise RagError(f"{self.db_path} is not a readable index ({e}); delete the folder and run rag index") from None
        manifest = {k: json.loads(v) for k, v in rows}
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{self.dir} has index format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}; "
                f"rebuild it: rag index --rebuild --index {self.dir}"
            )
        return manifest

    def discard(self) -> None:
        """Delete the database (an index is derived data: the corpus rebuilds it)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            self.db_path.with_name(self.db_path.name + suffix).unlink(missing_ok=True)

    def generation(self) -> int:
        """The number of the last commit: it names the vector index file that matches it."""
        return json.loads(self._db.execute("SELECT value FROM manifest WHERE key='generation'").fetchone()[0])

    def transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    # -- writes (inside a transaction) --------------------------------------------------------

    def set_manifest(self, tx, key: str, value) -> None:
        tx.execute("INSERT OR REPLACE INTO manifest VALUES (?, ?)", (key, json.dumps(value)))

    def remove_file(self, tx, path: str) -> int:
        """Delete a file's documents, chunks and keyword rows; return how many chunks went."""
        ids = [r[0] for r in tx.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE d.path = ?", (path,))]
        tx.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        tx.execute("DELETE FROM files WHERE path = ?", (path,))  # cascades to documents and chunks
        return len(ids)

    def insert_file(self, tx, path: str, source: str, hash_: str, size: int, now: float) -> None:
        tx.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?)", (path, source, hash_, size, now))

    def set_file_hash(self, tx, path: str, hash_: str) -> None:
        tx.execute("UPDATE files SET hash = ? WHERE path = ?", (hash_, path))

    def insert_documents(self, tx, path: str, documents) -> None:
        """`documents` is a list of (Document, [(Chunk, (vector, sentence vectors), embed_hash), ...])."""
        for doc, chunks in documents:
            doc_row = tx.execute(
                "INSERT INTO documents (path, source, doc_id, page, title, text, ocr) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (path, doc.source, doc.doc_id, doc.page, doc.title, doc.text, int(doc.ocr)),
            ).lastrowid
            for chunk, (vector, sentence_vectors), embed_hash in chunks:
                chunk_id = tx.execute(
                    "INSERT INTO chunks (document, start, end, text, sentences, embed_hash, vector, sentence_vectors) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_row, chunk.start, chunk.end, chunk.text, json.dumps(chunk.sentences), embed_hash,
                     np.asarray(vector, dtype=np.float32).tobytes(),
                     np.asarray(sentence_vectors, dtype=np.float16).tobytes()),
                ).lastrowid
                tx.execute("INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)", (chunk_id, chunk.embed_text))

    def bump_generation(self, tx) -> int:
        generation = json.loads(tx.execute("SELECT value FROM manifest WHERE key='generation'").fetchone()[0]) + 1
        self.set_manifest(tx, "generation", generation)
        return generation

    def set_failures(self, tx, paths_seen, failures, now: float) -> None:
        """Forget the old failures of `paths_seen`, record `failures` as (path, reason) pairs."""
        tx.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths_seen])
        tx.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", [(p, r, now) for p, r in failures])

    # -- reads ----------------------------------------------------------------------------------

    def files(self) -> dict[str, dict]:
        """{absolute path: {"source", "hash"}} of every indexed file."""
        return {p: {"source": s, "hash": h} for p, s, h in self._db.execute("SELECT path, source, hash FROM files")}

    def vectors_for(self, embed_hashes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(vector, sentence vectors) of chunks already stored, by embed hash."""
        found = {}
        hashes = list(embed_hashes)
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            rows = self._db.execute(
                "SELECT embed_hash, vector, sentence_vectors FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})", part)
            for h, blob, sentence_blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                found[h] = (vector, np.frombuffer(sentence_blob, dtype=np.float16).reshape(-1, len(vector)))
        return found

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n,), vectors float32 (n, dim)) of every chunk, by id."""
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the given order; ids no longer stored are left out."""
        ids = [int(i) for i, _ in ranked]
        if not ids:
            return []
        rows = {r[0]: r for r in self._db.execute(
            f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document "
            f"WHERE c.id IN ({','.join('?' * len(ids))})", ids)}
        return [_hit(rows[int(i)], score) for i, score in ranked if int(i) in rows]

    def keyword_search(self, words: list[str], limit: int) -> list[tuple[int, float]]:
        """BM25 over the chunks for any of `words` (quoted: FTS5 syntax in them is text): (id, score),
        best first, higher is better."""
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self._db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit)).fetchall()
        return [(r[0], -r[1]) for r in rows]

    def document_text(self, source: str, doc_id: str, page) -> str | None:
        """The stored text a citation's offsets point into."""
        row = self._db.execute(
            "SELECT text FROM documents WHERE source = ? AND doc_id = ? AND page IS ?", (source, doc_id, page)
        ).fetchone()
        return row[0] if row else None

    def documents(self, source: str | None = None) -> list[dict]:
        """{"id", "path", "source", "doc_id", "page", "title", "text", "ocr"} of every document (of one source)."""
        sql = "SELECT id, path, source, doc_id, page, title, text, ocr FROM documents"
        rows = self._db.execute(sql + (" WHERE source = ? ORDER BY id" if source else " ORDER BY id"),
                                (source,) if source else ())
        keys = ("id", "path", "source", "doc_id", "page", "title", "text", "ocr")
        return [{**dict(zip(keys, r)), "ocr": bool(r[7])} for r in rows]

    def chunks(self, source: str | None = None) -> list[Hit]:
        """Every stored chunk (of one source) as a Hit with score 0, by id."""
        sql = f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document"
        rows = self._db.execute(sql + (" WHERE d.source = ? ORDER BY c.id" if source else " ORDER BY c.id"),
                                (source,) if source else ())
        return [_hit(r, 0.0) for r in rows]

    def counts(self) -> dict:
        """{"files", "documents", "pages", "chunks"}."""
        db = self._db
        return {
            "files": db.execute("SELECT count(*) FROM files").fetchone()[0],
            "documents": db.execute("SELECT count(*) FROM (SELECT DISTINCT source, doc_id FROM documents)").fetchone()[0],
            "pages": db.execute("SELECT count(*) FROM documents WHERE page IS NOT NULL").fetchone()[0],
            "chunks": db.execute("SELECT count(*) FROM chunks").fetchone()[0],
        }

    def failures(self) -> list[dict]:
        """{"path", "reason"} of the files the last runs could not index."""
        return [{"path": p, "reason": r} for p, r in self._db.execute("SELECT path, reason FROM failures ORDER BY path")]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""

    def __init__(self, db):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _hit(row, score: float) -> Hit:
    chunk_id, doc_id, source, page, start, end, text, sentences, title, ocr, sentence_vectors = row
    spans = [tuple(s) for s in json.loads(sentences)]
    vectors = np.frombuffer(sentence_vectors, dtype=np.float16).astype(np.float32).reshape(len(spans), -1)
    return Hit(chunk_id=chunk_id, doc_id=doc_id, source=source, page=page, start=start, end=end, text=text,
               score=float(score), sentences=spans, title=title, ocr=bool(ocr), sentence_vectors=vectors)
