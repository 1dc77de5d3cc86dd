"""Knowledge bases: what asking several at once costs, and what deciding access costs per request.

Three KBs of XQuAD-en articles (report split, 24-47, eight articles each; latency only, nothing is tuned here),
each its own index in one Library. Every question of KB `a`'s articles is asked warm through `rag.ask` of KB `a`
alone and of all three at once (one ranking), the two interleaved question by question so load drifts alike;
p50/p95 of each, and how often the three-KB answer cites the same sentence as the one-KB answer (the other KBs
hold other articles, so they should rarely win).

Access: the server resolves every request's principal (the session cookie's SHA-256 looked up in
library.sqlite, the users file re-checked) and filters the KBs it may read. Timed here on a users file of 200
users, through the same Auth and Access objects the server uses, on a fake request carrying the cookie.

    .venv/bin/python bench/suites/kb.py [--questions N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common, qa_data  # noqa: E402

from rag import Library, Settings, ask  # noqa: E402

XQUAD = common.DATA / "xquad" / "xquad.en.json"
KBS = {"a": range(24, 32), "b": range(32, 40), "c": range(40, 48)}


def build(root: Path, data) -> Library:
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True)
    (root / "corpus").mkdir(parents=True)
    (root / "corpus" / "empty.txt").write_text("The default knowledge base of this benchmark holds one line.\n")
    library = Library.open(settings)
    for name, articles in KBS.items():
        kb = library.create(name)
        for r in qa_data.records(data, articles, prefix=name):
            (kb.corpus_dir / f"{r['_id']}.txt").write_text(r["text"] + "\n", encoding="utf-8")
        report = library.index(name).add()
        assert report.ok, report.failed
    return library


def timed_asks(library: Library, questions: list[str]) -> dict:
    one, three = library.select(["a"]), library.select(list(KBS))
    for q in questions[:5]:  # warm: model, FAISS, SQLite pages
        ask(q, index=one), ask(q, index=three)
    times = {"one": [], "three": []}
    same = 0
    for q in questions:
        answers = {}
        for name, selection in (("one", one), ("three", three)):
            t = time.perf_counter()
            answers[name] = ask(q, index=selection)
            times[name].append(time.perf_counter() - t)
        first = [(c.kb, c.source, c.start) for c in answers["one"].citations[:1]]
        same += first == [(c.kb, c.source, c.start) for c in answers["three"].citations[:1]]
    return {**times, "same": same}


def timed_access(root: Path, n_users: int = 200, repeat: int = 2000) -> dict:
    from starlette.requests import Request

    from rag.access import Access
    from rag.server.auth import SESSION_COOKIE, Auth
    from rag.users import EVERY_KB, User, UserFile, add_user, hash_password, write_users

    users = root / "users.txt"
    one_hash = hash_password("bench-Password-1")  # scrypt once: the file's size is what is measured, not hashing
    write_users(users, [User(name=f"user{i}", password_hash=one_hash, grants={"a": "ask", "b": "upload"})
                        for i in range(n_users)] + [User(name="admin", password_hash=one_hash, grants={EVERY_KB: "upload"})])
    add_user(users, "rita", "bench-Password-2", kbs={"a": "ask", "c": "ask"})
    library = Library.open(Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus",
                                             quiet=True, auth_file=users))
    access = Access(users=UserFile(users))
    auth = Auth(access, library.store)
    import asyncio

    cookie = asyncio.run(auth.login("rita", "bench-Password-2"))
    assert cookie
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())]}
    names = library.names()
    samples = {"principal": [], "readable": []}
    for _ in range(repeat):
        t = time.perf_counter()
        who = auth.principal(Request(scope))
        t2 = time.perf_counter()
        readable = access.readable(who, library.names())
        t3 = time.perf_counter()
        samples["principal"].append(t2 - t)
        samples["readable"].append(t3 - t2)
    assert readable == ["a", "c"], readable
    return {**samples, "users": n_users + 2, "kbs": len(names)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=0, help="ask only the first N questions (default: all of KB a's)")
    args = p.parse_args(argv)
    common.require(XQUAD)
    data = qa_data.load(XQUAD)
    load_start = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="rag-bench-kb-"))
    try:
        library = build(root, data)
        questions = [q.text for q in qa_data.questions(data, KBS["a"], prefix="a")]
        questions = questions[:args.questions] if args.questions else questions
        asks = timed_asks(library, questions)
        access = timed_access(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = lambda xs, p: f"{common.percentile(xs, p) * 1000:.1f}"  # noqa: E731
    us = lambda xs, p: f"{common.percentile(xs, p) * 1e6:.0f}"  # noqa: E731
    text = f"""# Knowledge bases: asking several at once, and the access check

{common.machine_info(("faiss", "numpy", "openvino"))}- Load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end
- Three KBs of eight XQuAD-en articles each (report split, articles 24-31, 32-39, 40-47; latency only), the
  default KB one line. {len(questions)} questions of KB a's articles, asked warm through `rag.ask`, one KB and
  three KBs interleaved question by question.

## `ask` latency, one KB against three at once

{common.table(["searched", "questions", "p50 ms", "p95 ms"], [
    ["KB a alone", len(questions), ms(asks["one"], 50), ms(asks["one"], 95)],
    ["KBs a, b, c (one ranking)", len(questions), ms(asks["three"], 50), ms(asks["three"], 95)],
])}

The first citation is the same sentence in {asks["same"]} of {len(questions)} answers: KBs b and c hold other
articles and rarely outrank the one that answers.

## The access check per request

{common.table(["step", "p50 µs", "p95 µs"], [
    ["who is asking: session cookie -> principal (SHA-256, library.sqlite, users file re-checked)",
     us(access["principal"], 50), us(access["principal"], 95)],
    ["which KBs it may read (Access.readable over the Library's names)", us(access["readable"], 50),
     us(access["readable"], 95)],
])}

{access["users"]} users in the users file, {access["kbs"]} KBs; 2,000 requests.
"""
    print(common.write_result("kb.md", text))


if __name__ == "__main__":
    main()
