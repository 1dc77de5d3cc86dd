"""The Index: load -> chunk -> embed -> store on the way in, retrieve on the way out.

`Index` is the facade every caller uses (CLI, chat, `ask`, benchmarks): `add` and `rebuild` write,
`search` is the one way into retrieval, `status` describes it. `default_index` keeps one open Index
per folder and model for the whole process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from . import ann, retrieve
from .chunk import CHUNKER_VERSION, chunk_document
from .config import Settings
from .embed import vector_kind
from .errors import DocumentError, IndexFormatError, IndexLockedError, IndexMismatchError, IndexNotFoundError, RagError
from .load import LoadOptions, file_hash, find_files, load_file, read_file
from .model import Hit, IngestReport
from .store import Store

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH_CHUNKS = 2048  # chunks embedded and committed together: Ctrl-C loses at most one batch


class _Part(NamedTuple):
    """A file's chunked documents, or a slice of them when the file is bigger than one batch."""

    path: str  # absolute
    source: str
    digest: str
    size: int
    chunked: list  # [(Document, [Chunk, ...]), ...]
    first: bool
    last: bool


def _parts(part: _Part, limit: int):
    """Slice a big file (a JSONL corpus, a long PDF) into parts of about `limit` chunks."""
    start, count = 0, 0
    for i, (_, chunks) in enumerate(part.chunked):
        count += len(chunks)
        if count >= limit and i + 1 < len(part.chunked):
            yield part._replace(chunked=part.chunked[start:i + 1], first=start == 0, last=False)
            start, count = i + 1, 0
    yield part._replace(chunked=part.chunked[start:], first=start == 0, last=True)


class Index:
    """A folder holding one index. Safe to search from many threads while one writer adds."""

    def __init__(self, directory: Path, settings: Settings):
        self.dir = Path(directory)
        self.settings = settings
        self.store = Store(self.dir)
        self._faiss = None
        self._faiss_generation = None
        self._reload_lock = threading.Lock()

    @classmethod
    def open(cls, path=None, settings: Settings | None = None, create: bool = True, upgrade: bool = False) -> "Index":
        """With upgrade=True, an index written by an older version is emptied, for the next add() to rebuild."""
        settings = settings or Settings.from_env()
        index = cls(Path(path) if path is not None else settings.index_dir, settings)
        if not index.store.exists():
            if not create:
                raise IndexNotFoundError(f"no index yet in {index.dir}; build one with: rag index PATH --index {index.dir}")
            index.store.create(index._wanted_manifest())
        try:
            index._check_manifest()
        except IndexFormatError:
            if not upgrade:
                raise
            with index.write_lock():
                index.store.discard()
                ann.discard(index.dir)
                index.store.create(index._wanted_manifest())
        return index

    # -- settings the index was built with --------------------------------------------------

    def _wanted_manifest(self) -> dict:
        """What this index must have been built with (the dim and the embedder are added at first write)."""
        s = self.settings
        return {"model": s.model, "vectors": vector_kind(s.embed_precision), "chunk_tokens": s.chunk_tokens,
                "overlap_tokens": s.overlap_tokens, "chunker": CHUNKER_VERSION}

    def _check_manifest(self, for_writing=False) -> None:
        """Refuse another model, another kind of vectors (int8 vs float) and, to write, other chunking."""
        have, want = {"vectors": "float", **self.store.manifest()}, self._wanted_manifest()
        keys = ("model", "vectors", "chunk_tokens", "overlap_tokens", "chunker") if for_writing else ("model", "vectors")
        diff = [k for k in keys if have.get(k) != want[k]]
        if diff:
            what = ", ".join(f"{k} {have.get(k)!r} (this run uses {want[k]!r})" for k in diff)
            raise IndexMismatchError(
                f"{self.dir} was built with {what}; it never mixes two settings. "
                f"Rebuild it with: rag index --rebuild --index {self.dir}, or use its settings (e.g. RAG_MODEL, "
                "RAG_EMBED_PRECISION)"
            )

    @property
    def embedder(self):
        from .embed import get_embedder

        s = self.settings
        return get_embedder(s.model, s.embed_backend, s.embed_precision)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def write_lock(self):
        """Hold the index's one-writer lock (a flock on .write.lock naming the holder's pid)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir / ".write.lock"
        with open(lock_path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise IndexLockedError(
                    f"{self.dir} is being written by {holder}; wait for it to finish (readers keep working)"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)

    def add(self, paths=None, progress: Progress | None = None, prune: bool | None = None) -> IngestReport:
        """Index files and folders incrementally: unchanged files cost a hash, nothing more.

        Files gone from an indexed folder leave the index unless prune=False. A file that fails to
        load keeps its previous version in the index and is reported.
        """
        started = time.perf_counter()
        paths = [Path(p) for p in (paths or [self.settings.corpus_dir])]
        prune = self.settings.prune if prune is None else prune
        report = IngestReport()
        progress = progress or (lambda stage, done, total: None)
        with self.write_lock():
            self._check_manifest(for_writing=True)
            files = []
            for p in paths:
                try:
                    found = find_files([p])
                except DocumentError as e:
                    report.failed.append(e)
                    continue
                files += found.files
                report.skipped += [str(s) for s in found.skipped]
                report.failed += found.failed
            known = {path: f["hash"] for path, f in self.store.files().items()}
            seen, pending, pending_chunks, vectors = set(), [], 0, {}
            changed = False
            try:
                for n, (path, root) in enumerate(files):
                    progress("reading", n, len(files))
                    abspath = _absolute(path)
                    seen.add(abspath)
                    loaded = self._load(path, root, abspath, known, report, progress)
                    if loaded is None:
                        continue
                    # Look up stored vectors before any part is written: writing the first part
                    # removes the file's old chunks, whose vectors the later parts may reuse.
                    vectors.update(self.store.vectors_for(
                        {self._embed_hash(c) for _, chunks in loaded.chunked for c in chunks}))
                    for part in _parts(loaded, BATCH_CHUNKS):
                        pending.append(part)
                        pending_chunks += sum(len(chunks) for _, chunks in part.chunked)
                        if pending_chunks >= BATCH_CHUNKS:
                            changed |= self._commit(pending, vectors, report, progress)
                            pending, pending_chunks = [], 0
                progress("reading", len(files), len(files))
                changed |= self._commit(pending, vectors, report, progress)
                roots = [_absolute(p) + os.sep for p in paths if p.is_dir()]
                if prune:
                    changed |= self._prune(roots, seen, report)
                with self.store.transaction() as tx:
                    gone = [f["path"] for f in self.store.failures()
                            if f["path"] not in seen and any(f["path"].startswith(r) for r in roots)
                            and not os.path.lexists(f["path"])]
                    failures = [(_absolute(Path(e.path)), e.reason if e.line is None else f"line {e.line}: {e.reason}")
                                for e in report.failed]
                    self.store.set_failures(tx, seen | {p for p, _ in failures} | set(gone), failures, time.time())
            finally:
                if changed or self._faiss_generation != self.store.generation():
                    self._refresh_faiss(save=True)
        report.seconds = time.perf_counter() - started
        return report

    def _load(self, path, root, abspath, known, report, progress: Progress):
        """Read and chunk one file; None when it is unchanged or failed (an unchanged scan is never OCR'd again)."""
        try:
            data = read_file(path)
        except DocumentError as e:
            report.failed.append(e)
            return None
        digest = file_hash(data)
        if known.get(abspath) == digest:
            report.unchanged += 1
            return None
        try:
            items = list(load_file(path, root, self._load_options(progress), data=data))
        except DocumentError as e:
            report.failed.append(e)
            return None
        docs = [d for d in items if not isinstance(d, DocumentError)]
        errors = [d for d in items if isinstance(d, DocumentError)]
        report.failed += errors
        if not docs:
            if not any(f.path == str(path) and f.line is None for f in report.failed):
                report.failed.append(DocumentError(path, "no text to index"))
            return None
        e = self.embedder
        chunked = [(d, chunk_document(d, e.count_tokens, self.settings.chunk_tokens,
                                      self.settings.overlap_tokens, e.max_tokens)) for d in docs]
        digest = "" if any(err.retry for err in errors) else digest  # no hash: read again next run
        return _Part(abspath, docs[0].source, digest, len(data), chunked, True, True)

    def _load_options(self, progress: Progress) -> LoadOptions:
        s = self.settings
        return LoadOptions(passwords=s.pdf_passwords, ocr=s.ocr, ocr_dpi=s.ocr_dpi, ocr_language=s.ocr_language,
                           progress=lambda done, total: progress("ocr", done, total))

    def _embed_hash(self, chunk) -> str:
        """Same model, text and sentences: same vectors, so a moved or unchanged chunk is not embedded again."""
        return hashlib.sha1(f"{self.settings.model}\x00{chunk.embed_text}\x00{chunk.embed_spans}".encode()).hexdigest()

    def _commit(self, pending: list["_Part"], vectors: dict, report: IngestReport, progress: Progress) -> bool:
        """Embed what is new, then write these (parts of) files in one transaction.

        A file too big for one batch is written in several; its hash is recorded with the last, so
        an interrupted run reads it again and finds the vectors of the parts already written.
        """
        if not pending:
            return False
        all_chunks = [c for part in pending for _, chunks in part.chunked for c in chunks]
        hashes = [self._embed_hash(c) for c in all_chunks]
        # longest first, so the model's batches hold texts of about one length (less padding)
        todo = sorted({h: c for h, c in zip(hashes, all_chunks) if h not in vectors}.items(),
                      key=lambda item: (-len(item[1].embed_text), item[0]))
        step = max(self.settings.batch_size * 4, 1)
        for i in range(0, len(todo), step):
            progress("embedding", report.embedded, report.embedded + len(todo) - i)
            part = todo[i:i + step]
            chunk_vectors, sentence_vectors = self.embedder.encode_with_spans(
                [c.embed_text for _, c in part], [c.embed_spans for _, c in part], self.settings.batch_size)
            for (h, _), v, sv in zip(part, chunk_vectors, sentence_vectors):
                vectors[h] = (v, sv)
            report.embedded += len(part)
        progress("embedding", report.embedded, report.embedded)
        it = iter(zip(all_chunks, hashes))
        now = time.time()
        with self.store.transaction() as tx:
            for part in pending:
                if part.first:
                    self.store.remove_file(tx, part.path)
                    self.store.insert_file(tx, part.path, part.source, part.digest if part.last else "", part.size, now)
                elif part.last:
                    self.store.set_file_hash(tx, part.path, part.digest)
                documents = [(doc, [(c, vectors[h], h) for c, h in (next(it) for _ in chunks)])
                             for doc, chunks in part.chunked]
                self.store.insert_documents(tx, part.path, documents)
                if part.last:
                    report.added.append(part.source)
            self.store.bump_generation(tx)
        report.chunks += len(all_chunks)
        for h in hashes:  # written: later files find them in the store, and memory stays flat
            vectors.pop(h, None)
        return True

    def _prune(self, roots, seen, report) -> bool:
        gone = [(path, f["source"]) for path, f in self.store.files().items()
                if path not in seen and any(path.startswith(r) for r in roots)]
        if not gone:
            return False
        with self.store.transaction() as tx:
            for path, source in gone:
                self.store.remove_file(tx, path)
                report.removed.append(source)
            self.store.bump_generation(tx)
        return True

    def rebuild(self, paths=None, progress: Progress | None = None) -> IngestReport:
        """Build a fresh index beside this one, then swap it in: the old one serves until the swap."""
        fresh_dir = self.dir.with_name(f".{self.dir.name}.rebuild")
        shutil.rmtree(fresh_dir, ignore_errors=True)
        fresh_dir.mkdir(parents=True)
        with self.write_lock():
            fresh = Index(fresh_dir, self.settings)
            fresh.store.create(fresh._wanted_manifest())
            report = fresh.add(paths, progress)
            fresh.store.close()
            old_dir = self.dir.with_name(f".{self.dir.name}.old")
            shutil.rmtree(old_dir, ignore_errors=True)
            self.store.close()
            keep = [p for p in self.dir.iterdir() if p.name in ("README.md", ".write.lock")]
            old_dir.mkdir()
            for p in self.dir.iterdir():
                if p not in keep:
                    p.rename(old_dir / p.name)
            for p in fresh_dir.iterdir():
                if p.name != ".write.lock":
                    p.rename(self.dir / p.name)
            shutil.rmtree(old_dir, ignore_errors=True)
            shutil.rmtree(fresh_dir, ignore_errors=True)
        self._faiss_generation = None
        return report

    # -- reading -----------------------------------------------------------------------------

    def faiss(self):
        """The vector index of the last commit; reloaded when another writer has committed since."""
        generation = self.store.generation()
        if generation != self._faiss_generation:
            with self._reload_lock:
                if generation != self._faiss_generation:
                    self._refresh_faiss(save=False)
        return self._faiss

    def _refresh_faiss(self, save: bool) -> None:
        generation = self.store.generation()
        stored_dim = self.store.manifest().get("dim")
        index = ann.load(self.dir, generation)
        if index is None:
            dim = stored_dim or self.embedder.dim
            ids, vectors = self.store.all_vectors(dim)
            index = ann.build(ids, vectors, dim, self.settings.hnsw_threshold)
            if save:
                ann.save(index, self.dir, generation)
        if save and stored_dim is None:
            with self.store.transaction() as tx:
                self.store.set_manifest(tx, "dim", self.embedder.dim)
                self.store.set_manifest(tx, "embedder", self.embedder.name)
        self._faiss, self._faiss_generation = index, generation

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, (1, dim): pass it to search() and to the answerer, to embed once."""
        return self.embedder.encode([query])

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """The top-k chunks for the query (hybrid, dense or bm25), exact offsets and all."""
        s = self.settings
        mode = mode or s.mode
        if query_vector is None and mode != "bm25":
            query_vector = self.embed_query(query)
        return retrieve.search(faiss_index=self.faiss() if mode != "bm25" else None, store=self.store, query=query,
                               query_vector=query_vector, k=k or s.k, mode=mode, fusion=s.fusion, alpha=s.alpha,
                               candidates=s.candidates)

    def status(self) -> dict:
        manifest = self.store.manifest()
        size = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        return {
            "index": str(self.dir),
            **self.store.counts(),
            "model": manifest.get("model"),
            "embedder": manifest.get("embedder"),
            "vectors": manifest.get("vectors", "float"),
            "dim": manifest.get("dim"),
            "chunk_tokens": manifest.get("chunk_tokens"),
            "overlap_tokens": manifest.get("overlap_tokens"),
            "generation": manifest.get("generation"),
            "size_bytes": size,
            "failed": self.store.failures(),
        }

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _absolute(path: Path) -> str:
    """The path with symbolic links resolved (one file under two names is one file); a link that
    loops or dangles keeps its own absolute name, so it can be reported rather than crash the run."""
    try:
        return str(Path(path).resolve(strict=True))
    except (OSError, RuntimeError):
        return os.path.abspath(path)


_default_indexes: dict = {}
_default_lock = threading.Lock()


def default_index(settings: Settings | None = None) -> Index:
    """The index at settings.index_dir, opened once per process and built from settings.corpus_dir if
    empty (or written by an older version): what `ask()` without an index, the CLI and the chat use."""
    settings = settings or Settings.from_env()
    key = (_absolute(Path(settings.index_dir)), settings.model)
    with _default_lock:
        index = _default_indexes.get(key)
        if index is None:
            index = Index.open(settings.index_dir, settings, upgrade=True)
            if index.store.counts()["chunks"] == 0:
                report = index.add([settings.corpus_dir])
                if not report.added and not report.unchanged:
                    raise RagError(f"nothing to answer from: no document could be indexed in {settings.corpus_dir}")
            _default_indexes[key] = index
    return index
