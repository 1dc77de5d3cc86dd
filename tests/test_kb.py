"""Knowledge bases: several collections in one installation, asked one at a time or together, and per-KB grants.

Real indexes, the real model, the real `rag` command; the migration test builds an index and a users file with the
code of the last release before knowledge bases (git history) and opens them with today's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from conftest import CORPUS_FILE, ROOT
from rag import DEFAULT_KB, KnowledgeBaseNotFoundError, Library, RagError, Settings, ask
from rag.access import Access, Principal
from rag.errors import AccessError
from rag.users import UserFile, add_user, grant, read_users, revoke

HR_TEXT = ("Parental leave at Velmora Corp is 26 weeks at full pay. Requests go to the HR office on the third floor.\n"
           "The HR office is open from nine to four.\n")
ENG_TEXT = ("The Velmora build server compiles the firmware in 14 minutes. Its hostname is forge-7.\n"
            "Releases are tagged every second Tuesday.\n")
PASSWORD = "a-Long-passw0rd"


def rag(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, input=stdin or "")


@pytest.fixture
def library(settings, corpus):
    """default (the shipped corpus), hr and eng, each indexed."""
    library = Library.open(settings)
    for name, text in (("hr", HR_TEXT), ("eng", ENG_TEXT)):
        kb = library.create(name)
        (kb.corpus_dir / f"{name}-handbook.txt").write_text(text)
        assert library.index(name).add().ok
    return library


def test_each_kb_answers_from_its_own_documents_and_together_they_make_one_ranking(library, settings):
    assert library.names() == [DEFAULT_KB, "eng", "hr"]
    leave = ask("How long is parental leave?", kb="hr", settings=settings)
    assert not leave.abstained and "26 weeks" in leave.citations[0].text and leave.citations[0].kb == "hr"
    assert {h.kb for h in leave.passages} == {"hr"}
    build = ask("How long does the build server take to compile the firmware?", kb="eng", settings=settings)
    assert "14 minutes" in build.citations[0].text and build.citations[0].kb == "eng"
    # one question over several KBs: the best passage wins wherever it lies, and each hit names its KB
    both = library.select(["hr", "eng", DEFAULT_KB]).search("firmware compile time", k=6)
    assert both[0].kb == "eng" and {h.kb for h in both} == {"hr", "eng", DEFAULT_KB}
    putin = ask("How many U.S. presidents has Putin outlasted?", kb=["hr", "eng", DEFAULT_KB], settings=settings)
    c = putin.citations[0]
    assert c.kb == DEFAULT_KB and "five U.S. presidents" in c.text
    assert library.index(c.kb).store.document_text(c.source, c.doc_id, c.page)[c.start:c.end] == c.text
    assert putin.to_dict()["citations"][0]["kb"] == DEFAULT_KB
    # an eng-only question asked of hr abstains and shows nothing of eng
    withheld = ask("What is the build server's hostname?", kb="hr", settings=settings)
    assert "forge-7" not in json.dumps(withheld.to_dict())


def test_one_kb_searched_alone_ranks_exactly_as_its_index(library, settings):
    index = library.index(DEFAULT_KB)
    for query in ("NATO chiefs", "Putin personal negotiations", "George W. Bush 9/11"):
        for mode in ("hybrid", "dense", "bm25"):
            alone = [(h.chunk_id, round(h.score, 6)) for h in index.search(query, k=5, mode=mode)]
            selected = [(h.chunk_id, round(h.score, 6)) for h in library.select(DEFAULT_KB).search(query, k=5, mode=mode)]
            assert alone == selected


def test_create_list_remove_and_bad_names(library, settings, tmp_path):
    with pytest.raises(RagError, match="exists already"):
        library.create("hr")
    with pytest.raises(RagError, match="not usable"):
        library.create("HR Docs")
    with pytest.raises(RagError, match="already the corpus"):
        library.create("copy", corpus_dir=library.get("hr").corpus_dir)
    own = library.create("sales", corpus_dir=tmp_path / "sales-docs")
    assert own.corpus_dir == tmp_path / "sales-docs" and own.corpus_dir.is_dir()
    status = library.status("hr")
    assert status["documents"] == 1 and status["chunks"] >= 1 and status["size_bytes"] > 0
    index_dir = library.get("hr").index_dir
    corpus = library.get("hr").corpus_dir
    library.remove("hr")
    assert "hr" not in library.names() and not index_dir.exists() and (corpus / "hr-handbook.txt").exists()
    with pytest.raises(KnowledgeBaseNotFoundError):
        ask("How long is parental leave?", kb="hr", settings=settings)
    with pytest.raises(RagError, match="cannot be removed"):
        library.remove(DEFAULT_KB)
    # the default KB's rebuild leaves the library's own files alone
    library.index(DEFAULT_KB).rebuild()
    assert "eng" in Library.open(settings).names() and library.index("eng").status()["chunks"] >= 1


def test_ask_takes_every_query_setting_from_the_settings_it_is_given(library, settings):
    """One source of settings per call: the index's own (cached) settings never decide k or min_confidence."""
    question = "How many U.S. presidents has Putin outlasted?"
    loose = ask(question, settings=settings.replace(k=2))
    assert len(loose.passages) == 2 and not loose.abstained
    strict = ask(question, settings=settings.replace(min_confidence=1.0, k=3))
    assert strict.abstained and len(strict.passages) == 3  # the same cached index, the call's own threshold and k


def test_grants_in_the_users_file(tmp_path):
    users = tmp_path / "users.txt"
    add_user(users, "rita", PASSWORD, kbs={"hr": "ask"})
    add_user(users, "uma", PASSWORD, kbs={"eng": "upload", "hr": "ask"})
    add_user(users, "olga", PASSWORD)  # a plain role, as before KBs: every KB
    add_user(users, "ada", PASSWORD, can_upload=True)
    lines = {line.split(":")[0]: line.split(":")[2] for line in users.read_text().splitlines() if not line.startswith("#")}
    assert lines == {"rita": "hr=ask", "uma": "eng=upload,hr=ask", "olga": "ask", "ada": "upload"}
    access = Access(users=UserFile(users))
    names = [DEFAULT_KB, "eng", "hr"]
    assert access.readable(access.principal("rita"), names) == ["hr"]
    assert access.addable(access.principal("uma"), names) == ["eng"]
    assert access.readable(access.principal("olga"), names) == names and access.addable(access.principal("olga"), names) == []
    assert access.addable(access.principal("ada"), names) == names
    revoke(users, "olga", ["hr"])  # from a plain role: hr is marked none
    assert access.readable(access.principal("olga"), names) == [DEFAULT_KB, "eng"]
    grant(users, "rita", ["eng"], "upload")
    revoke(users, "rita", ["hr"])
    assert read_users(users)["rita"].grants == {"eng": "upload"}
    with pytest.raises(KnowledgeBaseNotFoundError) as refused:
        access.require_read(access.principal("rita"), "hr")
    with pytest.raises(KnowledgeBaseNotFoundError) as missing:
        access.require_read(access.principal("rita"), "no-such-kb")
    assert str(refused.value).replace("'hr'", "X") == str(missing.value).replace("'no-such-kb'", "X")
    with pytest.raises(AccessError, match="rag user grant uma --kb hr --role upload"):
        access.require_add(access.principal("uma"), "hr")
    assert Access(users=UserFile(users), read_only=True).addable(access.principal("ada"), names) == []
    assert access.principal("nobody") is None
    # an API token narrows its user's rights, never widens them
    assert access.addable(Principal(name="ada", grants={"*": "upload"}, only=("eng",)), names) == ["eng"]
    users.write_text(users.read_text() + "eve:scrypt$16384$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0:hr=admin\n")
    with pytest.raises(AccessError, match=r"line \d+: 'hr=admin': a KB's role is ask, upload or none"):
        read_users(users)


def test_the_cli_manages_kbs_and_grants(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "putin.txt").write_text(CORPUS_FILE.read_text())
    users = tmp_path / "users.txt"
    env = {"RAG_INDEX_DIR": str(tmp_path / "idx"), "RAG_CORPUS_DIR": str(corpus), "RAG_AUTH_FILE": str(users),
           "RAG_QUIET": "1"}
    made = rag("kb", "create", "hr", env=env)
    assert made.returncode == 0, made.stderr
    hr_corpus = tmp_path / "idx" / "kbs" / "hr" / "corpus"
    assert str(hr_corpus) in made.stdout and hr_corpus.is_dir()
    (hr_corpus / "handbook.txt").write_text(HR_TEXT)
    assert rag("index", "--kb", "hr", env=env).returncode == 0
    assert rag("index", env=env).returncode == 0
    assert rag("user", "add", "rita", "--kb", "hr:ask", "--password-stdin", env=env, stdin=PASSWORD + "\n").returncode == 0
    refused = rag("user", "grant", "rita", "--kb", "nope", env=env)
    assert refused.returncode == 2 and "rag kb create nope" in refused.stderr
    listed = json.loads(rag("kb", "list", "--json", env=env).stdout)
    assert [(r["name"], r["documents"], r["readers"]) for r in listed] == [("default", 1, ["nobody"]), ("hr", 1, ["rita (ask)"])]
    assert all(r["chunks"] > 0 and r["size_bytes"] > 0 for r in listed)
    status = json.loads(rag("status", "--kb", "hr", "--json", env=env).stdout)
    assert status["documents"] == 1 and status["index"].endswith("hr/index")
    both = json.loads(rag("ask", "How long is parental leave?", "--kb", "hr", "--kb", "default", "--json", env=env).stdout)
    assert both["citations"][0]["kb"] == "hr" and "26 weeks" in both["citations"][0]["text"]
    human = rag("search", "parental leave", "--kb", "hr", "--kb", "default", "--k", "2", env=env)
    assert human.stdout.startswith("1. hr: handbook.txt")
    assert rag("user", "list", env=env).stdout.splitlines() == ["rita\thr=ask"]
    assert rag("kb", "remove", "hr", env=env).returncode == 2  # no terminal to confirm on, no --yes
    gone = rag("kb", "remove", "hr", "--yes", env=env)
    assert gone.returncode == 0 and "rita" in gone.stdout  # the grant went with it
    assert rag("user", "list", env=env).stdout.splitlines() == ["rita\t-"]
    missing = rag("ask", "How long is parental leave?", "--kb", "hr", env=env)
    assert missing.returncode == 2 and "no knowledge base named 'hr'" in missing.stderr


RELEASE_BEFORE_KBS = "e89c523"  # main before knowledge bases: its index, corpus and users file must open as they are


def test_an_index_and_users_file_from_before_kbs_open_as_the_default_kb(tmp_path, embedder):
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "archive", RELEASE_BEFORE_KBS, "rag"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"the release {RELEASE_BEFORE_KBS} is not in this clone's history: {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    corpus, index_dir, users = tmp_path / "corpus", tmp_path / "index", tmp_path / "users.txt"
    corpus.mkdir()
    (corpus / "putin.txt").write_text(CORPUS_FILE.read_text())
    build = ("import sys; from rag import Index, Settings; from rag.users import add_user\n"
             f"s = Settings.from_env(index_dir={str(index_dir)!r}, corpus_dir={str(corpus)!r}, quiet=True)\n"
             "assert Index.open(settings=s).add().ok\n"
             f"add_user({str(users)!r}, 'rita', {PASSWORD!r}); add_user({str(users)!r}, 'uma', {PASSWORD!r}, can_upload=True)\n")
    made = subprocess.run([sys.executable, "-c", build], cwd=old, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("RAG_")})
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(index_dir / "rag.sqlite") as db:
        before = db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()

    settings = Settings.from_env(environ={}, index_dir=index_dir, corpus_dir=corpus, quiet=True)
    library = Library.open(settings)
    assert library.names() == [DEFAULT_KB]
    report = library.index(DEFAULT_KB).add()
    assert report.ok and report.embedded == 0 and report.unchanged == 1  # nothing re-read, nothing re-embedded
    with sqlite3.connect(index_dir / "rag.sqlite") as db:
        assert db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall() == before
    answer = ask("How many U.S. presidents has Putin outlasted?", settings=settings)
    assert answer.citations[0].kb == DEFAULT_KB and "five U.S. presidents" in answer.citations[0].text
    access = Access(users=UserFile(users))  # the old users file: same logins, the plain roles cover every KB
    assert access.users.check("rita", PASSWORD) and access.users.check("uma", PASSWORD)
    assert access.readable(access.principal("rita"), [DEFAULT_KB]) == [DEFAULT_KB]
    assert access.addable(access.principal("rita"), [DEFAULT_KB]) == []
    assert access.addable(access.principal("uma"), [DEFAULT_KB]) == [DEFAULT_KB]
    library.create("hr")  # the library's own database goes beside the old index, which is untouched by it
    assert library.index(DEFAULT_KB).status()["chunks"] == len(before)
