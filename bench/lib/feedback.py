"""A deployment's own evaluation set: the answers rated in its chat (`rag feedback export`, JSONL), asked again.

The ratings are the labelled questions of the user's own corpus that docs/ANSWERABILITY.md says the answerability
decision lacks. A thumbs up says the answer was right: its cited spans hold the answer (or, for an abstention, that
abstaining was right). A thumbs down says it was wrong: the spans do not hold it (or it should have answered).
Asked again with today's code and settings (the question as it was searched, of the KBs it was asked of):

  up, answered     still answered, citing a span that overlaps one rated good (same KB, document and page)
  up, abstained    still abstains
  down, answered   now abstains, or cites none of the spans rated wrong
  down, abstained  now answers (whether rightly, only a new rating can say)

and how well the confidence stored with each answer separates the answers rated up from those rated down (ROC AUC:
0.5 is chance), with how many of each the shipped threshold would have withheld.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REQUIRED = ("rating", "resolved_question", "kbs", "abstained", "confidence", "citations")


@dataclass(kw_only=True)
class Rated:
    question: str  # as it was searched (the follow-up written out)
    kbs: list[str]
    good: bool  # thumbs up
    abstained: bool
    confidence: float
    spans: list[tuple] = field(default_factory=list)  # (kb, doc_id, page, start, end) of each citation
    comment: str = ""


def read(path: Path) -> list[Rated]:
    """The records of a `rag feedback export` file; a bad line stops with the file, the line and the reason."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            missing = [k for k in REQUIRED if k not in r]
            if missing or r["rating"] not in ("up", "down"):
                raise ValueError("not a rated answer of `rag feedback export` "
                                 f"(missing {', '.join(missing) or 'rating up/down'})")
            items.append(Rated(question=r["resolved_question"], kbs=list(r["kbs"]), good=r["rating"] == "up",
                               abstained=bool(r["abstained"]), confidence=float(r["confidence"]),
                               spans=[_span(c) for c in r["citations"] if not c.get("withheld")],
                               comment=r.get("comment") or ""))
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path} line {number}: {e}") from None
    return items


def _span(c: dict) -> tuple:
    return c.get("kb") or "default", c["doc_id"], c.get("page"), int(c["start"]), int(c["end"])


def overlaps(a: tuple, b: tuple) -> bool:
    return a[:3] == b[:3] and a[3] < b[4] and b[3] < a[4]


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    if not positive or not negative:
        return float("nan")
    p, n = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def evaluate(items: list[Rated], library, settings) -> dict:
    """Ask every rated question again; the counts of the module docstring."""
    from rag.answer import ask
    from rag.errors import RagError

    cases = {key: [0, 0] for key in ("up answered", "up abstained", "down answered", "down abstained")}  # [held, of]
    gone = 0
    for it in items:
        try:
            answer = ask(it.question, index=library.select(it.kbs, build=False), settings=settings)
        except RagError:  # a KB removed since, or an index that no longer opens
            gone += 1
            continue
        now = [_span(c) for c in answer.to_dict()["citations"]]
        key = f"{'up' if it.good else 'down'} {'abstained' if it.abstained else 'answered'}"
        if key == "up answered":
            held = not answer.abstained and any(overlaps(a, b) for a in now for b in it.spans)
        elif key == "down answered":
            held = answer.abstained or not any(overlaps(a, b) for a in now for b in it.spans)
        else:
            held = answer.abstained == (key == "up abstained")
        cases[key][0] += held
        cases[key][1] += 1
    answered = [it for it in items if not it.abstained]
    up = [it.confidence for it in answered if it.good]
    down = [it.confidence for it in answered if not it.good]
    t = settings.min_confidence
    return {"n": len(items), "up": sum(it.good for it in items), "down": sum(not it.good for it in items),
            "gone": gone, "cases": cases, "auc": auc(up, down), "threshold": t,
            "up_withheld": sum(c < t for c in up), "down_withheld": sum(c < t for c in down),
            "answered_up": len(up), "answered_down": len(down), "commented": sum(bool(it.comment) for it in items)}


def markdown(result: dict, source: Path, machine: str) -> str:
    from bench.lib.common import table

    share = lambda held, of: f"{held}/{of} ({100 * held / of:.0f}%)" if of else "-"  # noqa: E731
    what = {"up answered": "still cites a span rated good", "up abstained": "still abstains",
            "down answered": "abstains, or cites none of the spans rated wrong", "down abstained": "now answers"}
    rows = [[key, what[key], share(*result["cases"][key])] for key in what]
    r = result
    lines = [f"# Rated answers asked again ({source.name})", "", machine.rstrip(), "",
             f"{r['n']} rated answers: {r['up']} thumbs up, {r['down']} thumbs down, {r['commented']} with a comment"
             + (f"; {r['gone']} not asked again (their knowledge base is gone)" if r["gone"] else "") + ".", "",
             table(["rated", "asked again today", "held"], rows), "",
             f"Stored confidence of the answers given, rated up against rated down: ROC AUC {r['auc']:.3f} "
             f"({r['answered_up']} up, {r['answered_down']} down; 0.5 is chance). At the threshold "
             f"{r['threshold']:.2f} it would have withheld {r['down_withheld']} of the {r['answered_down']} rated down "
             f"and {r['up_withheld']} of the {r['answered_up']} rated up.", ""]
    return "\n".join(lines)
