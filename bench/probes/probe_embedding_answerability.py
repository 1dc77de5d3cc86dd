"""Probe: can a small learned model over sentence-embedding interactions decide "do the cited sentences answer the
question?" better than the signal shipped then (the best extractive sentence score alone)?

Per item with candidates, b = the best-scoring candidate. Features: [best score] + qvec*b.vector (384)
+ |qvec - b.vector| (384) [+ the mean of qvec*c.vector over the top-3 candidates (384), with --top3].
Label: fit_answerability.Fit.correct (the shipped TUNING selection holds a gold answer), as the shipped fit uses.
Model: L2 logistic regression (fit_answerability.lr_fit). Evaluation as fit_answerability.cv_aucs: each title's items
scored by a model fit without that title, on the tune pool only (the *-tune sets plus the SQuAD2 articles not in
S2_REPORT); AUC of the confidence against "answerable". The L2 strength is chosen by nested grouped CV: within each
outer fold, by 4-fold grouped-by-title CV on the remaining titles (log-loss). The report split (removed-report,
std/off-report, single/everyday-report, SQuAD2 S2_REPORT articles) and the default-corpus questions are scored
once at the end, by models fit on the whole tune pool, only when the learned model beats the shipped feature by
>= 0.02 out-of-fold on removed-tune or squad2 (or with --report).

Result (2026-11-26, tune out-of-fold AUC, shipped best score vs learned 769 features): SQuAD2 0.582 vs 0.563,
answer removed 0.935 vs 0.817, off-topic 0.994 vs 0.977, everyday/one-article 0.960 vs 0.868; with the best
score's weight unpenalised 0.574 / 0.929 / 0.994 / 0.957. A negative result: the shipped one-feature model stays,
and the report split was never scored.

Usage:  python bench/probes/probe_embedding_answerability.py [--top3] [--free-best] [--grid] [--report]
"""

from __future__ import annotations

import argparse
import functools
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.fit import fit_answerability as fa  # noqa: E402
from bench.lib import qa_data  # noqa: E402
from bench.lib.common import CACHE  # noqa: E402
from rag.answer.extractive import TUNING, select  # noqa: E402

FEATURES_CACHE = CACHE / "probe_embedding_answerability.pkl"
L2_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
GAIN = 0.02


def correct(it) -> bool:
    return bool(len(it.candidates)) and bool(it.holds[select(it.candidates, it.scores, TUNING)].any())


def rows(items_list) -> dict:
    """Per item with candidates: the raw pieces of the features, its label and its grouping."""
    out = {k: [] for k in ("set", "title", "answerable", "correct", "best", "qvec", "bvec", "top3", "has")}
    for it in items_list:
        if not len(it.candidates):  # confidence 0 under every model (as fit_answerability.Fit); not fitted on
            for k, v in (("set", it.set), ("title", it.run.q.title), ("answerable", not it.unanswerable),
                         ("correct", False), ("best", 0.0), ("qvec", np.zeros(384)), ("bvec", np.zeros(384)),
                         ("top3", np.zeros(384)), ("has", False)):
                out[k].append(v)
            continue
        out["has"].append(True)
        order = np.argsort(-it.scores)
        q = np.asarray(it.run.qvec, np.float64)
        out["set"].append(it.set)
        out["title"].append(it.run.q.title)
        out["answerable"].append(not it.unanswerable)
        out["correct"].append(correct(it))
        out["best"].append(float(it.scores[order[0]]))
        out["qvec"].append(q)
        out["bvec"].append(np.asarray(it.candidates[order[0]].vector, np.float64))
        out["top3"].append(np.mean([q * np.asarray(it.candidates[i].vector, np.float64) for i in order[:3]], 0))
    return {k: np.array(v) for k, v in out.items()}


def default_corpus_items(corpora):
    import report_answers

    index = corpora.folder_index("default", fa.common.ROOT / "corpus")
    out = []
    for question, gold in report_answers.DEFAULT_QUESTIONS:
        qvec = index.embed_query(question)
        hits = index.search(question, query_vector=qvec)
        it = fa.featurize(corpora, [qa_data.Run(q=qa_data.Question(
            qid=question, text=question, doc_id="", article=-1, title="default", answers=[], source="default"),
            hits=hits, qvec=qvec[0], index="default")], "default")[0]
        it.unanswerable = not gold
        out.append(it)
    return out


def load(log) -> dict:
    if FEATURES_CACHE.exists():
        return pickle.loads(FEATURES_CACHE.read_bytes())
    corpora = qa_data.Corpora(log)
    items = fa.all_items(corpora)
    s2_tune = fa.squad2_titles(items) - fa.S2_REPORT
    pool = fa.pool_of(items, squad2_titles=s2_tune)
    data = {"tune": rows(pool),
            "removed-report": rows(items["removed-report"]),
            "off-report": rows(items["std-report"] + items["off-report"]),
            "everyday-report": rows(items["single-report"] + items["everyday-report"]),
            "squad2-report": rows([it for it in items["squad2"] if it.run.q.title in fa.S2_REPORT]),
            "n_pool": len(pool), "n_pool_nocand": sum(not len(it.candidates) for it in pool)}
    try:
        data["default"] = rows(default_corpus_items(corpora))
    except Exception as e:  # noqa: BLE001 - optional
        log(f"default corpus skipped: {e!r}")
    FEATURES_CACHE.write_bytes(pickle.dumps(data))
    return data


def design(d: dict, kind: str) -> np.ndarray:
    best = d["best"][:, None]
    if kind == "shipped":
        return best
    parts = [best, d["qvec"] * d["bvec"], np.abs(d["qvec"] - d["bvec"])]
    if kind == "learned+top3":
        parts.append(d["top3"])
    return np.hstack(parts)


FITTER = fa.lr_fit  # --free-best: the first column (the best score) unpenalized, see main()


def predict(model, X, has=None) -> np.ndarray:
    coef, intercept = model
    p = 1 / (1 + np.exp(-np.clip(X @ coef + intercept, -30, 30)))
    return p if has is None else np.where(has, p, 0.0)


def logloss(p, y) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def group_folds(titles: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    uniq = np.array(sorted(set(titles)))
    np.random.default_rng(seed).shuffle(uniq)
    return [np.isin(titles, part) for part in np.array_split(uniq, k)]


def pick_l2(X, y, titles, k: int = 4) -> float:
    """The L2 strength with the lowest grouped-CV log-loss on these rows."""
    loss = {}
    for l2 in L2_GRID:
        p = np.empty(len(y))
        for held in group_folds(titles, k):
            p[held] = predict(FITTER(X[~held], y[~held], l2), X[held])
        loss[l2] = logloss(p, y)
    return min(loss, key=loss.get)


def oof(X, y, titles, has, l2=None) -> tuple[np.ndarray, list]:
    """Leave-one-title-out confidences (0 without candidates), fit on the rows with candidates; l2=None: chosen
    inside each fold (nested)."""
    p, picks = np.zeros(len(y)), []
    for title in sorted(set(titles)):
        held = titles == title
        fit = ~held & has
        lam = pick_l2(X[fit], y[fit], titles[fit]) if l2 is None else l2
        picks.append(lam)
        p[held] = predict(FITTER(X[fit], y[fit], lam), X[held], has[held])
    return p, picks


def set_aucs(d: dict, p: np.ndarray) -> dict:
    groups = {"squad2": ("squad2",), "removed": ("removed-tune",), "off": ("std-tune", "off-tune"),
              "everyday": ("single-tune", "everyday-tune")}
    out = {}
    for key, sets in groups.items():
        m = np.isin(d["set"], sets)
        out[key] = fa.auc(p[m], d["answerable"][m])
    out["mean"] = float(np.mean(list(out.values())))
    return out


def fmt(a: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in a.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top3", action="store_true", help="also the top-3 candidates' mean product")
    ap.add_argument("--report", action="store_true", help="score the report split whatever the tune result")
    ap.add_argument("--grid", action="store_true", help="also leave-one-title-out AUCs at each fixed L2")
    ap.add_argument("--free-best", action="store_true", help="do not penalize the best score's coefficient")
    args = ap.parse_args(argv)
    global FITTER
    FITTER = functools.partial(fa.lr_fit, free=1) if args.free_best else fa.lr_fit
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    data = load(log)
    d = data["tune"]
    y = d["correct"].astype(float)
    has = d["has"]
    log(f"tune pool: {data['n_pool']} items, {data['n_pool_nocand']} without candidates (confidence 0); "
        f"{int(y.sum())} positive; {len(set(d['title']))} titles; {time.perf_counter() - t0:.0f}s")
    kinds = ["shipped", "learned"] + (["learned+top3"] if args.top3 else [])
    results, picks = {}, {}
    for kind in kinds:
        X = design(d, kind)
        if args.grid and kind != "shipped":
            for l2 in L2_GRID:
                p, _ = oof(X, y, d["title"], has, l2)
                log(f"  {kind:13s} L2 {l2:>8g}: {fmt(set_aucs(d, p))}  logloss {logloss(p[has], y[has]):.4f}")
        p, pk = oof(X, y, d["title"], has, 1.0 if kind == "shipped" else None)
        results[kind], picks[kind] = set_aucs(d, p), pk
        log(f"{kind:13s} tune OOF AUC: {fmt(results[kind])}  logloss {logloss(p[has], y[has]):.4f}  "
            f"L2 picks {sorted(set(pk))}  ({time.perf_counter() - t0:.0f}s)")
    best_kind = max(kinds[1:], key=lambda k: max(results[k]["removed"] - results["shipped"]["removed"],
                                                 results[k]["squad2"] - results["shipped"]["squad2"]))
    gain = {k: results[best_kind][k] - results["shipped"][k] for k in ("removed", "squad2")}
    log(f"gain of {best_kind} over shipped, tune OOF: removed {gain['removed']:+.4f}, squad2 {gain['squad2']:+.4f}")
    if max(gain.values()) < GAIN and not args.report:
        log(f"below the {GAIN} bar: report split not scored")
        return 0
    log("report split, scored once (models fit on the whole tune pool):")
    for kind in ("shipped", best_kind):
        X = design(d, kind)
        l2 = 1.0 if kind == "shipped" else pick_l2(X[has], y[has], d["title"][has])
        model = (fa.lr_fit if kind == "shipped" else FITTER)(X[has], y[has], l2)
        out = {}
        for key in ("removed-report", "off-report", "everyday-report", "squad2-report"):
            r = data[key]
            out[key] = fa.auc(predict(model, design(r, kind), r["has"]), r["answerable"])
        if "default" in data:
            r = data["default"]
            p = predict(model, design(r, kind), r["has"])
            out["default"] = fa.auc(p, r["answerable"])
            out["default_right_at_0.5"] = float(np.mean((p >= 0.5) == r["answerable"]))
        log(f"{kind:13s} (L2 {l2:g}) report AUC: {fmt(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
