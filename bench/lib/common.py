"""Helpers shared by the benchmarks: data paths, machine facts, cached SciFact indexes, IR metrics.

The benchmark data lives outside the repo (../shared/bench-data, CC BY-NC for SciFact) and is never
copied in. Built indexes are cached under bench/.cache/, keyed by the settings that change them.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DATA = Path(os.environ.get("RAG_BENCH_DATA", ROOT.parent / "shared" / "bench-data"))
SCIFACT = DATA / "scifact" / "beir"
CORPUS = SCIFACT / "corpus.jsonl"
QUERIES = SCIFACT / "queries.jsonl"
REFERENCES = DATA / "reference_numbers.json"
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"


def require(*paths: Path) -> None:
    """Exit 0 with a clear message when benchmark data is missing: a bench is skipped, not failed."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print("SKIPPED: benchmark data not found: " + ", ".join(str(p) for p in missing))
        print(f"  (expected under {DATA}; set RAG_BENCH_DATA to its folder)")
        sys.exit(0)


# -- machine ----------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def cpu_line() -> str:
    """The CPU's name, its kind and the flags that decide the engine."""
    from rag.embed import cpu_flags, cpu_kind

    flags = sorted(f for f in cpu_flags() if f in DECIDING or f.startswith(("avx512", "amx")))
    return f"{cpu_model()} ({cpu_kind()}: {' '.join(flags) or 'no flags read'})"


DECIDING = {"avx", "avx2", "fma", "f16c", "avx_vnni"}


def machine_line() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB RAM"


def machine_info(libraries=("torch", "sentence_transformers", "faiss", "numpy")) -> str:
    """Markdown lines: CPU, cores, RAM, date, python and library versions."""
    from importlib import metadata

    versions = []
    for name in libraries:
        try:
            module = __import__(name)
        except ImportError:
            continue
        try:  # pypdfium2 has no __version__: its distribution's metadata names it
            version = getattr(module, "__version__", None) or metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "?"
        versions.append(f"{name} {version}")
    import sqlite3

    return (
        f"- Machine: {machine_line()}; load average at start {os.getloadavg()[0]:.1f}"
        f" (the 2 cores are shared with other workers: timings are noisy, expect +-20%)\n"
        f"- Date: {today()}; Python {platform.python_version()}, {', '.join(versions)}, SQLite {sqlite3.sqlite_version}\n"
    )


def today() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(children: bool = False) -> float:
    """CPU time of this process (user + system, all threads): less disturbed by other workers than wall time.
    children=True adds the finished child processes' (tesseract runs in one per page)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    total = r.ru_utime + r.ru_stime
    if children:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += c.ru_utime + c.ru_stime
    return total


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def write_result(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    out.write_text(text.rstrip() + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return out


def references() -> dict:
    try:
        return json.loads(REFERENCES.read_text())
    except (OSError, ValueError):
        return {}


# -- SciFact ----------------------------------------------------------------------------------

def load_queries() -> dict[str, str]:
    queries = {}
    with open(QUERIES) as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                queries[str(q["_id"])] = q["text"]
    return queries


def load_qrels(split: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels" / f"{split}.tsv") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def settings(**overrides):
    """Project defaults (rag/config.py), ignoring RAG_* variables so a run measures what ships."""
    from rag.config import Settings

    return Settings.from_env(environ={}, **overrides)


def index_key(s) -> str:
    """Cache folder name: model, chunk size, overlap, the chunker's version (a new splitter means new chunks)
    and the index format."""
    from rag.chunk import CHUNKER_VERSION
    from rag.store import FORMAT_VERSION

    model = s.model.replace("/", "_")
    engine = "" if (s.embed_backend, s.embed_precision) == ("auto", "auto") else f"-{s.embed_backend}-{s.embed_precision}"
    return f"scifact-{model}{engine}-c{s.chunk_tokens}-o{s.overlap_tokens}-v{CHUNKER_VERSION}-f{FORMAT_VERSION}"


def older_indexes(s) -> list[Path]:
    """Finished cached SciFact indexes of this model and index format built by other chunk sizes or chunker
    versions."""
    from rag.store import FORMAT_VERSION

    model = s.model.replace("/", "_")
    return sorted(p for p in CACHE.glob(f"scifact-{model}-c*-f{FORMAT_VERSION}") if (p / ".complete").exists()
                  and "-n" not in p.name[len(f"scifact-{model}"):] and p.name != index_key(s))


def cached_index(s, limit: int | None = None, log=print):
    """An Index of SciFact built with these settings, from bench/.cache when one was built before.

    A `.complete` marker is written only after a finished build, so an interrupted one is redone.
    """
    from rag.index import Index

    key = index_key(s) + (f"-n{limit}" if limit else "")
    path = CACHE / key
    done = path / ".complete"
    if not done.exists():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        corpus = CORPUS
        if limit:
            corpus = CACHE / f"corpus-n{limit}" / "corpus.jsonl"
            write_slice(corpus, limit)
        log(f"building {path.relative_to(ROOT)} (embedding the corpus; minutes on CPU)...")
        started = time.perf_counter()
        index = Index.open(path, s)
        report = index.add([corpus], prune=False)
        index.close()
        done.write_text(json.dumps({"seconds": time.perf_counter() - started, "chunks": report.chunks}))
        log(f"  built in {time.perf_counter() - started:.0f} s, {report.chunks} chunks")
    return Index.open(path, s, create=False)


def write_slice(target: Path, limit: int) -> Path:
    """The first `limit` lines of the SciFact corpus, in the cache (never in the repo)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(CORPUS) as src:
        lines = [line for _, line in zip(range(limit), src)]
    if not target.exists() or target.read_text() != "".join(lines):
        target.write_text("".join(lines))
    return target


def chunk_docs(index) -> dict[int, str]:
    """chunk id -> SciFact doc id."""
    return {c.chunk_id: c.doc_id for c in index.store.chunks()}


def chunk_texts(index) -> tuple[list[int], list[str]]:
    """(chunk ids, the text each chunk was embedded and keyword-indexed as: title, newline, text)."""
    chunks = index.store.chunks()
    return [c.chunk_id for c in chunks], [f"{c.title}\n{c.text}" if c.title else c.text for c in chunks]


# -- metrics ----------------------------------------------------------------------------------

def to_docs(ranked_chunks, chunk_doc: dict[int, str], n: int) -> list[str]:
    """Doc-level ranking: a doc scores as its best chunk, i.e. ranks at its first chunk in the list."""
    docs, seen = [], set()
    for chunk_id, _ in ranked_chunks:
        d = chunk_doc.get(chunk_id)
        if d is not None and d not in seen:
            seen.add(d)
            docs.append(d)
            if len(docs) == n:
                break
    return docs


def ndcg(ranked_docs, relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked_docs[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked_docs, relevant: dict[str, int], k: int = 100) -> float:
    return len(set(ranked_docs[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def percentile(values, p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    i = (len(values) - 1) * p / 100
    lo, hi = math.floor(i), math.ceil(i)
    return values[lo] + (values[hi] - values[lo]) * (i - lo)


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
