"""Stage 4, store: SQLite is the one source of truth, and this module is the one door into it.

SQLite holds files, documents (their exact text), chunks with their vectors, the FTS5 keyword
index, the manifest and the failures, all changed in one transaction per batch; each commit bumps
a generation number that the vector index (rag/ann.py) is keyed by. Every SQL statement of the
project is in this package (the schema in index_schema.py). Reads return documented shapes: Hit objects, dicts, tuples of arrays.

Compact on purpose (a million chunks must fit a laptop disk, bench/results/scale.md): a chunk's text
is stored once, as the document text it is a slice of; the keyword index is contentless (FTS5 keeps
only its postings; a removed chunk's text is given back to it from the document to delete it); and
vectors are int8 with one float32 scale per row (`pack`, vectors.py), a quarter of float32.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError, IndexNotFoundError, RagError
from ..model import Hit
from ..pages.words import pack_words, unpack_words
from .vectors import pack, unpack, unpack_rows

from .index_schema import DB_NAME, FORMAT_VERSION, MIGRATIONS, PAGE_SIZE, SCHEMA  # noqa: F401 (re-exported)


def fts_body(chunk_title: str, text: str) -> str:
    """What the keyword index holds for a chunk: Chunk.embed_text, rebuilt from the stored document."""
    return f"{chunk_title}\n{text}" if chunk_title else text


_HIT_COLUMNS = ("c.id, d.doc_id, d.source, d.page, c.start, c.end, substr(d.text, c.start + 1, c.end - c.start), "
                "c.sentences, d.title, d.ocr, c.sentence_vectors")


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
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # takes effect only on a new database
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
        if manifest.get("format_version") in MIGRATIONS:
            self._migrate()
            return self.manifest()
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{self.dir} has index format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}; "
                f"rebuild it: rag index --rebuild --index {self.dir}"
            )
        return manifest

    def _migrate(self) -> None:
        """One step of MIGRATIONS, in one transaction: a crash leaves the old format, to migrate on the next open."""
        try:
            with self.transaction() as tx:
                version = json.loads(tx.execute("SELECT value FROM manifest WHERE key='format_version'").fetchone()[0])
                if version in MIGRATIONS:  # else another process did it meanwhile
                    for statement in MIGRATIONS[version]:
                        tx.execute(statement)
                    self.set_manifest(tx, "format_version", version + 1)
        except sqlite3.OperationalError as e:
            raise RagError(f"{self.dir} has an older index format, updated in place when opened, but it could not "
                           f"be ({e}); make the folder writable, or rebuild it: rag index --rebuild") from None

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

    def snapshot(self) -> "_Transaction":
        """A read transaction: every read inside it sees one commit (no writer's commit half-way)."""
        return _Transaction(self._db, "BEGIN")

    # -- writes (inside a transaction) --------------------------------------------------------

    def set_manifest(self, tx, key: str, value) -> None:
        tx.execute("INSERT OR REPLACE INTO manifest VALUES (?, ?)", (key, json.dumps(value)))

    def remove_file(self, tx, path: str) -> int:
        """Delete a file's documents, chunks and keyword rows; return how many chunks went.

        The keyword index is contentless: each chunk's text is handed back to FTS5 to delete it."""
        rows = tx.execute(
            "SELECT c.id, d.chunk_title, substr(d.text, c.start + 1, c.end - c.start) "
            "FROM chunks c JOIN documents d ON d.id = c.document WHERE d.path = ?", (path,)).fetchall()
        tx.executemany("INSERT INTO chunks_fts (chunks_fts, rowid, body) VALUES ('delete', ?, ?)",
                       [(i, fts_body(title, text)) for i, title, text in rows])
        tx.execute("DELETE FROM files WHERE path = ?", (path,))  # cascades to documents and chunks
        return len(rows)

    def insert_file(self, tx, path: str, source: str, hash_: str, size: int, now: float) -> None:
        tx.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?)", (path, source, hash_, size, now))

    def set_file_hash(self, tx, path: str, hash_: str) -> None:
        tx.execute("UPDATE files SET hash = ? WHERE path = ?", (hash_, path))

    def insert_documents(self, tx, path: str, documents) -> list[int]:
        """`documents` is a list of (Document, [(Chunk, vector, sentence vectors, embed_hash), ...]), vectors
        as float arrays (checked by the caller: rag/ingest.py); return the new chunk ids in order."""
        ids = []
        for doc, chunks in documents:
            chunk_title = chunks[0][0].title if chunks else ""
            doc_row = tx.execute(
                "INSERT INTO documents (path, source, doc_id, page, title, chunk_title, text, ocr, words) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, doc.source, doc.doc_id, doc.page, doc.title, chunk_title, doc.text, int(doc.ocr),
                 pack_words(doc.words) if doc.words else None),
            ).lastrowid
            for chunk, vector, sentence_vectors, embed_hash in chunks:
                spans = np.asarray(chunk.sentences, dtype=np.int32).reshape(-1, 2) - chunk.start
                chunk_id = tx.execute(
                    "INSERT INTO chunks (document, start, end, sentences, embed_hash, vector, sentence_vectors) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (doc_row, chunk.start, chunk.end, spans.tobytes(), embed_hash, pack(vector), pack(sentence_vectors)),
                ).lastrowid
                tx.execute("INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)",
                           (chunk_id, fts_body(chunk_title, chunk.text)))
                ids.append(chunk_id)
        return ids

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
        """{absolute path: {"source", "hash", "size", "indexed_at"}} of every indexed file."""
        rows = self._db.execute("SELECT path, source, hash, size, indexed_at FROM files")
        return {p: {"source": s, "hash": h, "size": n, "indexed_at": t} for p, s, h, n, t in rows}

    def file_counts(self) -> dict[str, tuple[int, int]]:
        """{absolute path: (documents, chunks)} of every indexed file."""
        rows = self._db.execute("SELECT d.path, count(DISTINCT d.id), count(c.id) FROM documents d "
                                "LEFT JOIN chunks c ON c.document = d.id GROUP BY d.path")
        return {p: (d, c) for p, d, c in rows}

    def vectors_for(self, embed_hashes, dim: int) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        """(vector, sentence vectors) of chunks already stored, by embed hash, exactly as stored (float64)."""
        found = {}
        hashes = list(embed_hashes)
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            rows = self._db.execute(
                "SELECT embed_hash, vector, sentence_vectors FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})", part)
            for h, blob, sentence_blob in rows:
                found[h] = (unpack(blob, dim, exact=True)[0], unpack(sentence_blob, dim, exact=True))
        return found

    def embed_hashes(self, path: str) -> set[bytes]:
        """The embed hashes of one file's stored chunks: what a worker may leave for vectors_for."""
        return {r[0] for r in self._db.execute(
            "SELECT c.embed_hash FROM chunks c JOIN documents d ON d.id = c.document WHERE d.path = ?", (path,))}

    def chunk_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, ascending (int64)."""
        return np.fromiter((r[0] for r in self._db.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)

    def vectors_of(self, ids, dim: int) -> np.ndarray:
        """The chunk vectors (float32, (len(ids), dim)) of these ids, in their order; all must exist."""
        ids = [int(i) for i in ids]
        out = np.empty((len(ids), dim), dtype=np.float32)
        where = {i: n for n, i in enumerate(ids)}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self._db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                                    part).fetchall()
            if rows:
                out[[where[r[0]] for r in rows]] = unpack_rows([r[1] for r in rows], dim)
        return out

    def iter_vectors(self, dim: int, batch: int = 50_000):
        """(ids, vectors) of every chunk by id, `batch` rows at a time: a rebuild never holds them all twice."""
        last = -1
        while True:
            rows = self._db.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
                                    (last, batch)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), unpack_rows([r[1] for r in rows], dim)

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the given order; ids no longer stored are left out."""
        ids = [int(i) for i, _ in ranked]
        if not ids:
            return []
        rows = {r[0]: r for r in self._db.execute(
            f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document "
            f"WHERE c.id IN ({','.join('?' * len(ids))})", ids)}
        return [_hit(rows[int(i)], score) for i, score in ranked if int(i) in rows]

    def keyword_search(self, words: list[str], limit: int, max_df: int | None = None) -> list[tuple[int, float]]:
        """BM25 over the chunks for any of `words` (quoted: FTS5 syntax in them is text): (id, score),
        best first, higher is better. With max_df, words found in more chunks than that are left out:
        FTS5 scores every chunk that matches, so one common word costs time in proportion to the
        collection, and adds little to the ranking (its idf is low)."""
        quoted = ['"' + w.replace('"', '""') + '"' for w in words]
        if max_df is not None:
            quoted = [q for q in quoted if self._db.execute(
                "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                (q, max_df + 1)).fetchone()[0] <= max_df]
        if not quoted:
            return []
        rows = self._db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (" OR ".join(quoted), limit)).fetchall()
        return [(r[0], -r[1]) for r in rows]

    def document_text(self, source: str, doc_id: str, page) -> str | None:
        """The stored text a citation's offsets point into."""
        found = self.page_of(source, doc_id, page)
        return found and found["text"]

    def pages_of(self, chunk_ids) -> dict[int, dict]:
        """{chunk id: {"path", "hash", "text", "ocr", "words": PageWords or None}} of these chunks' documents."""
        ids = sorted({int(i) for i in chunk_ids})
        rows = self._db.execute(_PAGE.format(key="c.id") + " JOIN chunks c ON c.document = d.id "
                                f"WHERE c.id IN ({','.join('?' * len(ids))})", ids)
        return {r[0]: _page(r) for r in rows}

    def page_of(self, source: str, doc_id: str, page) -> dict | None:
        """The same of one document (a citation's source, doc_id and page), or None: the page view's."""
        row = self._db.execute(_PAGE.format(key="d.id") + " WHERE d.source = ? AND d.doc_id = ? AND d.page IS ?",
                               (source, doc_id, page)).fetchone()
        return _page(row) if row else None

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
    """BEGIN IMMEDIATE (or BEGIN, to read) ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""

    def __init__(self, db, begin: str = "BEGIN IMMEDIATE"):
        self.db, self.begin = db, begin

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute(self.begin)
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


_PAGE = "SELECT {key}, d.path, f.hash, d.text, d.ocr, d.words FROM documents d JOIN files f ON f.path = d.path"


def _page(r) -> dict:
    return {"path": r[1], "hash": r[2], "text": r[3], "ocr": bool(r[4]), "words": unpack_words(r[5]) if r[5] else None}


def _hit(row, score: float) -> Hit:
    chunk_id, doc_id, source, page, start, end, text, sentences, title, ocr, sentence_vectors = row
    spans = [(int(a) + start, int(b) + start) for a, b in np.frombuffer(sentences, dtype=np.int32).reshape(-1, 2)]
    dim = len(sentence_vectors) // max(len(spans), 1) - 4
    vectors = unpack(sentence_vectors, dim) if spans else np.zeros((0, 0), dtype=np.float32)
    return Hit(chunk_id=chunk_id, doc_id=doc_id, source=source, page=page, start=start, end=end, text=text,
               score=float(score), sentences=spans, title=title, ocr=bool(ocr), sentence_vectors=vectors)
