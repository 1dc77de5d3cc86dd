"""Conversations kept, exported and rated, tested against the real server over HTTP (the page's own events, as the
browser fires them), the `rag history` and `rag feedback` commands, the bench that reads the ratings back, and once
in Chromium.

The team: `default` (the shipped corpus) and `hr` (one note with a word found nowhere else, Velmora, so a leak
shows as a substring). alice and bob may ask everywhere; rita in default and hr, until hr is taken from her.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys

import httpx
import pytest

from helpers import ROOT, SLOW, ask, gradio_event, log_in, rag, run_env, serve_chat, shot, wait_until_idle
from rag import Library, Settings
from rag.conversations import Conversations
from rag.errors import ConversationNotFoundError, RagError
from rag.store import LibraryStore
from rag.users import add_user, grant, revoke

HR = "Parental leave at Velmora Corp is 26 weeks at full pay. Requests go to the HR office on the third floor.\n"
PRESIDENTS = "How many U.S. presidents has Putin outlasted?"
PASSWORDS = {"alice": "alice-Secret-41", "bob": "bob-Secret-42", "rita": "rita-Secret-43"}


@pytest.fixture(scope="module")
def team(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("team")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    users = root / "users.txt"
    for name in ("alice", "bob"):
        add_user(users, name, PASSWORDS[name])
    add_user(users, "rita", PASSWORDS["rita"], kbs={"default": "ask", "hr": "ask"})
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                 auth_file=users)
    (Library.open(settings).create("hr").corpus_dir / "hr-notes.txt").write_text(HR)
    with serve_chat(settings) as server:
        yield server, settings


def chat(http, question, kbs=(), session="tests"):
    """Ask on the page; (the conversation's id as the side list now selects it, the whole output)."""
    ok, out = gradio_event(http, "rag-question", "submit", [question, [], 5, "hybrid", list(kbs), None], session)
    assert ok, out
    return (out[5] or {}).get("value"), out


def side_list(http, session="tests") -> list[list[str]]:
    ok, (listing, note) = gradio_event(http, "rag-history", "load", [], session)
    assert ok, listing
    return listing["choices"]


def reopen(http, conversation, session="tests"):
    side_list(http, session)  # the page load fills this session's list first, as in a browser
    return gradio_event(http, "rag-history", "input", [conversation], session)


def export(http, session="tests") -> dict[str, str]:
    ok, files = gradio_event(http, "rag-export-btn", "click", [None], session)
    assert ok, files
    return {f["value"]["orig_name"].rsplit(".", 1)[1]: http.get(f["value"]["url"]).text for f in files}


def stored_text(library: Library, c: dict) -> str:
    return library.index(c["kb"], build=False).store.document_text(c["source"], c["doc_id"], c["page"])


MD_CITATION = re.compile(r"^\[(\d+)\] (\S+) · (.+?)(?: · page (\d+))?(?: · OCR)? · characters (\d+)–(\d+)\n\n"
                         r"((?:>.*\n)+)", re.M)


def markdown_citations(text: str) -> list[dict]:
    """Every citation of a Markdown export, its quote taken back out of the blockquote."""
    return [{"n": int(n), "kb": kb, "source": source, "doc_id": source, "page": int(page) if page else None,
             "start": int(a), "end": int(b),
             "text": "\n".join(line[2:] if line.startswith("> ") else "" for line in quote.rstrip("\n").split("\n"))}
            for n, kb, source, page, a, b, quote in MD_CITATION.findall(text)]


def test_two_users_conversations_never_mix(team):
    server, settings = team
    alice, bob = log_in(server.url, "alice", PASSWORDS["alice"]), log_in(server.url, "bob", PASSWORDS["bob"])
    mine, _ = chat(alice, PRESIDENTS)
    theirs, _ = chat(bob, "Who wrote the article about Putin's diplomacy?")
    assert mine and theirs and mine != theirs
    alices, bobs = [c[1] for c in side_list(alice)], [c[1] for c in side_list(bob)]
    assert mine in alices and theirs not in alices and theirs in bobs and mine not in bobs
    # bob names alice's conversation: refused, as a conversation that does not exist
    ok, error = reopen(bob, mine)
    assert not ok and PRESIDENTS not in json.dumps(error)
    kept = Conversations(server.app.library, server.app.access)
    with pytest.raises(ConversationNotFoundError) as foreign:
        kept.turns("user:bob", mine)
    with pytest.raises(ConversationNotFoundError) as unknown:
        kept.turns("user:bob", "no-such-id")
    assert str(foreign.value).replace(mine, "X") == str(unknown.value).replace("no-such-id", "X")
    for act in (lambda: kept.rename("user:bob", mine, "mine now"), lambda: kept.delete("user:bob", mine),
                lambda: kept.rate("user:bob", mine, 1, False), lambda: kept.export("user:bob", mine, "json")):
        with pytest.raises(ConversationNotFoundError):
            act()
    assert kept.get("user:alice", mine)["title"] == PRESIDENTS and kept.store.feedback(conversation=mine) == []
    listed = rag("history", "list", "--user", "bob", "--index", settings.index_dir)
    assert listed.returncode == 0 and theirs in listed.stdout and mine not in listed.stdout


def test_a_conversation_survives_a_restart_and_its_follow_up_resolves(tmp_path, embedder):
    """Without logins: the browser's cookie is the owner, across restarts; another browser sees nothing."""
    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    settings = Settings.from_env(environ={}, index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus", quiet=True)
    with serve_chat(settings) as server:
        browser = httpx.Client(base_url=server.url, timeout=SLOW / 1000)
        assert browser.get("/").cookies.get("rag-browser")
        conversation, _ = chat(browser, PRESIDENTS)
        cookies = dict(browser.cookies)
    with serve_chat(settings) as server:  # a new process would see the same library.sqlite
        browser = httpx.Client(base_url=server.url, timeout=SLOW / 1000, cookies=cookies)
        assert [c[1] for c in side_list(browser, "after")] == [conversation]
        ok, out = reopen(browser, conversation, "after")
        assert ok and "has Putin outlasted" in json.dumps(out[0]) and "five U.S. presidents" in out[1]
        again, out = chat(browser, "And how many NATO chiefs?", session="after")
        assert again == conversation
        turns = server.app.library.store.turns(conversation)
        assert [t["question"] for t in turns] == [PRESIDENTS, "And how many NATO chiefs?"]
        follow = turns[1]["answer"]
        assert "putin" in follow["resolved_question"].lower() and "nato" in follow["resolved_question"].lower()
        assert "six NATO chiefs" in follow["citations"][0]["text"]
        stranger = httpx.Client(base_url=server.url, timeout=SLOW / 1000)
        stranger.get("/")
        assert side_list(stranger, "stranger") == []
        assert not reopen(stranger, conversation, "stranger")[0]


def test_the_exports_hold_every_citation_exactly(team):
    server, settings = team
    library = server.app.library
    alice = log_in(server.url, "alice", PASSWORDS["alice"])
    conversation, _ = chat(alice, PRESIDENTS, ["default", "hr"], session="export")
    chat(alice, "How long is parental leave at Velmora?", ["default", "hr"], session="export")
    chat(alice, "And how many NATO chiefs?", ["default", "hr"], session="export")
    stored = [c for t in library.store.turns(conversation) for c in t["answer"]["citations"]]
    assert len(stored) >= 3 and {c["kb"] for c in stored} == {"default", "hr"}
    files = export(alice, "export")
    cli_md = rag("history", "export", conversation, "--auth-file", settings.auth_file, "--index", settings.index_dir)
    cli_json = rag("history", "export", conversation, "--format", "json", "--auth-file", settings.auth_file,
                   "--index", settings.index_dir)
    assert cli_md.returncode == cli_json.returncode == 0, cli_md.stderr + cli_json.stderr
    assert cli_md.stdout == files["md"] and json.loads(cli_json.stdout) == json.loads(files["json"])
    from_md = markdown_citations(files["md"])
    from_json = [c for t in json.loads(files["json"])["turns"] for c in t["answer"]["citations"]]
    keys = ("n", "kb", "source", "page", "start", "end", "text")
    for exported in (from_md, from_json):
        assert [[c[k] for k in keys] for c in exported] == [[c[k] for k in keys] for c in stored]
        for c in exported:
            assert c["text"] == stored_text(library, c)[c["start"]:c["end"]]
    assert "## 3. And how many NATO chiefs?" in files["md"] and "Searched as: " in files["md"]


def test_a_citation_into_a_kb_the_user_lost_is_withheld(team):
    server, settings = team
    users = settings.auth_file
    rita = log_in(server.url, "rita", PASSWORDS["rita"])
    conversation, _ = chat(rita, "How long is parental leave?", ["hr", "default"], session="rita")
    cited = server.app.library.store.turns(conversation)[0]["answer"]["citations"]
    assert cited and cited[0]["kb"] == "hr" and "Velmora" in cited[0]["text"]
    cli = ("history", "export", conversation, "--auth-file", users, "--index", settings.index_dir)
    revoke(users, "rita", ["hr"])
    try:
        # the page she still has open: its next answer no longer shows the earlier one's hr sources
        _, live = chat(rita, PRESIDENTS, ["default"], session="rita")
        ok, out = reopen(rita, conversation, "rita")
        files = export(rita, "rita")
        shown = rag(*cli)
        for text in (json.dumps(live), json.dumps(out), files["md"], files["json"], shown.stdout):
            assert "Velmora" not in text and "hr-notes" not in text and "withheld" in text
        assert ok and shown.returncode == 0
        assert json.loads(files["json"])["turns"][0]["answer"]["citations"][0] == {"n": 1, "withheld": True}
        assert "[1] withheld: from a knowledge base you may no longer read" in files["md"]
        assert rag(*cli[:-4], "--index", settings.index_dir).returncode == 2  # whose access? the users file says
    finally:
        grant(users, "rita", ["hr"], "ask")
    assert "Velmora" in rag(*cli).stdout  # decided when read: the grant back shows it again


def test_feedback_round_trips_through_rag_feedback_export_and_the_bench(team, tmp_path):
    server, settings = team
    bob = log_in(server.url, "bob", PASSWORDS["bob"])
    conversation, _ = chat(bob, PRESIDENTS, session="rate")
    chat(bob, "And how many NATO chiefs?", session="rate")
    like = lambda turn, liked: gradio_event(bob, "rag-chat", "like", [None, None], "rate",  # noqa: E731
                                            {"index": 2 * turn + 1, "value": ["…"], "liked": liked})
    assert like(0, True)[0]
    assert like(0, "")[0] and server.app.library.store.feedback(conversation=conversation) == []  # un-rated
    assert like(0, True)[0]
    ok, (row, box, _) = like(1, False)
    assert ok and row["visible"] and box["placeholder"].startswith("What was wrong")
    ok, _ = gradio_event(bob, "rag-comment", "submit", [None, None, "It counts NATO chiefs, not presidents."], "rate")
    assert ok
    assert like(1, True)[0] and like(1, False)[0]  # changed, and changed back: the comment given stays
    out = tmp_path / "rated.jsonl"
    done = rag("feedback", "export", "--user", "bob", "--out", out, "--index", settings.index_dir)
    assert done.returncode == 0 and "wrote 2 rated answers" in done.stderr, done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    turns = server.app.library.store.turns(conversation)
    assert [r["rating"] for r in records] == ["up", "down"]
    assert records[1]["comment"] == "It counts NATO chiefs, not presidents."
    for r, t in zip(records, turns):
        a = t["answer"]
        assert (r["question"], r["resolved_question"], r["answer"], r["confidence"], r["kbs"]) == \
            (t["question"], a["resolved_question"], a["text"], a["confidence"], t["kbs"])
        assert [c["text"] for c in r["citations"]] == [c["text"] for c in a["citations"]]
        for c in r["citations"]:
            assert c["text"] == stored_text(server.app.library, c)[c["start"]:c["end"]]
    bench = subprocess.run([sys.executable, "bench/suites/answers.py", "--feedback", str(out), "--index",
                            str(settings.index_dir)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env=run_env())
    assert bench.returncode == 0, bench.stderr
    assert "2 rated answers: 1 thumbs up, 1 thumbs down, 1 with a comment." in bench.stdout
    assert "| up answered | still cites a span rated good | 1/1 (100%) |" in bench.stdout
    # the same sentence is cited again: the answer rated wrong is not fixed by asking again
    assert "| down answered | abstains, or cites none of the spans rated wrong | 0/1 (0%) |" in bench.stdout
    up, down = records[0]["confidence"], records[1]["confidence"]
    assert f"ROC AUC {1.0 if up > down else 0.5 if up == down else 0.0:.3f} (1 up, 1 down" in bench.stdout


def test_an_older_library_database_is_brought_up_to_date_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "library.sqlite")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE kbs (name TEXT PRIMARY KEY, corpus TEXT NOT NULL, index_dir TEXT NOT NULL, created REAL NOT NULL);
        CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, password TEXT NOT NULL,
                               created REAL NOT NULL, seen REAL NOT NULL);
        CREATE TABLE tokens (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, user TEXT, kbs TEXT NOT NULL,
                             created REAL NOT NULL, used REAL);
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO kbs VALUES ('hr', 'kbs/hr/corpus', 'kbs/hr/index', 1.0);
        INSERT INTO sessions VALUES ('abc', 'alice', 'fp', 1.0, 2.0);
    """)
    db.close()
    store = LibraryStore(tmp_path)
    assert store.schema() == 2 and store.kbs()["hr"]["corpus"] == "kbs/hr/corpus"
    assert store.session("abc")["user"] == "alice"
    store.add_conversation("c1", "user:alice", "a question")
    assert store.add_turn("c1", "a question", ["hr"], {"text": "x", "citations": []}) == 1
    assert [c["turns"] for c in store.conversations("user:alice")] == [1]
    store.close()
    db = sqlite3.connect(tmp_path / "library.sqlite")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(RagError, match="newer version of rag"):
        LibraryStore(tmp_path).kbs()


# ---- in Chromium ------------------------------------------------------------------------------------


def test_the_side_list_reopening_exporting_and_a_thumbs_down_with_a_comment(browser, tmp_path, embedder):
    from playwright.sync_api import expect

    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    settings = Settings.from_env(environ={}, index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus", quiet=True)
    with serve_chat(settings) as server:
        context = browser.new_context(viewport={"width": 1500, "height": 950}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(server.url)
        wait_until_idle(page)
        history = page.locator("#rag-history")
        ask(page, PRESIDENTS)
        ask(page, "And how many NATO chiefs?")
        expect(history.locator("label")).to_have_count(1)
        expect(history).to_contain_text(PRESIDENTS)
        page.click("#rag-clear")
        expect(page.locator('#rag-chat [data-testid="user"]')).to_have_count(0)  # ask() counts the turns shown
        ask(page, "When did Putin first take office?")
        expect(history.locator("label")).to_have_count(2)
        # reopen the first: both its turns come back, and a follow-up continues it
        history.locator("label", has_text=PRESIDENTS).click()
        expect(page.locator('#rag-chat [data-testid="user"]')).to_have_count(2)
        expect(page.locator("#rag-sources .rag-latest mark").first).to_contain_text("NATO chiefs")
        page.fill("#rag-title input", "Putin's counterparts")
        page.click("#rag-rename")
        expect(history).to_contain_text("Putin's counterparts")
        shot(page, "history.png")
        # export: the Markdown file holds the cited sentence
        page.click("#rag-export-btn")
        with page.expect_download() as download:
            page.click("#rag-export-md")
        markdown = open(download.value.path(), encoding="utf-8").read()
        assert markdown.startswith("# Putin's counterparts\n") and "> He’s outlasted five U.S. presidents" in markdown
        # thumbs down on the second answer, with a comment
        page.locator('#rag-chat button[aria-label="Dislike"]').nth(1).click()
        expect(page.locator("#rag-feedback")).to_be_visible()
        page.fill("#rag-comment textarea", "The question was about NATO chiefs only.")
        shot(page, "feedback.png")
        page.click("#rag-comment-send")
        expect(page.locator("#rag-feedback")).to_be_hidden()
        conversation = next(c["id"] for c in server.app.library.store.conversations()
                            if c["title"] == "Putin's counterparts")
        rated = server.app.library.store.feedback(conversation=conversation)
        assert [(r["n"], r["rating"], r["comment"]) for r in rated] == \
            [(2, -1, "The question was about NATO chiefs only.")]
        # delete the other conversation (the browser asks first)
        history.locator("label", has_text="When did Putin").click()
        expect(page.locator('#rag-chat [data-testid="user"]')).to_have_count(1)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#rag-delete")
        expect(history.locator("label")).to_have_count(1)
        assert len(server.app.library.store.conversations()) == 1
        context.close()
