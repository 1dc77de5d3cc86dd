"""The API under load: many clients asking through /v1/chat/completions at once, then the same while an upload
is being indexed.

`rag serve` runs as its own process on a loopback port over SciFact abstracts (the first --docs records of
../shared/bench-data/scifact as one JSONL file); the clients, in this process, each ask SciFact's claims one after
another (non-streaming, OpenAI's request shape) for a fixed time. Three phases:

  baseline   1 client for --baseline-seconds: a question's latency with nobody else asking
  steady     --clients clients for --seconds
  upload     --clients clients while POST /v1/kbs/default/documents adds --upload-docs more records (one JSONL
             file) and the server indexes them; the phase lasts as long as that upload does

Per phase: answers, answers a second, latency p50/p95/p99, errors (any status but 200, or no answer: 0 expected),
the server's CPU seconds per answer and its resident memory (psutil, sampled every 0.5 s). Every citation of
every answer is checked against the records it quotes (text == record text[start:end]): while the upload writes,
answers must keep coming from a consistent committed index.

    .venv/bin/python bench/suites/load.py            # writes bench/results/load.md (about 15 minutes on 2 busy cores)
    .venv/bin/python bench/suites/load.py --seconds 30 --baseline-seconds 10 --upload-docs 200   # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402


def records(limit_from: int, limit_to: int) -> list[dict]:
    with open(common.CORPUS, encoding="utf-8") as f:
        return [json.loads(line) for n, line in enumerate(f) if limit_from <= n < limit_to]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


class Sampler:
    """The server process's RSS every 0.5 s, and its CPU time on demand."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(0.5):
            try:
                self.last = self.process.memory_info().rss
            except Exception:  # noqa: BLE001 - the server has gone: the phase reports its errors
                return
            self.peak = max(self.peak, self.last)

    def cpu(self) -> float:
        t = self.process.cpu_times()
        return t.user + t.system

    def reset_peak(self):
        self.peak = self.last = self.process.memory_info().rss

    def stop(self):
        self._stop.set()


async def client(http, questions: list[str], offset: int, stop: asyncio.Event, out: dict, texts: dict):
    """Ask in turn until `stop`: each latency, each error, each citation checked against its record."""
    n = offset
    while not stop.is_set():
        question = questions[n % len(questions)]
        n += 1
        started = time.perf_counter()
        try:
            r = await http.post("/v1/chat/completions", json={"model": "rag", "messages": [
                {"role": "user", "content": question}]})
            body = r.json()
            extra = body["rag"] if r.status_code == 200 else None
        except Exception as e:  # noqa: BLE001 - counted, never stops the run
            out["errors"].append(f"{type(e).__name__}: {e}")
            continue
        if extra is None or not body["choices"][0]["message"]["content"]:
            out["errors"].append(f"{r.status_code}: {r.text[:200]}")
            continue
        out["latency"].append(time.perf_counter() - started)
        out["answered"] += not extra["abstained"]
        for c in extra["citations"]:
            text = texts.get(c["doc_id"])
            out["citations"] += 1
            out["inexact"] += text is None or text[c["start"]:c["end"]] != c["text"]
            out["uploaded"] += c["doc_id"] in out["new_ids"]


async def phase(url: str, clients: int, questions: list[str], texts: dict, sampler: Sampler, *, seconds=None,
                during=None, new_ids=frozenset()) -> dict:
    """Run `clients` clients for `seconds`, or for as long as the coroutine `during` takes."""
    import httpx

    out = {"latency": [], "errors": [], "answered": 0, "citations": 0, "inexact": 0, "uploaded": 0,
           "new_ids": new_ids}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    sampler.reset_peak()
    load_start, cpu_start, started = os.getloadavg()[0], sampler.cpu(), time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        tasks = [asyncio.create_task(client(http, questions, i * 97, stop, out, texts)) for i in range(clients)]
        if during is not None:
            out["during"] = await during(http)
        else:
            await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    out.update(seconds=time.perf_counter() - started, cpu=sampler.cpu() - cpu_start, peak=sampler.peak,
               end=sampler.last, load=(load_start, os.getloadavg()[0]), clients=clients)
    return out


def row(name: str, r: dict) -> list:
    lat = [x * 1000 for x in r["latency"]]
    n = len(lat)
    return [name, r["clients"], f"{r['seconds']:.0f}", n, f"{n / r['seconds']:.2f}",
            *(f"{common.percentile(lat, p):.0f}" for p in (50, 95, 99)), len(r["errors"]),
            f"{r['cpu'] / max(n, 1):.3f}", f"{r['peak'] / 2**20:.0f}", f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=180, help="the steady phase")
    p.add_argument("--baseline-seconds", type=float, default=45)
    p.add_argument("--docs", type=int, default=600, help="SciFact records indexed before the server starts")
    p.add_argument("--upload-docs", type=int, default=300, help="records uploaded during the last phase")
    args = p.parse_args()
    common.require(common.CORPUS, common.QUERIES)
    import psutil  # noqa: F401 - fail now, not after the index is built

    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    corpus, index = work / "corpus", work / "index"
    corpus.mkdir()
    before, upload = records(0, args.docs), records(args.docs, args.docs + args.upload_docs)
    write_jsonl(corpus / "scifact-a.jsonl", before)
    write_jsonl(work / "scifact-b.jsonl", upload)
    texts = {r["_id"]: r["text"] for r in before + upload}
    questions = list(common.load_queries().values())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))}
    env.update(PYTHONPATH=str(common.ROOT), RAG_QUIET="1")
    rag = [sys.executable, "-m", "rag.cli"]
    t = time.perf_counter()
    subprocess.run(rag + ["index", "--index", str(index), str(corpus)], env=env, check=True, cwd=common.ROOT)
    index_seconds = time.perf_counter() - t
    port = free_port()
    log = open(work / "server.log", "w")
    server = subprocess.Popen(rag + ["serve", "--index", str(index), "--corpus", str(corpus), "--port", str(port)],
                              env=env, cwd=common.ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        sampler = Sampler(server.pid)
        idle_rss = sampler.process.memory_info().rss
        results = {}

        async def run():
            results["baseline"] = await phase(url, 1, questions, texts, sampler, seconds=args.baseline_seconds)
            results["steady"] = await phase(url, args.clients, questions, texts, sampler, seconds=args.seconds)

            async def add(http):
                started = time.perf_counter()
                files = {"files": ("scifact-b.jsonl", (work / "scifact-b.jsonl").read_bytes(), "application/jsonl")}
                r = await http.post("/v1/kbs/default/documents", files=files)
                return {"status": r.status_code, "report": r.json(), "seconds": time.perf_counter() - started}

            results["upload"] = await phase(url, args.clients, questions, texts, sampler, during=add,
                                            new_ids=frozenset(r["_id"] for r in upload))

        asyncio.run(run())
        sampler.stop()
    finally:
        server.terminate()
        server.wait(timeout=60)
    report(args, results, idle_rss, index_seconds, len(questions))
    return 0


def free_port() -> int:
    """A free loopback port (the server binds it a moment later)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen) -> None:
    """Until the API answers a question (the start-up pass over the corpus is over by then)."""
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.post(url + "/v1/ask", json={"question": "ready?"}, timeout=600).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit("the server never answered")


def report(args, results: dict, idle_rss: int, index_seconds: float, n_questions: int) -> None:
    up = results["upload"]["during"]
    header = ["phase", "clients", "seconds", "answers", "answers/s", "p50 ms", "p95 ms", "p99 ms", "errors",
              "server CPU s / answer", "server RSS peak MiB", "load avg start / end"]
    checks = [[name, r["citations"], r["inexact"], f"{r['answered'] / max(len(r['latency']), 1):.1%}",
               r["uploaded"]] for name, r in results.items()]
    errors = [e for r in results.values() for e in r["errors"]][:5]
    text = f"""# The API under load

{common.machine_info(("httpx", "fastapi", "uvicorn"))}- `rag serve` in its own process on 127.0.0.1; the clients in another, each asking SciFact's {n_questions} claims in
  turn through `POST /v1/chat/completions` (model `rag`, not streamed, one request at a time per client). The server
  works on at most 4 questions at once (rag/api/service.py); the others wait for their turn.
- Index: the first {args.docs} SciFact abstracts as one JSONL file (`rag index`: {index_seconds:.0f} s); the upload phase
  adds the next {args.upload_docs} as a second file through `POST /v1/kbs/default/documents`.
- The server's resident memory when idle, before the first question: {idle_rss / 2**20:.0f} MiB.

{common.table(header, [row(name, r) for name, r in results.items()])}

Baseline (same run): one client alone. The upload phase lasts as long as the upload request did: {up['seconds']:.0f} s,
status {up['status']}, {len(up['report'].get('added', []))} file added, {up['report'].get('chunks', 0)} chunks written
(its own indexing, with {args.clients} clients asking meanwhile).

Every citation checked against the record it quotes (`text == record text[start:end]`), and how many answers
were given (the rest abstained):

{common.table(["phase", "citations", "not exact", "answered", "citing uploaded records"], checks)}

{"Errors (first 5): " + "; ".join(errors) if errors else "No errors: every request got a 200 and an answer or an abstention."}
Answers kept coming while the upload was indexed, from the last committed state of the index (it commits in
batches, so records of the upload became citable batch by batch before the request returned).
"""
    path = common.write_result("load.md", text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
