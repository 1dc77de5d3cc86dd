"""`rag index --ray`: load, chunk and embed on a Ray cluster; the same index, written by this process.

The driver (the process running `rag index`) lists and hashes the files and decides what changed
exactly as a local run does (`ingest.find`, `ingest.changed`): an unchanged file costs a hash and
never reaches the cluster. Each changed file's bytes go into Ray's object store, one object per file
(Ray spills what exceeds its memory to disk), so workers need no shared disk. Then a Ray Dataset of
the changed files runs two stages:

  load + chunk  tasks (flat_map): a file's bytes into one row per chunk (the first chunk of each
                document carries the document), then a row that closes the file with its failures.
                The tokenizer is the driver's model's, pickled, so the chunks are a local run's.
  embed         map_batches over an actor pool, batches of chunks: the model loaded once per actor,
                one GPU each and gpu_batch_size chunks a call when the cluster has GPUs, else one
                CPU each and batch_size chunks a call.

The rows come back in file order; the driver gathers each file's into parts of whole documents, about
ingest.BATCH_CHUNKS chunks each, checks them as `Index.add_precomputed` checks its files
(`ingest.check`) and commits them through the one `ingest.Writer`: a killed driver leaves the last
commit, and the next run skips the files committed. A lost worker is Ray's to recover: tasks are
retried, actors restarted. A changed file's unchanged chunks keep their stored vectors: the worker
is told the embed hashes of the file's previous version and leaves those chunks to the driver, which
reads their vectors before the file's first part is written.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import ingest
from .ingest import load_options
from .chunk import CHUNKER_VERSION
from .embed import vector_kind
from .errors import DocumentError, RagError
from .load import LoadOptions
from .model import Chunk, Document, EmbeddedDocument, EmbeddedFile, IngestReport

PROGRESS_EVERY = 256  # chunks between progress reports
INSTALL = "pip install 'ray[data]' (from a checkout of rag: pip install -e '.[ray]')"


@dataclass(kw_only=True)
class Job:
    """One changed file, as the driver hands it to the cluster (its bytes travel beside it)."""

    seq: int  # its place in the run: its pieces come back in this order
    path: str  # as listed: failures name it so, as local runs do
    load_path: str  # absolute, links not resolved: sources come out named as local runs name them
    root: str  # absolute
    abspath: str  # the file's identity in the index (links resolved)
    digest: str
    size: int
    old: set[bytes] = field(default_factory=set)  # embed hashes its previous version has stored


@dataclass(kw_only=True)
class Piece:
    """One row of the dataset: a chunk (the first of a document carries the document), or the row
    that closes a file (its failures). Rows are chunks so that Ray Data batches the model's work
    by chunk: a big JSONL spreads over all actors, small files share a forward pass."""

    seq: int
    document: Document | None = None  # on a document's first chunk
    chunk: Chunk | None = None
    hash: bytes = b""  # ingest.embed_hash of the chunk
    reuse: bool = False  # its previous version's stored vector is kept (the driver reads it)
    prefetch: set[bytes] = field(default_factory=set)  # on a file's first row: every hash it reuses
    vector: Any = None  # set by the actor, unless reused
    sentence_vectors: Any = None
    embedded: bool = False  # this row's text was embedded (once per batch, for duplicates)
    kind: str = ""  # of the vector the actor made (embed.vector_kind): nodes of two kinds of CPU may differ
    last: bool = False  # closes the file
    failed: list[tuple[str, int | None, bool]] = field(default_factory=list)  # (reason, JSONL line, retry), last row
    nodes: list[str] = field(default_factory=list)  # where it was loaded, then embedded
    actor: str = ""  # the actor that embedded it


def import_ray():
    # read when ray.data is first imported: its progress lines are noise beside the driver's own
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    try:
        import ray
        import ray.data
    except ImportError:
        raise RagError(f"indexing on a Ray cluster needs Ray, which is not installed: {INSTALL}") from None
    return ray


def add_paths(index, paths, progress, prune: bool, report: IngestReport, writer: ingest.Writer) -> None:
    """Index.add on the cluster that settings.ray_address names: the files, index and report a local
    run gives. Joins the cluster for the run (or starts a local one) unless this process already has."""
    ray = import_ray()
    connected = None  # joined at the first changed file: an unchanged corpus never reaches the cluster
    try:
        known, seen, jobs, data = set(index.store.files()), set(), {}, []
        for path, root, abspath, digest, raw in ingest.changed(index, ingest.find(paths, report), seen, report, progress):
            if abspath in jobs:  # one file listed twice (overlapping paths): embedded once
                continue
            if connected is None:
                connected = connect(ray, index.settings)
            jobs[abspath] = Job(seq=len(jobs), path=str(path), load_path=os.path.abspath(path),
                                root=os.path.abspath(root), abspath=abspath, digest=digest, size=len(raw),
                                old=index.store.embed_hashes(abspath) if abspath in known else set())
            data.append(ray.put(raw))
        if jobs:
            files = list(jobs.values())
            _write(index, _results(ray, index, files, data), files, progress, report, writer)
        ingest.finish(index, paths, seen, prune, report, writer)
    finally:
        if connected:
            ray.shutdown()


def connect(ray, settings) -> bool:
    """Join the cluster (or start one on this machine); False when this process had joined one already.

    The workers get this process's copy of the rag package (py_modules), so every node chunks with
    the same code; they need its dependencies and the model installed."""
    if ray.is_initialized():
        return False
    address = settings.ray_address
    env = {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    try:
        ray.init(address=address, runtime_env=env, logging_level=logging.ERROR, log_to_driver=not settings.quiet,
                 **({"include_dashboard": False} if address == "local" else {}))
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise RagError(f"cannot join the Ray cluster at {address!r} ({e}); start one (ray start --head), point "
                       "--ray / RAG_RAY_ADDRESS at it, or use --ray alone for a cluster on this machine") from None
    return True


def _results(ray, index, jobs: list[Job], data: list):
    """Run the two stages over the changed files; yield each Piece in file order as it is ready."""
    s, e = index.settings, index.embedder
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if s.ray_workers:
        compute = ray.data.ActorPoolStrategy(size=s.ray_workers)
    else:  # grows while chunks queue up; the model loads once per actor
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, gpus or cpus - 1))
    ray.data.DataContext.get_current().enable_fallback_to_arrow_object_ext_type = True  # the refs: no warning
    ds = ray.data.from_items([{"job": pickle.dumps(j), "data": d} for j, d in zip(jobs, data)],
                             override_num_blocks=min(len(jobs), 8 * max(cpus, 1)))
    del data[:]  # the dataset holds the bytes now
    ds = ds.flat_map(_load, fn_kwargs={"tokens": e.tokens, "options": load_options(s),
                                       "chunk_tokens": s.chunk_tokens, "overlap_tokens": s.overlap_tokens,
                                       "model": s.model})
    per_call = s.gpu_batch_size if gpus else s.batch_size
    # a file's rows come out of its load task as one block, and an actor takes whole blocks: cut them
    # to a call's worth (streaming, order kept), so one big file feeds every actor
    ds = ds.repartition(target_num_rows_per_block=per_call)
    ds = ds.map_batches(Embed, fn_constructor_kwargs={"model": s.model, "backend": s.embed_backend,
                                                      "precision": s.embed_precision, "batch_size": s.batch_size,
                                                      "gpu_batch_size": s.gpu_batch_size},
                        batch_size=per_call, batch_format="numpy", compute=compute,
                        **({"num_gpus": 1} if gpus else {"num_cpus": 1}))
    ds.context.execution_options.preserve_order = True  # a file's chunks reach the writer in order
    ds.context.enable_progress_bars = False  # the driver shows its own progress
    ds.context.print_on_execution_start = False
    try:
        for row in ds.iter_rows():
            yield pickle.loads(row["piece"])
    except ray.exceptions.RayError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RagError(f"the Ray cluster failed ({first}); what was committed stays: run the same rag index "
                       "again to finish") from error


def _write(index, pieces, jobs: list[Job], progress, report: IngestReport, writer: ingest.Writer) -> None:
    """Gather each file's pieces into parts of about BATCH_CHUNKS chunks (whole documents), give them
    the stored vectors they kept, check them and hand them to the writer."""
    s = index.settings
    dim = index.store.manifest().get("dim") or index.embedder.dim
    held, documents, count, first, files, since = {}, [], 0, True, 0, 0
    places, actors = {"loaded": Counter(), "embedded": Counter()}, Counter()

    def put(job: Job, last: bool, retry: bool = False) -> None:
        digest = "" if retry else job.digest  # no hash recorded: the next run reads the file again (OCR to come)
        part = ingest.Part(job.abspath, documents[0].document.source, digest, job.size, documents, first, last)
        reason = ingest.check(EmbeddedFile(path=job.abspath, source=part.source, hash=job.digest, size=job.size,
                                           documents=documents, model=s.model, chunk_tokens=s.chunk_tokens,
                                           overlap_tokens=s.overlap_tokens, chunker=CHUNKER_VERSION), dim)
        if reason:
            raise RagError(f"the Ray cluster sent back {job.path} failing the index's checks ({reason}); give "
                           "every node the same model and library versions")
        writer.put(part)

    for p in pieces:
        job = jobs[p.seq]
        for stage, node in zip(places, p.nodes):
            places[stage][node] += 1
        actors[p.actor] += 1
        if p.kind:
            writer.kinds.add(p.kind)
        if p.prefetch:  # before the file's first part is written, while its old version is stored
            held = index.store.vectors_for(p.prefetch, dim)
        if p.document is not None:
            if count >= ingest.BATCH_CHUNKS:
                put(job, last=False)
                documents, count, first = [], 0, False
            documents.append(EmbeddedDocument(document=p.document, chunks=[], vectors=[], sentence_vectors=[]))
        if p.chunk is not None:
            vector, sentence_vectors = held[p.hash] if p.reuse else (p.vector, p.sentence_vectors)
            documents[-1].chunks.append(p.chunk)
            documents[-1].vectors.append(vector)
            documents[-1].sentence_vectors.append(sentence_vectors)
            count += 1
            report.embedded += p.embedded
            since += 1
        if p.last:
            report.failed += [DocumentError(job.path, reason, line, retry) for reason, line, retry in p.failed]
            if documents:
                put(job, last=True, retry=any(retry for *_, retry in p.failed))
            held, documents, count, first = {}, [], 0, True
            files += 1
            progress("cluster", files, len(jobs))
        if p.last or since >= PROGRESS_EVERY:
            progress("embedding", report.embedded, report.embedded)
            since = 0
    report.cluster = {**{stage: dict(nodes) for stage, nodes in places.items()}, "actors": len(actors)}


def _load(row, *, tokens, options: LoadOptions, chunk_tokens: int, overlap_tokens: int, model: str):
    """Ray task (flat_map): one changed file's bytes into Pieces, its chunks then its closing row."""
    import ray

    job: Job = pickle.loads(row["job"])
    node = ray.get_runtime_context().get_node_id()
    data = ray.get(row["data"])
    try:
        part, failed = ingest.load_part(Path(job.load_path), Path(job.root), job.abspath, job.digest, data, options,
                                        tokens, chunk_tokens, overlap_tokens)
        failed = [(f.reason, f.line, f.retry) for f in failed]
    except Exception as error:  # what this worker lacks (a library, memory) fails this file, not the run
        part, failed = None, [(f"failed on Ray node {node}: {type(error).__name__}: {error}", None, False)]
    chunked = [(doc, [(c, ingest.embed_hash(model, c)) for c in chunks]) for doc, chunks in (part.documents if part else [])]
    kept = {h for _, chunks in chunked for _, h in chunks} & job.old
    prefetch = kept
    for doc, chunks in chunked:
        for i, (c, h) in enumerate(chunks):
            yield {"piece": pickle.dumps(Piece(seq=job.seq, document=doc if i == 0 else None, chunk=c, hash=h,
                                               reuse=h in kept, prefetch=prefetch, nodes=[node]))}
            prefetch = set()
    yield {"piece": pickle.dumps(Piece(seq=job.seq, last=True, failed=failed, nodes=[node]))}


class Embed:
    """Ray actor (map_batches): the model loaded once, on the GPU Ray gave the actor if it has one."""

    def __init__(self, model: str, backend: str, precision: str, batch_size: int, gpu_batch_size: int):
        import ray
        import torch

        from .embed import make_embedder

        gpu = torch.cuda.is_available()  # Ray shows an actor only the GPUs it reserved for it
        self.embedder = make_embedder(model, backend, precision, device="cuda" if gpu else "cpu")
        self.batch_size = gpu_batch_size if gpu else batch_size
        self.node, self.actor = ray.get_runtime_context().get_node_id(), ray.get_runtime_context().get_actor_id()

    def __call__(self, batch: dict) -> dict:
        pieces = [pickle.loads(p) for p in batch["piece"]]
        todo = [p for p in pieces if p.chunk is not None and not p.reuse]
        texts = {p.hash: p.chunk for p in todo}  # a text that recurs is embedded once
        order = sorted(texts.items(), key=lambda item: (-len(item[1].embed_text), item[0]))  # less padding
        vectors, sentence_vectors = self.embedder.encode_with_spans(
            [c.embed_text for _, c in order], [c.embed_spans for _, c in order], self.batch_size)
        done = {h: (v, sv) for (h, _), v, sv in zip(order, vectors, sentence_vectors)}
        for p in todo:
            p.vector, p.sentence_vectors = done[p.hash]
            p.embedded = texts.pop(p.hash, None) is not None
            p.kind = vector_kind(self.embedder.precision)
        for p in pieces:
            p.nodes.append(self.node)
            p.actor = self.actor
        return {"piece": np.array([pickle.dumps(p) for p in pieces], dtype=object)}
