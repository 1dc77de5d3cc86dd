"""The way in: files read, chunked and embedded here (`add_paths`), or elsewhere (`add_embedded`), both
written by one `Writer`.

A batch of about BATCH_CHUNKS chunks is one SQLite transaction: Ctrl-C or kill -9 loses at most the
batch in flight. A file bigger than a batch is written in parts; its hash is recorded with the last,
so an interrupted run writes it again (reusing the stored vectors of the parts already written), and
a file whose hash is recorded is skipped. Precomputed files (from workers, in any order) pass the
checks `check` makes before anything of them is written.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

from .chunk import chunk_document
from .embed import vector_kind
from .errors import DocumentError, IndexMismatchError
from .load import LoadOptions, file_hash, find_files, load_file, read_file
from .model import EmbeddedDocument, EmbeddedFile, IngestReport

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH_CHUNKS = 2048  # chunks embedded and committed together: Ctrl-C loses at most one batch
NORM_TOLERANCE = 1e-2  # vectors must be normalized to within this


class Part(NamedTuple):
    """A file's documents, or a slice of them when the file is bigger than one batch."""

    path: str  # absolute
    source: str
    digest: str
    size: int
    documents: list  # [(Document, [Chunk, ...]), ...], or [EmbeddedDocument, ...] once embedded
    first: bool
    last: bool


def parts(part: Part, limit: int):
    """Slice a big file (a JSONL corpus, a long PDF) into parts of about `limit` chunks."""
    start, count = 0, 0
    for i, doc in enumerate(part.documents):
        count += len(doc[1] if isinstance(doc, tuple) else doc.chunks)
        if count >= limit and i + 1 < len(part.documents):
            yield part._replace(documents=part.documents[start:i + 1], first=start == 0, last=False)
            start, count = i + 1, 0
    yield part._replace(documents=part.documents[start:], first=start == 0, last=True)


def embed_hash(model: str, chunk) -> bytes:
    """Same model, text and sentences: same vectors, so a moved or unchanged chunk is not embedded again."""
    return hashlib.sha1(f"{model}\x00{chunk.embed_text}\x00{chunk.embed_spans}".encode()).digest()[:16]


class Writer:
    """The one write path: embedded parts into SQLite, one transaction per batch, each a new generation."""

    def __init__(self, store, model: str, report: IngestReport):
        self.store, self.model, self.report = store, model, report
        self.kinds: set[str] = set()  # of the vectors embedded for this writer (embed.vector_kind)
        self.pending: list[Part] = []
        self.pending_chunks = 0
        self.changed = False

    def put(self, part: Part) -> None:
        """Queue an embedded part; the batch commits once it holds BATCH_CHUNKS chunks."""
        self.pending.append(part)
        self.pending_chunks += sum(len(d.chunks) for d in part.documents)
        if self.pending_chunks >= BATCH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        now = time.time()
        with self.store.transaction() as tx:
            for part in self.pending:
                if part.first:
                    self.store.remove_file(tx, part.path)
                    self.store.insert_file(tx, part.path, part.source, part.digest if part.last else "", part.size, now)
                elif part.last:
                    self.store.set_file_hash(tx, part.path, part.digest)
                self.store.insert_documents(tx, part.path, [
                    (d.document, [(c, v, sv, embed_hash(self.model, c))
                                  for c, v, sv in zip(d.chunks, d.vectors, d.sentence_vectors)])
                    for d in part.documents])
                if part.last:
                    self.report.added.append(part.source)
            if self.kinds:
                self.store.set_manifest(tx, "vectors", merge_kinds(self.store.manifest().get("vectors"), self.kinds))
            self.store.bump_generation(tx)
        self.report.chunks += self.pending_chunks
        self.pending, self.pending_chunks, self.changed = [], 0, True

    def remove(self, gone: list[tuple[str, str]]) -> None:
        """Delete these (path, source) files in one transaction."""
        if not gone:
            return
        with self.store.transaction() as tx:
            for path, source in gone:
                self.store.remove_file(tx, path)
                self.report.removed.append(source)
            self.store.bump_generation(tx)
        self.changed = True


# -- files read and embedded here -----------------------------------------------------------------

def add_paths(index, paths, progress: Progress, prune: bool, report: IngestReport, writer: Writer) -> None:
    """Index files and folders incrementally (Index.add): unchanged files cost a hash, nothing more."""
    s = index.settings
    options = load_options(s, progress)
    seen, pending, pending_chunks, vectors = set(), [], 0, {}
    for path, root, abspath, digest, data in changed(index, find(paths, report), seen, report, progress):
        e = index.embedder  # loaded on the first changed file: an unchanged corpus never loads the model
        loaded, failed = load_part(path, root, abspath, digest, data, options, e.tokens, s.chunk_tokens, s.overlap_tokens)
        report.failed += failed
        if loaded is None:
            continue
        # Look up stored vectors before any part is written: writing the first part removes the
        # file's old chunks, whose vectors the later parts may reuse.
        vectors.update(index.store.vectors_for(
            {embed_hash(s.model, c) for _, chunks in loaded.documents for c in chunks}, e.dim))
        for part in parts(loaded, BATCH_CHUNKS):
            pending.append(part)
            pending_chunks += sum(len(chunks) for _, chunks in part.documents)
            if pending_chunks >= BATCH_CHUNKS:
                _embed(index, pending, vectors, report, progress, writer)
                pending, pending_chunks = [], 0
    _embed(index, pending, vectors, report, progress, writer)
    finish(index, paths, seen, prune, report, writer)


def merge_kinds(recorded: str | None, kinds: set[str]) -> str:
    """The manifest's "vectors": every kind that wrote the index, "+"-joined ("float", "int8", "float+int8")."""
    return "+".join(sorted(set(filter(None, (recorded or "").split("+"))) | kinds))


def load_options(settings, progress: Progress | None = None) -> LoadOptions:
    """What the loaders need from the settings; OCR reports its pages as the "ocr" stage."""
    s = settings
    return LoadOptions(passwords=s.pdf_passwords, ocr=s.ocr, ocr_dpi=s.ocr_dpi, ocr_language=s.ocr_language,
                       pdf_tables=s.pdf_tables,
                       progress=(lambda done, total: progress("ocr", done, total)) if progress else None)


def find(paths, report: IngestReport) -> list[tuple[Path, Path]]:
    """The (file, root) pairs to look at; what cannot be listed or read is reported."""
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
    return files


def changed(index, files, seen: set, report: IngestReport, progress: Progress):
    """Read and hash every file (adding its absolute path to `seen`); yield (path, root, absolute
    path, hash, bytes) of the new and changed ones. Unchanged files are counted, nothing more."""
    known = {path: f["hash"] for path, f in index.store.files().items()}
    for n, (path, root) in enumerate(files):
        progress("reading", n, len(files))
        abspath = absolute(path)
        seen.add(abspath)
        try:
            data = read_file(path)
        except DocumentError as e:
            report.failed.append(e)
            continue
        digest = file_hash(data)
        if known.get(abspath) == digest:
            report.unchanged += 1
            continue
        yield path, root, abspath, digest, data
    progress("reading", len(files), len(files))


def finish(index, paths, seen: set, prune: bool, report: IngestReport, writer: Writer) -> None:
    """Write what is pending, prune files gone from the indexed folders, record this run's failures."""
    writer.flush()
    roots = [absolute(p) + os.sep for p in paths if p.is_dir()]
    if prune:
        writer.remove([(path, f["source"]) for path, f in index.store.files().items()
                       if path not in seen and any(path.startswith(r) for r in roots)])
    with index.store.transaction() as tx:
        gone = [f["path"] for f in index.store.failures()
                if f["path"] not in seen and any(f["path"].startswith(r) for r in roots)
                and not os.path.lexists(f["path"])]
        failures = [(absolute(Path(e.path)), e.reason if e.line is None else f"line {e.line}: {e.reason}")
                    for e in report.failed]
        index.store.set_failures(tx, seen | {p for p, _ in failures} | set(gone), failures, time.time())


def load_part(path, root, abspath: str, digest: str, data: bytes, options: LoadOptions, tokens,
              chunk_tokens: int, overlap_tokens: int) -> tuple[Part | None, list[DocumentError]]:
    """Load and chunk one file's bytes: (the whole file as one Part, or None when nothing in it can
    be indexed; the problems found). `tokens` counts as the model does (an Embedder's TokenCounter);
    pure, so a worker elsewhere gives the same chunks."""
    try:
        items = list(load_file(path, root, options, data=data))
    except DocumentError as e:
        return None, [e]
    docs = [d for d in items if not isinstance(d, DocumentError)]
    failed = [d for d in items if isinstance(d, DocumentError)]
    if not docs:
        if not any(f.line is None for f in failed):
            failed.append(DocumentError(path, "no text to index"))
        return None, failed
    chunked = [(d, chunk_document(d, tokens.count_tokens, chunk_tokens, overlap_tokens, tokens.max_tokens)) for d in docs]
    digest = "" if any(e.retry for e in failed) else digest  # no hash recorded: read again next run (OCR to come)
    return Part(abspath, docs[0].source, digest, len(data), chunked, True, True), failed


def _embed(index, pending: list[Part], vectors: dict, report: IngestReport, progress: Progress, writer: Writer):
    """Embed what the store does not hold yet, then hand the parts to the writer."""
    model, batch_size = index.settings.model, index.settings.batch_size
    all_chunks = [c for part in pending for _, chunks in part.documents for c in chunks]
    hashes = [embed_hash(model, c) for c in all_chunks]
    # longest first, so the model's batches hold texts of about one length (less padding)
    todo = sorted({h: c for h, c in zip(hashes, all_chunks) if h not in vectors}.items(),
                  key=lambda item: (-len(item[1].embed_text), item[0]))
    step = max(batch_size * 4, 1)
    for i in range(0, len(todo), step):
        progress("embedding", report.embedded, report.embedded + len(todo) - i)
        batch = todo[i:i + step]
        chunk_vectors, sentence_vectors = index.embedder.encode_with_spans(
            [c.embed_text for _, c in batch], [c.embed_spans for _, c in batch], batch_size)
        for (h, _), v, sv in zip(batch, chunk_vectors, sentence_vectors):
            vectors[h] = (v, sv)
        report.embedded += len(batch)
        writer.kinds.add(vector_kind(index.embedder.precision))
    progress("embedding", report.embedded, report.embedded)
    it = iter(hashes)
    for part in pending:
        documents = []
        for doc, chunks in part.documents:
            got = [vectors[next(it)] for _ in chunks]
            documents.append(EmbeddedDocument(document=doc, chunks=chunks, vectors=[v for v, _ in got],
                                              sentence_vectors=[sv for _, sv in got]))
        writer.put(part._replace(documents=documents))
    for h in hashes:  # handed over: later files find them in the store, and memory stays flat
        vectors.pop(h, None)


# -- files embedded elsewhere ---------------------------------------------------------------------

def add_embedded(index, files: Iterable[EmbeddedFile], progress: Progress, report: IngestReport, writer: Writer):
    """Check and write precomputed files (Index.add_precomputed); a file already stored with this hash is skipped."""
    manifest = index.store.manifest()
    dim = manifest.get("dim") or index.embedder.dim
    known = {path: f["hash"] for path, f in index.store.files().items()}
    for n, file in enumerate(files):
        progress("writing", n, n + 1)
        check_kind(file, manifest, index.dir)
        if known.get(file.path) == file.hash:
            report.unchanged += 1
            continue
        reason = check(file, dim)
        if reason:
            report.failed.append(DocumentError(file.path, reason))
            continue
        for part in parts(Part(file.path, file.source, file.hash, file.size, file.documents, True, True), BATCH_CHUNKS):
            writer.put(part)
    writer.flush()


def check_kind(file: EmbeddedFile, manifest: dict, directory) -> None:
    """Vectors of another model or chunker never enter the index: raise before anything is written."""
    diff = [k for k in ("model", "chunk_tokens", "overlap_tokens", "chunker") if getattr(file, k) != manifest.get(k)]
    if diff:
        what = ", ".join(f"{k} {getattr(file, k)!r} (the index has {manifest.get(k)!r})" for k in diff)
        raise IndexMismatchError(f"{file.path} was embedded with {what}; embed it with the index's settings "
                                 f"or build another index for it (rag index --rebuild --index {directory})")


def check(file: EmbeddedFile, dim: int) -> str | None:
    """What is wrong with a precomputed file, or None: the same guarantees `Index.add` gives its own
    (exact offsets, sentences inside their chunk, one normalized vector per chunk and per sentence)."""
    if not os.path.isabs(file.path):
        return "path must be absolute (it is the file's identity in the index)"
    if not (isinstance(file.hash, str) and len(file.hash) == 64):
        return "hash must be the sha256 hex digest of the file's bytes (rag.load.file_hash)"
    if not file.documents:
        return "no documents"
    for d in file.documents:
        doc = d.document
        where = f"document {doc.doc_id!r}" + (f" page {doc.page}" if doc.page is not None else "")
        if doc.source != file.source:
            return f"{where}: source {doc.source!r} is not the file's {file.source!r}"
        if len({c.title for c in d.chunks}) > 1:
            return f"{where}: its chunks carry different titles"
        vectors = _floats(d.vectors)
        if vectors is None or vectors.shape != (len(d.chunks), dim):
            return f"{where}: vectors must be a float array of shape ({len(d.chunks)}, {dim}), " \
                   f"not {getattr(vectors, 'shape', type(d.vectors).__name__)}"
        if len(d.sentence_vectors) != len(d.chunks):
            return f"{where}: {len(d.sentence_vectors)} sentence vector arrays for {len(d.chunks)} chunks"
        for i, (c, sv) in enumerate(zip(d.chunks, d.sentence_vectors)):
            if (c.source, c.doc_id, c.page) != (doc.source, doc.doc_id, doc.page):
                return f"{where}: chunk {i} belongs to {c.source!r} {c.doc_id!r} page {c.page}"
            if not (0 <= c.start < c.end <= len(doc.text)) or c.text != doc.text[c.start:c.end]:
                return f"{where}: chunk {i} text is not document.text[{c.start}:{c.end}]"
            if not c.sentences or any(not (c.start <= a < b <= c.end) for a, b in c.sentences):
                return f"{where}: chunk {i} needs sentences, each inside [{c.start}, {c.end})"
            sv = _floats(sv)
            if sv is None or sv.shape != (len(c.sentences), dim):
                return f"{where}: chunk {i} sentence vectors must be a float array of shape ({len(c.sentences)}, {dim})"
        for name, rows in (("vectors", vectors), ("sentence vectors", np.vstack([_floats(s) for s in d.sentence_vectors]))):
            norms = np.linalg.norm(rows, axis=1)
            if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1) > NORM_TOLERANCE):
                return f"{where}: {name} must be normalized (norms {norms.min():.3f}-{norms.max():.3f})"
    return None


def _floats(array):
    """The array as float32 if it is a float array (int8 or other kinds are refused), else None."""
    a = np.asarray(array)
    return a.astype(np.float32, copy=False) if a.dtype.kind == "f" else None


def absolute(path: Path) -> str:
    """The path with symbolic links resolved (one file under two names is one file); a link that
    loops or dangles keeps its own absolute name, so it can be reported rather than crash the run."""
    try:
        return str(Path(path).resolve(strict=True))
    except (OSError, RuntimeError):
        return os.path.abspath(path)
