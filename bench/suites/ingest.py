"""Ingestion throughput through the real Index.add, beside a plain SentenceTransformer.encode baseline.

Each phase runs in its own process so that its peak RSS is its own:

  index     SciFact corpus.jsonl into a fresh index (load, chunk, embed, SQLite + FTS5, FAISS)
  baseline  SentenceTransformer.encode over exactly the chunk texts the index embedded
  rerun     Index.add again on the unchanged corpus (a new process, as `rag index` would be)
  pdf       the real PDFs of bench-data (pdfs/ and alce/paper/ALCE.pdf) into a fresh index (scanned
            pages read by OCR, as `rag index` does)
  ocr       pages of a PDF with a text layer (ALCE.pdf) rendered to images and read by Tesseract, through
            the loader's own render and OCR functions: pages/s, and accuracy against the text layer
            (word recall, character error rate) at each resolution
  ray       with --ray: the same corpus through `rag index --ray` on a local Ray cluster (two
            embedding actors, loopback), compared with the index phase's index

    .venv/bin/python bench/suites/ingest.py              # full corpus (minutes on CPU)
    .venv/bin/python bench/suites/ingest.py --limit 50   # the first 50 docs (a quick check)
    .venv/bin/python bench/suites/ingest.py --only pdf,ocr   # those sections alone, replaced in ingest.md
    .venv/bin/python bench/suites/ingest.py --limit 300 --ray   # and through Ray (needs: pip install 'ray[data]')
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402
from bench.lib.common import CACHE, CORPUS, DATA, ROOT, cpu_seconds, dir_size, peak_rss_mib, table  # noqa: E402

PDF_PATHS = [DATA / "pdfs", DATA / "alce" / "paper" / "ALCE.pdf"]
OCR_PDF = DATA / "alce" / "paper" / "ALCE.pdf"  # a typeset paper: two columns, tables, small print
OCR_PAGES = 6  # its first pages: enough for a stable rate and accuracy at ~2 s a page
OCR_DPIS = (200, 300)  # the default (rag/config.py) beside a cheaper one
PDF_HEADING = "### PDFs"
OCR_HEADING = "### OCR of rendered pages"
WORK = CACHE / "ingest"


def corpus_for(limit):
    return common.write_slice(CACHE / f"corpus-n{limit}" / "corpus.jsonl", limit) if limit else CORPUS


# -- phases (each in its own process) ---------------------------------------------------------------

def phase_index(limit) -> dict:
    from rag.embed import get_embedder
    from rag.index import Index

    s = common.settings()
    target = WORK / "scifact"
    shutil.rmtree(target, ignore_errors=True)
    t = time.perf_counter()
    engine = get_embedder(s.model).name
    load = time.perf_counter() - t
    index = Index.open(target, s)
    cpu = cpu_seconds()
    report = index.add([corpus_for(limit)], prune=False)
    cpu = cpu_seconds() - cpu
    counts = index.store.counts()
    index.close()
    return {"model_load_s": load, "seconds": report.seconds, "cpu_s": cpu, "chunks": report.chunks, "embedded": report.embedded,
            "docs": counts["documents"], "failed": len(report.failed), "size_bytes": dir_size(target),
            "peak_rss_mib": peak_rss_mib(), "engine": engine}


def phase_baseline(limit) -> dict:
    import os

    from rag.embed import resolve_model
    from rag.index import Index

    s = common.settings()
    index = Index.open(WORK / "scifact", s, create=False)
    _, texts = common.chunk_texts(index)
    index.close()
    path = resolve_model(s.model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    load = time.perf_counter() - t
    t, cpu = time.perf_counter(), cpu_seconds()
    model.encode(texts, batch_size=s.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return {"model_load_s": load, "seconds": time.perf_counter() - t, "cpu_s": cpu_seconds() - cpu, "chunks": len(texts),
            "peak_rss_mib": peak_rss_mib()}


def phase_rerun(limit) -> dict:
    from rag.index import Index

    t, cpu = time.perf_counter(), cpu_seconds()
    index = Index.open(WORK / "scifact", common.settings(), create=False)
    report = index.add([corpus_for(limit)], prune=False)
    index.close()
    return {"seconds": time.perf_counter() - t, "cpu_s": cpu_seconds() - cpu, "add_seconds": report.seconds, "embedded": report.embedded,
            "chunks": report.chunks, "unchanged": report.unchanged, "peak_rss_mib": peak_rss_mib()}


def phase_pdf(limit) -> dict:
    from rag.embed import get_embedder
    from rag.index import Index
    from rag.load import LoadOptions, find_files, load_file

    s = common.settings()
    target = WORK / "pdf"
    shutil.rmtree(target, ignore_errors=True)
    get_embedder(s.model)
    paths = [p for p in PDF_PATHS if p.exists()]
    files = [f for f, _ in find_files(paths).files if f.suffix.lower() == ".pdf"]
    index = Index.open(target, s)
    cpu = cpu_seconds(children=True)
    report = index.add(paths, prune=False)
    cpu = cpu_seconds(children=True) - cpu
    counts = index.store.counts()
    ocr_pages = sum(d["ocr"] for d in index.store.documents())
    index.close()
    # the extraction share alone (pypdf, without OCR), files already in the page cache
    t, cpu_extract = time.perf_counter(), cpu_seconds()
    pages = 0
    for f in files:
        try:
            pages += sum(1 for d in load_file(f, f.parent, LoadOptions(ocr=False)) if not hasattr(d, "reason"))
        except Exception:
            pass
    extract, cpu_extract = time.perf_counter() - t, cpu_seconds() - cpu_extract
    return {"seconds": report.seconds, "cpu_s": cpu, "extract_cpu_s": cpu_extract, "files": len(files), "pages": counts["pages"], "chunks": report.chunks,
            "failed": len(report.failed), "extract_s": extract, "extract_pages": pages, "ocr_pages": ocr_pages,
            "size_bytes": dir_size(target), "peak_rss_mib": peak_rss_mib()}


def phase_ocr(limit) -> dict:
    """Render, OCR and score OCR_PAGES pages of OCR_PDF at each of OCR_DPIS."""
    from pypdf import PdfReader

    from rag.load import ocr
    from rag.load.pdf import clean_pdf_text

    data = OCR_PDF.read_bytes()
    pages = list(range(1, min(OCR_PAGES, len(PdfReader(OCR_PDF).pages)) + 1))
    layers = [clean_pdf_text(PdfReader(OCR_PDF).pages[n - 1].extract_text()) for n in pages]
    runs = []
    for dpi in OCR_DPIS:
        run = {"dpi": dpi, "pages": len(pages), "render_s": 0.0, "ocr_s": 0.0, "ocr_cpu_s": 0.0, "words": 0,
               "found": 0, "chars": 0, "edits": 0}
        rendered = ocr.render_pdf_pages(data, None, pages, dpi)
        for layer in layers:
            t = time.perf_counter()
            _, image, used = next(rendered)
            run["render_s"] += time.perf_counter() - t
            t, cpu = time.perf_counter(), cpu_seconds(children=True)
            page = ocr.read_image(image, language="eng", dpi=used)
            run["ocr_s"] += time.perf_counter() - t
            run["ocr_cpu_s"] += cpu_seconds(children=True) - cpu
            expected, found = layer.lower().split(), page.text.lower().split()
            run["words"] += len(expected)
            run["found"] += word_hits(expected, found)
            reference, read = " ".join(layer.split()), " ".join(page.text.split())
            run["chars"] += len(reference)
            run["edits"] += edit_distance(reference, read)
        runs.append(run)
    return {"file": OCR_PDF.name, "runs": runs, "peak_rss_mib": peak_rss_mib()}


def word_hits(expected: list[str], found: list[str]) -> int:
    """How many of the expected words OCR found, each as often as it occurs (order aside)."""
    from collections import Counter

    have = Counter(found)
    return sum(min(n, have[w]) for w, n in Counter(expected).items())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, a row at a time in numpy: the insertions within a row are a running
    minimum of (value - column) + column, so no Python loop over the columns."""
    import numpy as np

    columns = np.arange(len(b) + 1)
    codes = np.array([ord(c) for c in b], dtype=np.int64)
    row = columns.copy()
    for i, char in enumerate(a, 1):
        best = np.empty_like(row)
        best[0] = i
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + (codes != ord(char)))
        row = np.minimum.accumulate(best - columns) + columns
    return int(row[-1])


def phase_ray(limit) -> dict:
    """Index.add through a local Ray cluster started here: 3 logical CPUs on the 2 cores (two embedding
    actors and a load task at a time), bound to loopback (127.0.0.2: Ray swaps 127.0.0.1 in an address
    for the machine's network address)."""
    import logging

    import numpy as np
    import ray

    from rag import distributed
    from rag.embed import get_embedder
    from rag.index import Index

    s = common.settings(ray_address="auto", ray_workers=2)  # joins the cluster ray.init starts below
    target = WORK / "scifact-ray"
    shutil.rmtree(target, ignore_errors=True)
    t = time.perf_counter()
    get_embedder(s.model)  # the driver's copy (its tokenizer chunks on the workers), as the index phase loads it
    load = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, _node_ip_address="127.0.0.2", logging_level=logging.ERROR)
    start = time.perf_counter() - t
    first, results = {}, distributed._results

    def timed(*args):  # when the first embedded chunk reaches the driver
        for piece in results(*args):
            first.setdefault("at", time.perf_counter())
            yield piece

    distributed._results = timed
    index = Index.open(target, s)
    t, cpu = time.perf_counter(), cpu_seconds()
    report = index.add([corpus_for(limit)], prune=False)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - cpu
    cluster_cpu = _descendants_cpu_seconds()  # before shutdown: the workers, actors, raylet and GCS still run
    ray.shutdown()
    # the same index as the in-process run of the index phase?
    local = Index.open(WORK / "scifact", s.replace(ray_address=""), create=False)
    key = [(h.source, h.doc_id, h.page, h.start, h.end, h.sentences) for h in local.store.chunks()]
    got = [(h.source, h.doc_id, h.page, h.start, h.end, h.sentences) for h in index.store.chunks()]
    dim = local.store.manifest()["dim"]
    a = index.store.vectors_of(index.store.chunk_ids(), dim)
    b = local.store.vectors_of(local.store.chunk_ids(), dim)
    cosine = float(np.min(np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))) \
        if got == key else float("nan")
    sentences = sum(len(h.sentences) for h in index.store.chunks())
    counts = index.store.counts()
    index.close()
    return {"model_load_s": load, "start_s": start, "seconds": wall, "add_seconds": report.seconds, "cpu_s": cpu,
            "cluster_cpu_s": cluster_cpu, "first_s": first.get("at", t) - t, "chunks": report.chunks,
            "embedded": report.embedded, "docs": counts["documents"], "failed": len(report.failed),
            "same_chunks": got == key, "min_cosine": cosine, "bytes_in": corpus_for(limit).stat().st_size,
            "bytes_back": (report.chunks + sentences) * dim * 4, "peak_rss_mib": peak_rss_mib()}


def _descendants_cpu_seconds() -> float:
    """User + system CPU of this process's live descendants (and of the children they reaped), from /proc."""
    import os

    parent, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    mine, grew = {os.getpid()}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in mine} - mine
        mine |= more
        grew = bool(more)
    return sum(times[p] for p in mine - {os.getpid()}) / os.sysconf("SC_CLK_TCK")


PHASES = {"index": phase_index, "baseline": phase_baseline, "rerun": phase_rerun, "pdf": phase_pdf, "ocr": phase_ocr,
          "ray": phase_ray}


def run_phase(name, limit) -> dict:
    cmd = [sys.executable, __file__, "--phase", name] + (["--limit", str(limit)] if limit else [])
    print(f"phase {name}...", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {name} failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = __import__("os").getloadavg()[0]  # 1-minute load average as the phase ended
    print(f"  {result}", flush=True)
    return result


# -- report -------------------------------------------------------------------------------------------

def report(limit, with_ray=False) -> str:
    s = common.settings()
    idx = run_phase("index", limit)
    on_ray = run_phase("ray", limit) if with_ray else None
    base = run_phase("baseline", limit)
    rerun = run_phase("rerun", limit)
    pdf = run_phase("pdf", limit) if any(p.exists() for p in PDF_PATHS) else None
    ocr = run_phase("ocr", limit) if OCR_PDF.exists() else None

    # hand the full default build to bench/suites/retrieval.py instead of embedding the corpus twice
    if not limit:
        cached = CACHE / common.index_key(s)
        if not (cached / ".complete").exists():
            shutil.rmtree(cached, ignore_errors=True)
            shutil.move(str(WORK / "scifact"), str(cached))
            (cached / ".complete").write_text(json.dumps({"seconds": idx["seconds"], "chunks": idx["chunks"]}))

    n = idx["seconds"]
    rows = [
        ["Index.add (load + chunk + embed + SQLite/FTS5 + FAISS)", f"{idx['docs']:,}", f"{idx['chunks']:,}",
         f"{n:.1f}", f"{idx['cpu_s']:.1f}", f"{idx['chunks'] / n:.1f}", f"{idx['docs'] / n:.1f}",
         f"{idx['peak_rss_mib']:.0f}", f"{idx['load']:.1f}"],
        ["baseline: SentenceTransformer.encode, same chunk texts", "", f"{base['chunks']:,}", f"{base['seconds']:.1f}",
         f"{base['cpu_s']:.1f}", f"{base['chunks'] / base['seconds']:.1f}", f"{idx['docs'] / base['seconds']:.1f}",
         f"{base['peak_rss_mib']:.0f}", f"{base['load']:.1f}"],
        ["re-run on the unchanged corpus (new process)", f"{idx['docs']:,}", f"{rerun['embedded']} embedded",
         f"{rerun['seconds']:.2f}", f"{rerun['cpu_s']:.2f}", "", "", f"{rerun['peak_rss_mib']:.0f}",
         f"{rerun['load']:.1f}"],
    ]
    out = [
        "## Ingestion throughput\n",
        common.machine_info(),
        f"- SciFact corpus.jsonl{f' (first {limit} docs only)' if limit else ''}, model {s.model}, chunk_tokens "
        f"{s.chunk_tokens}, overlap {s.overlap_tokens}, batch {s.batch_size}, CPU only; the embedding engine `auto` "
        f"chose on this CPU ({common.cpu_line()}): {idx.get('engine', '?')}. Model load (not in the "
        f"times below): {idx['model_load_s']:.1f} s through rag, {base['model_load_s']:.1f} s plain. "
        f"CPU s = user + system time of the process (all threads), steadier than wall time on a shared machine.\n",
        table(["run", "docs", "chunks", "wall s", "CPU s", "chunks/s", "docs/s", "peak RSS MiB", "load at end"],
              rows) + "\n",
        f"- Against the bare model: {base['seconds'] / n:.2f}x its throughput by wall time, {base['cpu_s'] / idx['cpu_s']:.2f}x "
        f"by CPU (trust the CPU figure when the load columns differ: wall time follows the other workers), with all "
        f"the work on top of encoding included: sentence splitting and token counting, hashing, a vector for every "
        f"sentence (pooled from the chunk's token vectors: no second forward pass), SQLite and FTS5 writes and the "
        f"FAISS index. The difference is the embedding engine (rag/embed/, docs/ENGINES.md, bench/results/embed-*.md).",
        f"- Index size on disk: {idx['size_bytes'] / 1e6:.1f} MB ({idx['size_bytes'] / max(idx['chunks'], 1) / 1024:.1f} KiB "
        f"per chunk: text, int8 vector and sentence vectors in SQLite, FTS5, the FAISS file).",
        f"- Re-run: {rerun['seconds']:.2f} s ({rerun['seconds'] / n * 100:.2f}% of the first run), "
        f"{rerun['embedded']} chunks embedded, model not loaded: unchanged files cost a hash.",
    ]
    if on_ray:
        out += ["", _ray_section(idx, on_ray)]
    if pdf:
        out += ["", pdf_section(pdf)]
    if ocr:
        out += ["", ocr_section(ocr)]
    return "\n".join(out)


def pdf_section(pdf: dict) -> str:
    return "\n".join([
        PDF_HEADING + "\n",
        f"- Run {common.today()}, load average as the phase ended {pdf.get('load', float('nan')):.1f} (wall times "
        "follow the other workers on the 2 cores; CPU s is steadier).\n",
        table(["PDFs (pdfs/ + ALCE.pdf)", "files", "pages", "of which OCR", "chunks", "wall s", "CPU s", "pages/s",
               "failed files", "peak RSS MiB"],
              [["Index.add: load (+ OCR) + chunk + embed + store", pdf["files"], pdf["pages"],
                pdf.get("ocr_pages", 0), pdf["chunks"], f"{pdf['seconds']:.1f}", f"{pdf['cpu_s']:.1f}",
                f"{pdf['pages'] / pdf['seconds']:.1f}", pdf["failed"], f"{pdf['peak_rss_mib']:.0f}"],
               ["of which text extraction alone (pypdf, no OCR)", "", pdf["extract_pages"], "", "",
                f"{pdf['extract_s']:.1f}", f"{pdf['extract_cpu_s']:.1f}",
                f"{pdf['extract_pages'] / max(pdf['extract_s'], 1e-9):.1f}", "", ""]]) + "\n",
        "- Pages without a text layer (scans) or with garbled text are rendered and read by Tesseract (CPU s "
        "includes its processes). Failed files are the encrypted test PDFs opened without their passwords, "
        "pages OCR finds no words on (drawings, blank or tiny images), and files broken on purpose (reported, "
        "not fatal).",
    ])


def ocr_section(result: dict) -> str:
    rows = []
    for r in result["runs"]:
        n = r["pages"]
        rows.append([r["dpi"], n, f"{r['words']:,}", f"{r['render_s'] / n:.2f}", f"{r['ocr_s'] / n:.2f}",
                     f"{r['ocr_cpu_s'] / n:.2f}", f"{n / (r['render_s'] + r['ocr_s']):.2f}",
                     f"{n / (r['render_s'] + r['ocr_cpu_s']):.2f}",
                     f"{r['found'] / max(r['words'], 1):.3f}", f"{r['edits'] / max(r['chars'], 1):.3f}"])
    return "\n".join([
        OCR_HEADING + "\n",
        f"- Run {common.today()}, load average as the phase ended {result.get('load', float('nan')):.1f}; pages 1-{result['runs'][0]['pages']} of "
        f"{result['file']} (a two-column paper with tables) rendered by pdfium and read by Tesseract "
        f"({_tesseract_version()}, one thread), through the loader's own functions (rag/load/ocr.py). The truth is "
        "the same pages' text layer.\n",
        table(["dpi", "pages", "words in the text layer", "render s/page", "OCR wall s/page", "OCR CPU s/page",
               "pages/s (render + OCR)", "pages/s on one free core (from CPU s)", "word recall", "CER"], rows) + "\n",
        "- Word recall: the share of the text layer's words (lower-cased, split at spaces, each counted as often as "
        "it occurs) that OCR's words hold too, order aside. CER: character edit distance from the text layer to the "
        "OCR text (both with whitespace collapsed) over the text layer's length; it also counts places where OCR "
        "reads the page in another order than the text layer stores it (figure labels, footnotes), so it is an "
        "upper bound on misread characters.",
    ])


def _tesseract_version() -> str:
    try:
        out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.split("\n", 1)[0].strip()
    except (OSError, subprocess.SubprocessError):
        return "tesseract"


def update_sections(names: list[str]) -> None:
    """--only pdf,ocr: run those phases and put their sections in place of the old ones in ingest.md."""
    path = common.RESULTS / "ingest.md"
    text = path.read_text().rstrip() if path.exists() else "## Ingestion throughput"
    for name in names:
        heading, render = SECTIONS[name]
        new = render(run_phase(name, None))
        start = text.find(heading)
        if start < 0:
            text += "\n\n" + new
            continue
        end = text.find("\n### ", start + len(heading))
        text = text[:start] + new + ("\n" + text[end:] if end >= 0 else "")
    common.write_result("ingest.md", text)


SECTIONS = {"pdf": (PDF_HEADING, pdf_section), "ocr": (OCR_HEADING, ocr_section)}


def _ray_section(idx, r) -> str:
    n = r["seconds"]
    rows = [
        ["Index.add in this process (the index phase above)", f"{idx['chunks']:,}", f"{idx['seconds']:.1f}",
         f"{idx['cpu_s']:.1f}", f"{idx['cpu_s']:.1f}", f"{idx['chunks'] / idx['cpu_s']:.1f}", f"{idx['load']:.1f}"],
        ["Index.add --ray: local cluster, 2 embedding actors", f"{r['chunks']:,}", f"{n:.1f}", f"{r['cpu_s']:.1f}",
         f"{r['cluster_cpu_s'] + r['cpu_s']:.1f}", f"{r['chunks'] / (r['cluster_cpu_s'] + r['cpu_s']):.1f}",
         f"{r['load']:.1f}"],
    ]
    same = (f"the same chunks and offsets as the in-process index, vectors at cosine >= {r['min_cosine']:.7f}"
            if r["same_chunks"] else "NOT the same chunks as the in-process index")
    total = r["cluster_cpu_s"] + r["cpu_s"]
    per_chunk = r["cpu_s"] / max(r["chunks"], 1)
    return "\n".join([
        "### Through Ray (`rag index --ray`)\n",
        table(["run", "chunks", "wall s", "driver CPU s", "all CPU s", "chunks per CPU s", "load at end"], rows) + "\n",
        f"- {same}; {r['failed']} files failed.",
        f"- CPU is the fair comparison on this shared machine: the Ray run spent {total / idx['cpu_s']:.2f}x the "
        f"in-process CPU for the same chunks (all CPU s: the driver plus every Ray process of the run, workers, "
        f"actors, raylet and GCS, read from /proc before shutdown). Wall time follows the share of the 2 contended "
        f"cores each run gets beside the other workers (the load column), so neither wall figure measures the method: "
        f"2 cores cannot do the model's work faster by splitting it, and the CPU column says what Ray costs.",
        f"- Where the extra goes: starting the cluster {r['start_s']:.1f} s and the driver's own model load "
        f"{r['model_load_s']:.1f} s (its tokenizer chunks on the workers; neither is in the times above); two "
        f"actor processes importing torch and loading the model, each once, and Ray's own processes; the first "
        f"embedded chunk reached the driver {r['first_s']:.1f} s after the run began. Serialization: each chunk is "
        f"pickled with its text and offsets into a row, and back with its vectors. Through the object store: "
        f"{r['bytes_in'] / 1e6:.2f} MB of file bytes out, about {r['bytes_back'] / 1e6:.1f} MB of float32 vectors "
        f"(chunks and sentences) back. The driver's CPU, {r['cpu_s']:.1f} s, is hashing, putting the bytes, "
        f"unpickling, checks and the SQLite, FTS5 and FAISS writes.",
        "- What scales with more nodes is the model's forward pass, nearly all of the work: each actor embeds its "
        "own batches of chunks while the driver only hashes and writes, so throughput grows with actors (one per "
        f"CPU, or one per GPU with {common.settings().gpu_batch_size} chunks a forward pass) until the driver is the "
        f"limit: {per_chunk * 1000:.1f} ms of its CPU a chunk in this small run (its fixed costs included), a bound "
        f"of about {1 / max(per_chunk, 1e-9):,.0f} chunks/s for one driver. Loading and chunking (PDF parsing above all) spread over the nodes' CPUs the same way. "
        "The fixed costs (start-up, a model load per actor) are paid once a run: worth it for corpora that take "
        "minutes, not for a folder of notes.",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, help="only the first N docs of the corpus")
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--out", default="ingest.md")
    p.add_argument("--only", help="comma-separated sections to re-run alone (pdf, ocr), replaced in "
                                   "bench/results/ingest.md")
    p.add_argument("--ray", action="store_true", help="also index through a local Ray cluster (pip install 'ray[data]')")
    args = p.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SECTIONS]
        if unknown:
            p.error(f"--only takes {', '.join(SECTIONS)}, not {', '.join(unknown)}")
        common.require(*PDF_PATHS)
        update_sections(names)
        return 0
    common.require(CORPUS)
    if args.phase:
        result = PHASES[args.phase](args.limit)
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / f"{args.phase}-n{args.limit or 'all'}.json").write_text(json.dumps(result))  # kept for a look later
        print(json.dumps(result))
        return 0
    common.write_result(args.out, report(args.limit, with_ray=args.ray))
    return 0


if __name__ == "__main__":
    sys.exit(main())
