"""The question-answering benchmark data behind bench/suites/answers.py and bench/fit/fit_answerability.py.

  XQuAD-en (48 articles, 240 paragraphs, 1190 answerable questions): articles 0-23 tune, 24-47 report.
    standard        the full index; off-topic: each half's questions against an index of the other half only
    answer-removed  one paragraph per article removed (seeded, issue 11): an index of the other 192 paragraphs;
                    the removed paragraphs' questions should abstain, the kept ones be answered
    one article     each article alone in its own index (the default corpus' situation), asked its own questions
                    and everyday ones about its subject that no paragraph answers (bench/lib/everyday.py): those
                    should abstain
  SQuAD 2.0 dev, tune file (8 articles, 301 paragraphs, answerable and unanswerable questions): its own index.

Every corpus is a JSONL file (one record a paragraph, _id a<article>p<paragraph>, title = the article title)
indexed with the project's defaults under bench/.cache, rebuilt when its records or the indexing code change;
the retrieval of every question (rag's Index.search, question embedded on its own as ask() does) is cached beside
it. The data is read from ../shared/bench-data and never copied into the repo.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.lib import everyday
from bench.lib.common import CACHE, DATA, ROOT
from rag.config import Settings
from rag.index import Index

XQUAD = DATA / "xquad" / "xquad.en.json"
SQUAD2 = DATA / "squad2" / "squad2-dev-tune.json"
TUNE_ARTICLES = range(0, 24)
REPORT_ARTICLES = range(24, 48)
REMOVE_SEED = 11  # the number: which paragraph of each article the answer-removed index lacks
# code whose change invalidates a cached index or retrieval (with the index format; the answerer's code does not)
INDEX_CODE = ("chunk.py", "load", "index.py", "ingest.py", "store.py", "ann.py", "embed", "config.py", "model.py",
              "retrieve.py", "text.py")


@dataclass(kw_only=True)
class Question:
    qid: str
    text: str
    doc_id: str  # the gold paragraph
    article: int  # index of its article in its data set
    title: str  # the article title (XQuAD and SQuAD2 share titles: the unit of cross-validation)
    answers: list  # [(start, end, text)] in the gold paragraph; [] when unanswerable by design
    source: str  # "xquad" | "squad2"

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(kw_only=True)
class Run:
    """One question asked of one index: what retrieval returned (answerers are replayed on it)."""

    q: Question
    hits: list
    qvec: np.ndarray
    index: str  # which cached index answered it (its name)


def load(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))["data"]


def records(data, articles, prefix: str = "a", skip=frozenset()) -> list[dict]:
    return [{"_id": f"{prefix}{a}p{p}", "title": data[a]["title"], "text": para["context"]}
            for a in articles for p, para in enumerate(data[a]["paragraphs"]) if f"{prefix}{a}p{p}" not in skip]


def questions(data, articles, prefix: str = "a", source: str = "xquad") -> list[Question]:
    out = []
    for a in articles:
        for p, para in enumerate(data[a]["paragraphs"]):
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else [
                    (x["answer_start"], x["answer_start"] + len(x["text"]), x["text"]) for x in qa["answers"]]
                for s, e, t in answers:
                    assert para["context"][s:e] == t, qa["id"]
                out.append(Question(qid=qa["id"], text=qa["question"], doc_id=f"{prefix}{a}p{p}", article=a,
                                    title=data[a]["title"], answers=answers, source=source))
    return out


def removed_paragraphs(data, seed: int = REMOVE_SEED) -> set[str]:
    """One paragraph per article, chosen at random (seeded): the answer-removed index lacks these."""
    rng = random.Random(seed)
    return {f"a{a}p{rng.randrange(len(article['paragraphs']))}" for a, article in enumerate(data)}


def code_hash() -> str:
    from rag.store import FORMAT_VERSION

    h = hashlib.sha1(str(FORMAT_VERSION).encode())
    for name in INDEX_CODE:
        path = ROOT / "rag" / name
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


class Corpora:
    """Cached indexes and retrieval runs; `log` reports what had to be built."""

    def __init__(self, log=print):
        self.log = log
        self.code = code_hash()
        self.indexes: dict[str, Index] = {}

    def index(self, name: str, recs: list[dict]) -> Index:
        """An index of these records (one JSONL file) under bench/.cache, reused while the records and the
        indexing code are unchanged."""
        return self._index(name, {"corpus.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)},
                           json.dumps(recs, sort_keys=True))

    def folder_index(self, name: str, folder: Path) -> Index:
        """An index of the text files of a folder (the default corpus), cached the same way."""
        files = {p.name: p.read_text(encoding="utf-8") for p in sorted(Path(folder).glob("*.txt"))}
        return self._index(name, files, json.dumps(files, sort_keys=True))

    def _index(self, name: str, files: dict[str, str], key: str) -> Index:
        h = hashlib.sha1(key.encode()).hexdigest()[:10]
        folder = CACHE / f"qa-{name}-{h}-{self.code}"
        corpus = folder / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            path = corpus / filename
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
        settings = Settings.from_env(environ={}, index_dir=folder / "index", corpus_dir=corpus, quiet=True)
        index = Index.open(settings.index_dir, settings)
        t = time.perf_counter()
        report = index.add([corpus])
        if report.failed:
            raise SystemExit(f"indexing {name} failed: {report.failed}")
        if report.added:
            self.log(f"indexed {name}: {report.chunks} chunks in {time.perf_counter() - t:.0f}s")
        self.indexes[name] = index
        return index

    def vectors(self, index: Index, qs: list[Question], batched: bool = False) -> dict[str, np.ndarray]:
        """Question vectors, cached: each encoded on its own as ask() does, or (batched) 64 at a time, which is
        many times faster on a busy machine and changes them very slightly (padding)."""
        path = CACHE / f"qa-qvec{'-batched' if batched else ''}-{self.code}.pkl"
        memo = pickle.loads(path.read_bytes()) if path.exists() else {}
        todo = sorted({q.text.strip() for q in qs} - set(memo))
        if batched and todo:
            memo.update(zip(todo, index.embedder.encode(todo)))
        for i, text in enumerate([] if batched else todo):
            memo[text] = index.embed_query(text)[0]
            if (i + 1) % 500 == 0:
                self.log(f"  embedded {i + 1}/{len(todo)} questions")
        if todo:
            path.write_bytes(pickle.dumps(memo))
        return {q.qid: memo[q.text.strip()] for q in qs}

    def runs(self, name: str, qs: list[Question], batched: bool = False) -> list[Run]:
        """Retrieval for every question on index `name` (its default k and mode), cached."""
        index = self.indexes[name]
        key = hashlib.sha1(json.dumps([self.code, index.settings.k, batched, [q.qid for q in qs]]).encode()).hexdigest()
        path = CACHE / f"qa-runs-{name}-{key[:10]}.pkl"
        if path.exists():
            return pickle.loads(path.read_bytes())
        qv = self.vectors(index, qs, batched)
        out = [Run(q=q, hits=index.search(q.text.strip(), query_vector=qv[q.qid][None, :]), qvec=qv[q.qid], index=name)
               for q in qs]
        path.write_bytes(pickle.dumps(out))
        return out


def available() -> list[Path]:
    """The data files that are missing (empty when everything is there)."""
    return [p for p in (XQUAD, SQUAD2) if not p.exists()]


def xquad_sets(corpora: Corpora) -> dict[str, list[Run]]:
    """Runs of XQuAD: std-{tune,report} (full index), off-{tune,report} (the other half's index),
    removed-{tune,report} (answer-removed index), single- and everyday-{tune,report} (article_sets)."""
    data = load(XQUAD)
    tq, rq = questions(data, TUNE_ARTICLES), questions(data, REPORT_ARTICLES)
    tune_arts, report_arts = list(TUNE_ARTICLES), list(REPORT_ARTICLES)
    removed = removed_paragraphs(data)
    corpora.index("xquad-all", records(data, tune_arts + report_arts))
    corpora.index("xquad-tune", records(data, tune_arts))
    corpora.index("xquad-report", records(data, report_arts))
    corpora.index("xquad-removed", records(data, tune_arts + report_arts, skip=removed))
    return {
        "std-tune": corpora.runs("xquad-all", tq), "std-report": corpora.runs("xquad-all", rq),
        "off-tune": corpora.runs("xquad-report", tq), "off-report": corpora.runs("xquad-tune", rq),
        "removed-tune": corpora.runs("xquad-removed", tq), "removed-report": corpora.runs("xquad-removed", rq),
        "_removed": removed,
    } | article_sets(corpora, data)


def article_sets(corpora: Corpora, data) -> dict[str, list[Run]]:
    """The default corpus' situation: one article alone in its own small index (5 paragraphs, as the default
    corpus is one article in 8 chunks), asked its own questions (single-{tune,report}: answerable) and
    bench/lib/everyday.py's (everyday-{tune,report}: questions about its subject it does not answer)."""
    out = {}
    for split, articles, asked in (("tune", TUNE_ARTICLES, everyday.TUNE), ("report", REPORT_ARTICLES, everyday.REPORT)):
        out[f"single-{split}"], out[f"everyday-{split}"] = [], []
        for a in articles:
            name = f"xquad-article{a}"
            corpora.index(name, records(data, [a]))
            out[f"single-{split}"] += corpora.runs(name, questions(data, [a]))
            out[f"everyday-{split}"] += corpora.runs(name, everyday_questions(data, {a: asked[a]}))
    return out


def everyday_questions(data, by_article: dict[int, list[str]]) -> list[Question]:
    """bench/lib/everyday.py's questions, unanswerable by construction."""
    return [Question(qid=f"everyday-{a}-{i}", text=text, doc_id="", article=a, title=data[a]["title"], answers=[],
                     source="everyday") for a, texts in by_article.items() for i, text in enumerate(texts)]


def squad2_runs(corpora: Corpora) -> list[Run]:
    """SQuAD2 dev-tune: its paragraphs are the corpus, every question is asked (its 2828 questions embedded in
    batches: one at a time took most of an hour on the shared machine)."""
    data = load(SQUAD2)
    corpora.index("squad2", records(data, range(len(data)), prefix="s"))
    return corpora.runs("squad2", questions(data, range(len(data)), prefix="s", source="squad2"), batched=True)


def contained(q: Question, spans) -> bool:
    """A gold answer span [start, end) of the gold paragraph lies inside one cited (doc_id, start, end)."""
    return any(d == q.doc_id and s <= a and b <= e for d, s, e in spans for a, b, _ in q.answers)


if __name__ == "__main__":  # build the caches
    import qa_data as me  # pickled runs must refer to qa_data.Run, not __main__.Run

    t0 = time.perf_counter()
    c = me.Corpora()
    print({k: len(v) for k, v in me.xquad_sets(c).items()}, f"{time.perf_counter() - t0:.0f}s")
    s2 = me.squad2_runs(c)
    print("squad2", len(s2), sum(r.q.answerable for r in s2), f"{time.perf_counter() - t0:.0f}s")
