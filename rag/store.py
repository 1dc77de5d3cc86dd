"""Stage 4, store: SQLite is the one source of truth; the FAISS file is a cache rebuilt from it.

SQLite holds files, documents (their exact text), chunks with their vectors, the FTS5 keyword
index and the manifest, all changed in one transaction per batch. Each commit bumps a
generation number; the FAISS index is written as `faiss-<generation>.index` (temp file, then
rename) after the commit. A crash between the two leaves a stale or missing FAISS file, which
the next open notices and rebuilds from the vectors in SQLite, so the two can never disagree.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, RagError

FORMAT_VERSION = 2  # 2: sentence vectors beside each chunk's vector
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
    text TEXT NOT NULL            -- offsets of chunks and citations index into this
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

HIT_COLUMNS = """c.id, d.doc_id, d.source, d.page, c.start, c.end, c.text, c.sentences, d.title, c.sentence_vectors"""


class Store:
    """SQLite connections per thread (WAL: readers see the last commit while a writer works)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.db_path = self.dir / DB_NAME
        self._local = threading.local()

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def exists(self) -> bool:
        return self.db_path.exists()

    def create(self, manifest: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if not db.execute("SELECT 1 FROM manifest").fetchone():
                manifest = {**manifest, "format_version": FORMAT_VERSION, "generation": 0}
                db.executemany("INSERT INTO manifest VALUES (?, ?)", [(k, json.dumps(v)) for k, v in manifest.items()])

    def manifest(self) -> dict:
        try:
            rows = self.db.execute("SELECT key, value FROM manifest").fetchall()
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
        """Delete the database and FAISS files (an index is derived data: the corpus rebuilds it)."""
        self.close()
        for path in [self.db_path, *(self.db_path.with_name(self.db_path.name + s) for s in ("-wal", "-shm")),
                     *self.dir.glob("faiss-*.index")]:
            path.unlink(missing_ok=True)

    def generation(self) -> int:
        return json.loads(self.db.execute("SELECT value FROM manifest WHERE key='generation'").fetchone()[0])

    def transaction(self):
        return _Transaction(self.db)

    # -- writes (inside a transaction) --------------------------------------------------------

    def remove_file(self, db, path: str) -> int:
        """Delete a file's documents, chunks and keyword rows; return how many chunks went."""
        ids = [r[0] for r in db.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE d.path = ?", (path,))]
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        db.execute("DELETE FROM files WHERE path = ?", (path,))  # cascades to documents and chunks
        return len(ids)

    def insert_file(self, db, path, source, hash_, size, now) -> None:
        db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?)", (path, source, hash_, size, now))

    def set_file_hash(self, db, path, hash_) -> None:
        db.execute("UPDATE files SET hash = ? WHERE path = ?", (hash_, path))

    def insert_documents(self, db, path, documents) -> None:
        """`documents` is a list of (Document, [(Chunk, (vector, sentence vectors), embed_hash), ...])."""
        for doc, chunks in documents:
            doc_row = db.execute(
                "INSERT INTO documents (path, source, doc_id, page, title, text) VALUES (?, ?, ?, ?, ?, ?)",
                (path, doc.source, doc.doc_id, doc.page, doc.title, doc.text),
            ).lastrowid
            for chunk, (vector, sentence_vectors), embed_hash in chunks:
                chunk_id = db.execute(
                    "INSERT INTO chunks (document, start, end, text, sentences, embed_hash, vector, sentence_vectors) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_row, chunk.start, chunk.end, chunk.text, json.dumps(chunk.sentences), embed_hash,
                     np.asarray(vector, dtype=np.float32).tobytes(),
                     np.asarray(sentence_vectors, dtype=np.float16).tobytes()),
                ).lastrowid
                db.execute("INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)", (chunk_id, chunk.embed_text))

    def bump_generation(self, db) -> int:
        generation = json.loads(db.execute("SELECT value FROM manifest WHERE key='generation'").fetchone()[0]) + 1
        db.execute("UPDATE manifest SET value = ? WHERE key = 'generation'", (json.dumps(generation),))
        return generation

    def set_failures(self, db, paths_seen, failures, now) -> None:
        db.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths_seen])
        db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", [(p, r, now) for p, r in failures])

    # -- reads ----------------------------------------------------------------------------------

    def file_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, hash FROM files"))

    def vectors_for(self, embed_hashes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(vector, sentence vectors) of chunks already stored, by embed hash."""
        found = {}
        hashes = list(embed_hashes)
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            rows = self.db.execute(
                "SELECT embed_hash, vector, sentence_vectors FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})", part)
            for h, blob, sentence_blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                found[h] = (vector, np.frombuffer(sentence_blob, dtype=np.float16).reshape(-1, len(vector)))
        return found

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def hits(self, ids) -> dict[int, tuple]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.execute(
            f"SELECT {HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document "
            f"WHERE c.id IN ({','.join('?' * len(ids))})", ids).fetchall()
        return {r[0]: r for r in rows}

    def keyword_search(self, match: str, limit: int) -> list[tuple[int, float]]:
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit)).fetchall()
        return [(r[0], -r[1]) for r in rows]

    def document_text(self, source: str, doc_id: str, page) -> str | None:
        row = self.db.execute(
            "SELECT text FROM documents WHERE source = ? AND doc_id = ? AND page IS ?", (source, doc_id, page)
        ).fetchone()
        return row[0] if row else None

    def counts(self) -> dict:
        db = self.db
        return {
            "files": db.execute("SELECT count(*) FROM files").fetchone()[0],
            "documents": db.execute("SELECT count(*) FROM (SELECT DISTINCT source, doc_id FROM documents)").fetchone()[0],
            "pages": db.execute("SELECT count(*) FROM documents WHERE page IS NOT NULL").fetchone()[0],
            "chunks": db.execute("SELECT count(*) FROM chunks").fetchone()[0],
        }

    def failures(self) -> list[dict]:
        return [{"path": p, "reason": r} for p, r in self.db.execute("SELECT path, reason FROM failures ORDER BY path")]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


# -- the FAISS cache ----------------------------------------------------------------------------

def faiss_path(directory: Path, generation: int) -> Path:
    return Path(directory) / f"faiss-{generation}.index"


def build_faiss(ids: np.ndarray, vectors: np.ndarray, dim: int, hnsw_threshold: int):
    """Exact inner-product search for small corpora; HNSW past the threshold, where exact gets slow."""
    import faiss

    if len(ids) >= hnsw_threshold:
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def save_faiss(index, directory: Path, generation: int) -> None:
    """Temp file, fsync, rename: a reader never sees half a file."""
    import faiss

    final = faiss_path(directory, generation)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    for old in Path(directory).glob("faiss-*.index"):
        if old != final:
            old.unlink(missing_ok=True)


def load_faiss(directory: Path, generation: int):
    import faiss

    path = faiss_path(directory, generation)
    if not path.exists():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None
