"""The Index: load -> chunk -> embed -> store on the way in, retrieve on the way out.

`Index` is the facade every caller uses (CLI, chat, `ask`, benchmarks): `add` and `rebuild` write,
`search` is the one way into retrieval, `status` describes it. Knowledge bases (rag/kb.py) are a layer above:
each is one Index, opened once per process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np

from . import ann, ingest, retrieve
from .chunk import CHUNKER_VERSION
from .config import Settings
from .errors import IndexFormatError, IndexLockedError, IndexMismatchError, IndexNotFoundError
from .ingest import Progress
from .model import EmbeddedFile, Hit, IngestReport
from .store import DB_NAME, Store


class Index:
    """A folder holding one index. Safe to search from many threads while one writer adds."""

    def __init__(self, directory: Path, settings: Settings, kb: str = ""):
        self.dir = Path(directory)
        self.settings = settings  # what its files depend on (model, engine, chunking); queries may bring their own
        self.kb = kb  # the knowledge base it is, named on every hit ("" outside a Library)
        self.store = Store(self.dir)
        self._faiss = None
        self._faiss_generation = None
        self._reload_lock = threading.Lock()

    @classmethod
    def open(cls, path=None, settings: Settings | None = None, create: bool = True, upgrade: bool = False,
             kb: str = "") -> "Index":
        """With upgrade=True, an index written by an older version is emptied, for the next add() to rebuild."""
        settings = settings or Settings.from_env()
        index = cls(Path(path) if path is not None else settings.index_dir, settings, kb=kb)
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
        """What this index must have been built with (the dim, the embedder and the kinds of vectors are added
        when it is written)."""
        s = self.settings
        return {"model": s.model, "chunk_tokens": s.chunk_tokens, "overlap_tokens": s.overlap_tokens,
                "chunker": CHUNKER_VERSION}

    def _check_manifest(self, for_writing=False) -> None:
        """Refuse another model and, to write, other chunking. Float and int8 document vectors may meet in one
        index (one written from two kinds of CPU): questions are always embedded in float, and each int8 vector
        is as close to its fp32 one as the quality bounds allow (docs/ENGINES.md measures a mixed index)."""
        have, want = self.store.manifest(), self._wanted_manifest()
        keys = ("model", "chunk_tokens", "overlap_tokens", "chunker") if for_writing else ("model",)
        diff = [k for k in keys if have.get(k) != want[k]]
        if diff:
            what = ", ".join(f"{k} {have.get(k)!r} (this run uses {want[k]!r})" for k in diff)
            raise IndexMismatchError(
                f"{self.dir} was built with {what}; it never mixes two settings. "
                f"Rebuild it with: rag index --rebuild --index {self.dir}, or use its settings (e.g. RAG_MODEL, "
                "RAG_CHUNK_TOKENS)"
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
        load keeps its previous version in the index and is reported. With settings.ray_address, the
        changed files are loaded, chunked and embedded on that Ray cluster (rag/distributed.py).
        """
        prune = self.settings.prune if prune is None else prune
        paths = [Path(p) for p in (paths or [self.settings.corpus_dir])]
        if self.settings.ray_address:  # load, chunk and embed on a Ray cluster (imported only then)
            from . import distributed

            add_paths = distributed.add_paths
        else:
            add_paths = ingest.add_paths
        return self._write(lambda report, writer, progress: add_paths(self, paths, progress, prune, report, writer),
                           progress)

    def remove(self, paths) -> IngestReport:
        """Take these files (absolute paths, as Store.files() keys them) out of the index, whatever is on disk."""
        wanted = set(map(str, paths))
        return self._write(lambda report, writer, progress: writer.remove(
            [(p, f["source"]) for p, f in self.store.files().items() if p in wanted]), None)

    def add_precomputed(self, files: Iterable[EmbeddedFile], progress: Progress | None = None) -> IngestReport:
        """Write files chunked and embedded elsewhere (workers, a cache), in any order, file by file.

        Each EmbeddedFile must have been made with this index's model and chunker settings (else
        IndexMismatchError, before anything is written) and pass the checks `Index.add` guarantees for
        its own (exact offsets, sentences inside their chunk, normalized float vectors of the right
        shape); a file that does not is reported in `failed` and not written. Written in batches of
        ingest.BATCH_CHUNKS chunks, one transaction each: after a crash, rerun it; the files already
        written with the same hash are skipped (`unchanged`).
        """
        return self._write(lambda report, writer, progress: ingest.add_embedded(self, files, progress, report, writer),
                           progress)

    def _write(self, work, progress: Progress | None) -> IngestReport:
        """Run `work` under the write lock through one Writer, then bring the vector index up to date."""
        started = time.perf_counter()
        report = IngestReport()
        with self.write_lock():
            self._check_manifest(for_writing=True)
            writer = ingest.Writer(self.store, self.settings.model, report)
            try:
                work(report, writer, progress or (lambda stage, done, total: None))
            finally:
                if writer.changed or self._faiss_generation != self.store.generation():
                    self._refresh_faiss(save=True)
        report.seconds = time.perf_counter() - started
        return report

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
            old_dir.mkdir()
            for p in self.own_files():  # the folder may hold more than this index (library.sqlite, kbs/)
                p.rename(old_dir / p.name)
            for p in fresh.own_files():
                p.rename(self.dir / p.name)
            shutil.rmtree(old_dir, ignore_errors=True)
            shutil.rmtree(fresh_dir, ignore_errors=True)
        self._faiss, self._faiss_generation = None, None  # its ids are the old index's: never sync it
        return report

    def own_files(self) -> list[Path]:
        """The files of this index in its folder: the database and the vector index (no lock, no other data)."""
        names = {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}
        return [p for p in self.dir.iterdir() if p.is_file() and (p.name in names or ann.owns(p))]

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
        """Bring the vector index to the last commit by its difference (ann.sync), starting from the one
        in memory or the newest saved file; build it from SQLite only when there is none. A writer
        (save=True) also rebuilds when ann.worth_rebuilding says so, and saves the result."""
        import faiss

        s = self.settings
        with self.store.snapshot():  # one commit throughout, even while a writer goes on
            generation = self.store.generation()
            manifest = self.store.manifest()
            dim = manifest.get("dim") or self.embedder.dim
            if self._faiss is not None:  # never change the index searches are using: work on a copy
                index, at = faiss.clone_index(self._faiss), self._faiss_generation
            else:
                index, at = ann.load(self.dir)
            if index is None or (save and ann.worth_rebuilding(index, self.store.chunk_count(), s.ivf_threshold)):
                index, at = ann.build(self.store, dim, s.ivf_threshold), None
            elif at != generation:
                ann.sync(index, self.store, dim)
        ann.configure(index, s.ivf_nprobe)
        if save and (at != generation or not ann.faiss_path(self.dir, generation).exists()):
            ann.save(index, self.dir, generation)
        if save and manifest.get("dim") is None:
            with self.store.transaction() as tx:
                self.store.set_manifest(tx, "dim", dim)
                self.store.set_manifest(tx, "embedder", self.embedder.name)
        self._faiss, self._faiss_generation = index, generation

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, (1, dim): pass it to search() and to the answerer, to embed once."""
        return self.embedder.encode([query])

    def embed_question(self, question: str) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """embed_query()'s vector and, from the same forward pass, the question's token vectors and offsets,
        which the answerer matches against the sentences it cites (answerability.coverage)."""
        vectors, tokens = self.embedder.encode_tokens([question])
        return vectors, tokens[0]

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               query_vector: np.ndarray | None = None, settings: Settings | None = None) -> list[Hit]:
        """The top-k chunks for the query (hybrid, dense or bm25), exact offsets and all. k, mode and the fusion
        come from `settings` when given (a query's own), else from the index's."""
        s = settings or self.settings
        mode = mode or s.mode
        if query_vector is None and mode != "bm25":
            query_vector = self.embed_query(query)
        return retrieve.search(shards=[self.shard(mode)], query=query, query_vector=query_vector, k=k or s.k,
                               mode=mode, fusion=s.fusion, alpha=s.alpha, candidates=s.candidates,
                               max_df=s.keyword_max_df)

    def store_of(self, kb: str) -> Store:
        """The store its hits' chunk ids belong to (there is one; a Selection has one per KB)."""
        return self.store

    def shard(self, mode: str) -> retrieve.Shard:
        """What retrieval reads of this index: the vector index (not for bm25) and the store, under its KB's name."""
        return retrieve.Shard(kb=self.kb, faiss_index=self.faiss() if mode != "bm25" else None, store=self.store)

    def status(self) -> dict:
        manifest = self.store.manifest()
        size = sum(p.stat().st_size for p in self.own_files())
        return {
            "index": str(self.dir),
            **self.store.counts(),
            "model": manifest.get("model"),
            "embedder": manifest.get("embedder"),
            "vectors": manifest.get("vectors", ""),  # the kinds that wrote it: "float", "int8" or "float+int8"
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
