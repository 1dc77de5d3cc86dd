"""Answer benchmarks (issues 3 and 11): are the gold answers inside the cited spans, in few sentences; does the
answerer abstain when the documents do not say it; are follow-ups answered; how fast is ask()?

Data (bench/lib/qa_data.py): XQuAD-en, articles 0-23 tune and 24-47 report, asked of the full index, of the other
half's index (off-topic), of the answer-removed index (one paragraph per article removed, seed 11) and, each
article alone in its own index, its own questions and everyday ones it does not answer (bench/lib/everyday.py); the
SQuAD 2.0 dev-tune file (answerable and unanswerable questions over its own 301 paragraphs); the default corpus.

Answerers, on the same cached retrieval, in one run:
  shipped           what rag.ask does with the shipped settings: extract() with Settings().min_confidence,
                    replayed on the stored retrieval (checked against rag.ask itself on XQuAD)
  today's defaults  the answerer before issue 11: up to 3 sentences within 0.25 of the best, abstain when the
                    best sentence scores below 0.5
  never abstain     the shipped selection, answering everything
  top-1 chunk, top-2 sentences (XQuAD standard only): the whole first chunk; the two sentences closest to the
                    question by their stored vectors

Usage:  python bench/suites/answers.py [--no-latency] [--out bench/results/answers.md]

A deployment's own evaluation set instead: the answers rated in its chat, asked again of its knowledge bases
(bench/lib/feedback.py says what is counted); the report goes to standard output, and to --out when given:

        rag feedback export --out rated.jsonl
        python bench/suites/answers.py --feedback rated.jsonl [--index index/]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402
from bench.lib import feedback  # noqa: E402
from bench.fit import fit_answerability as fa  # noqa: E402
from bench.lib import followups  # noqa: E402
from bench.lib import qa_data  # noqa: E402
from bench.lib import report_answers  # noqa: E402
from rag.answer import TUNING, ask  # noqa: E402
from rag.answer import answerability as A  # noqa: E402
from rag.answer.extractive import select  # noqa: E402
from rag.config import Settings  # noqa: E402

OUT = common.RESULTS / "answers.md"
TODAY = replace(TUNING, second_margin=0.25, max_sentences=3, duplicate_cosine=0.95)
TODAY_ABSTAIN_BELOW = 0.5
SHIPPED = Settings.from_env(environ={})


# -- the answerers, as (confidence, chosen sentences) per item and a threshold ---------------------


def decide(name: str, items: list):
    """(confidences, chosen candidate indices, threshold) of answerer `name` on these items."""
    if name == "today's defaults":
        conf = [float(it.scores.max()) if len(it.scores) else -9.0 for it in items]
        return conf, [select(it.candidates, it.scores, TODAY) if len(it.candidates) else [] for it in items], \
            TODAY_ABSTAIN_BELOW
    chosen = [select(it.candidates, it.scores, TUNING) if len(it.candidates) else [] for it in items]
    if name == "never abstain":
        return [1.0] * len(items), chosen, 0.0
    return [A.confidence(it.signals) if len(it.candidates) else 0.0 for it in items], chosen, SHIPPED.min_confidence


ANSWERERS = ("today's defaults", "never abstain", "shipped")


def figures(items, conf, chosen, threshold) -> dict:
    """fa.figures, with a threshold per item allowed, plus string-in-citation and cited characters."""
    thresholds = threshold if isinstance(threshold, list) else [threshold] * len(items)
    answered = [c >= t and bool(ch) for c, t, ch in zip(conf, thresholds, chosen)]
    f = fa.figures(items, [1.0 if a else 0.0 for a in answered], chosen, 0.5)
    cited = [[it.candidates[i] for i in ch] if a else [] for it, ch, a in zip(items, chosen, answered)]
    ans = [k for k, it in enumerate(items) if not it.unanswerable]
    f["loose"] = float(np.mean([any(t in c.text for c in cited[k] for _, _, t in items[k].run.q.answers)
                                for k in ans])) if ans else float("nan")
    f["chars"] = float(np.mean([sum(c.end - c.start for c in cs) for cs in cited if cs] or [0]))
    f["precision"] = float(np.mean([bool(items[k].holds[i]) for k in ans if answered[k] for i in chosen[k]] or [0]))
    return f


def baselines(items) -> dict:
    """top-1 chunk and top-2 sentences on the full index's answerable questions."""
    top1, top2 = [], []
    for it in items:
        q, hits = it.run.q, it.run.hits
        top1.append(bool(hits) and qa_data.contained(q, [(hits[0].doc_id, hits[0].start, hits[0].end)]))
        if it.candidates:
            cos = np.stack([c.vector for c in it.candidates]) @ it.run.qvec
            top = np.argsort(-cos, kind="stable")[:2]
            top2.append(bool(it.holds[top].any()))
        else:
            top2.append(False)
    chars1 = np.mean([h[0].end - h[0].start for h in (it.run.hits for it in items) if h])
    return {"top-1 chunk": (float(np.mean(top1)), 1.0, float(chars1)), "top-2 sentences": (float(np.mean(top2)), 2.0)}


# -- through rag.ask ------------------------------------------------------------------------------


def replay_check(items, index) -> tuple[int, int]:
    """rag.ask against the replay (decide 'shipped'): the same citations for how many questions?"""
    conf, chosen, t = decide("shipped", items)
    same = 0
    for it, c, ch in zip(items, conf, chosen):
        a = ask(it.run.q.text, index=index, settings=SHIPPED)
        replayed = [] if c < t else [(it.run.hits[it.candidates[i].passage].doc_id, it.candidates[i].start,
                                      it.candidates[i].end) for i in ch]
        same += [(x.doc_id, x.start, x.end) for x in a.citations] == replayed
        for x in a.citations:  # the contract: citations are exact slices of the document text
            assert index.store.document_text(x.source, x.doc_id, x.page)[x.start:x.end] == x.text
    return same, len(items)


def latency(index, qs: list[str], warmup: int = 10) -> dict:
    """rag.ask warm on the full index: wall-clock parts (ms); then the whole ask in CPU time of the calling
    thread with torch on 1 thread, what one idle core would take whatever else the machine runs."""
    import torch

    for q in qs[:warmup]:
        ask(q, index=index, settings=SHIPPED)
    parts = {"embed": [], "search": [], "compose": [], "total": []}
    for q in qs:
        a = ask(q, index=index, settings=SHIPPED)
        for p in parts:
            parts[p].append(a.timings[p] * 1000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = []
        for q in qs[::max(1, len(qs) // 150)]:
            t = time.thread_time()
            ask(q, index=index, settings=SHIPPED)
            cpu.append((time.thread_time() - t) * 1000)
    finally:
        torch.set_num_threads(threads)
    out = {p: (float(np.percentile(v, 50)), float(np.percentile(v, 95))) for p, v in parts.items()}
    out["cpu"] = (float(np.percentile(cpu, 50)), float(np.percentile(cpu, 95)))
    out["n"], out["n_cpu"] = len(qs), len(cpu)
    return out


def default_corpus(corpora) -> tuple[list, dict]:
    """The default corpus: its questions (report_answers.DEFAULT_QUESTIONS) by every answerer, and the chains."""
    index = corpora.folder_index("default", common.ROOT / "corpus")
    rows = []
    for question, gold in report_answers.DEFAULT_QUESTIONS:
        hits = index.search(question, query_vector=index.embed_query(question))
        it = fa.featurize(corpora, [qa_data.Run(q=qa_data.Question(
            qid=question, text=question, doc_id="", article=-1, title="", answers=[], source="default"),
            hits=hits, qvec=index.embed_query(question)[0], index="default")], "default")[0]
        row = {"question": question, "gold": gold}
        for name in ANSWERERS:
            conf, chosen, t = decide(name, [it])
            answered = conf[0] >= t and bool(chosen[0])
            texts = [it.candidates[i].text for i in chosen[0]] if answered else []
            row[name] = {"answered": answered, "confidence": conf[0], "texts": texts,
                         "right": (not answered) if not gold else any(gold in x for x in texts)}
        rows.append(row)
    chains, examples = followups.run(followups.PUTIN, index)
    return rows, {"chains": chains, "examples": examples}


# -- main -----------------------------------------------------------------------------------------


def rated(path: Path, index_dir: str | None, out: str | None) -> int:
    """The rated answers of `rag feedback export`, asked again of the deployment's knowledge bases (its RAG_*
    settings, the index folder given)."""
    from rag.kb import Library

    items = feedback.read(path)
    settings = Settings.from_env(index_dir=index_dir, quiet=True)
    text = feedback.markdown(feedback.evaluate(items, Library.open(settings), settings), path, common.machine_info())
    print(text)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--out", default=None, help=f"the report (default {OUT.relative_to(common.ROOT)}; with "
                                                "--feedback, standard output only)")
    ap.add_argument("--feedback", type=Path, metavar="JSONL", help="rated answers (rag feedback export) to ask again")
    ap.add_argument("--index", help="with --feedback: the deployment's index folder (default RAG_INDEX_DIR, index/)")
    args = ap.parse_args(argv)
    if args.feedback:
        return rated(args.feedback, args.index, args.out)
    args.out = args.out or str(OUT)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    missing = qa_data.available()
    if missing:
        log(f"skipped: {', '.join(map(str, missing))} absent (../shared/bench-data); nothing measured")
        return 0
    load = [os.getloadavg()[0]]
    machine = common.machine_info()
    t0 = time.perf_counter()
    corpora = qa_data.Corpora(log)
    items = fa.all_items(corpora)
    log(f"data ready in {time.perf_counter() - t0:.0f}s")
    ctx = {"machine": machine, "settings": SHIPPED, "weights": A.weights(), "removed": len(qa_data.removed_paragraphs(
        qa_data.load(qa_data.XQUAD))), "chunks": corpora.indexes["xquad-all"].store.counts()["chunks"]}

    # XQuAD standard, off-topic, answer-removed; SQuAD2
    res = {}
    for name in ANSWERERS:
        for s in (f"{kind}-{split}" for kind in ("std", "off", "removed", "single", "everyday")
                  for split in ("tune", "report")):
            res[(name, s)] = figures(items[s], *decide(name, items[s]))
    titles = sorted({it.run.q.title for it in items["squad2"]})
    for name in ANSWERERS:
        res[(name, "squad2")] = figures(items["squad2"], *decide(name, items["squad2"]))
        for title in titles:
            its = [it for it in items["squad2"] if it.run.q.title == title]
            res[(name, f"squad2:{title}")] = figures(its, *decide(name, its))
    ctx["squad2_titles"] = titles
    ctx["baselines"] = {s: baselines(items[s]) for s in ("std-tune", "std-report")}
    ctx["results"] = res

    full = corpora.indexes["xquad-all"]
    log("rag.ask against the replay (XQuAD, full index)")
    ctx["replay"] = replay_check(items["std-tune"] + items["std-report"], full)
    log("the default corpus and the follow-up chains")
    ctx["default"], ctx["putin_chains"] = default_corpus(corpora)
    ctx["xquad_chains"], ctx["xquad_examples"] = followups.run(followups.xquad_chains(qa_data.load(qa_data.XQUAD)), full)
    if not args.no_latency:
        log("latency")
        qs = [it.run.q.text for it in items["std-tune"] + items["std-report"]]
        ctx["latency"] = latency(full, qs)
    load.append(os.getloadavg()[0])
    ctx["load"] = load
    text = report_answers.markdown(ctx)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    log(f"wrote {args.out} in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
