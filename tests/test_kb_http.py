"""Knowledge bases behind logins, tested at the HTTP level against the real server: for each role and KB, what
comes back, what is refused, and that nothing of a KB leaks to someone who may not read it (answers, passages,
errors, file links, uploads, the page's own data), with grants applied at the next request.

The team: `default` (the shipped corpus), `hr` and `skunkworks` (a name that appears nowhere else, so a leak of
the name shows up as a substring). rita may ask in hr; uma may ask in hr and add to skunkworks; boss may do
everything everywhere.
"""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from conftest import ROOT
from helpers import SLOW, ask, gradio_event, gradio_upload, log_in as login, serve_chat, shot
from rag import Library, Settings
from rag.users import add_user, grant, remove_user, revoke

HR = "Parental leave at Velmora Corp is 26 weeks at full pay. Requests go to the HR office on the third floor.\n"
SECRET = "The prototype drone Kestrel-9 flies for 41 minutes on one charge. Its test range is at Dunmore Field.\n"
SECRET_WORDS = ("skunkworks", "Kestrel", "Dunmore", "41 minutes")
PASSWORDS = {"rita": "rita-Secret-41", "uma": "uma-Secret-42", "boss": "boss-Secret-43"}


@pytest.fixture(scope="module")
def team(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("team")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    users = root / "users.txt"
    add_user(users, "rita", PASSWORDS["rita"], kbs={"hr": "ask"})
    add_user(users, "uma", PASSWORDS["uma"], kbs={"hr": "ask", "skunkworks": "upload"})
    add_user(users, "boss", PASSWORDS["boss"], can_upload=True)
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                 auth_file=users)
    library = Library.open(settings)
    for name, text in (("hr", HR), ("skunkworks", SECRET)):
        (library.create(name).corpus_dir / f"{name}-notes.txt").write_text(text)
    with serve_chat(settings) as server:
        yield server, users, root


def leaks(text: str) -> list[str]:
    return [w for w in SECRET_WORDS if w.lower() in text.lower()]


def ask_api(url: str, name: str, question: str, kbs=None):
    """The chat's `ask` endpoint through gradio_client, as a script would call it."""
    return Client(url, auth=(name, PASSWORDS[name]), verbose=False).predict(question, 0, "", kbs, api_name="/ask")


def test_a_reader_of_hr_gets_nothing_of_skunkworks(team):
    server, _, _ = team
    answer = ask_api(server.url, "rita", "How long does the prototype drone fly on one charge?")
    assert answer["abstained"] and {p["kb"] for p in answer["passages"]} <= {"hr"}
    assert leaks(json.dumps(answer)) == []
    with pytest.raises(AppError) as named:
        ask_api(server.url, "rita", "How long does the prototype drone fly?", ["skunkworks"])
    with pytest.raises(AppError) as unknown:
        ask_api(server.url, "rita", "How long does the prototype drone fly?", ["no-such-kb"])
    assert str(named.value) == str(unknown.value) and leaks(str(named.value)) == []
    # the page's own chat event: the same refusal in words that name nothing
    http = login(server.url, "rita", PASSWORDS["rita"])
    ok, output = gradio_event(http, "rag-question", "submit", ["How long does the drone fly?", [], 5, "hybrid",
                                                                ["skunkworks"], None])
    assert ok and leaks(json.dumps(output)) == [] and "choose a knowledge base you may read" in json.dumps(output)
    # the same question from someone who may read it
    allowed = ask_api(server.url, "uma", "How long does the prototype drone fly on one charge?", ["skunkworks"])
    assert "41 minutes" in allowed["citations"][0]["text"] and allowed["citations"][0]["kb"] == "skunkworks"


def test_the_page_names_only_the_kbs_a_user_may_read(team):
    server, _, _ = team
    for name, readable in (("rita", ["hr"]), ("uma", ["hr", "skunkworks"]), ("boss", ["default", "hr", "skunkworks"])):
        http = login(server.url, name, PASSWORDS[name])
        config = http.get("config").text
        ok, (picker, *_) = gradio_event(http, "rag-kbs", "load", [])  # what the page load puts in the picker
        assert ok and picker["choices"] == [[kb, kb] for kb in readable], picker
        ok, (status,) = gradio_event(http, "rag-status", "load", [])
        assert ok and [kb for kb in ("default", "hr", "skunkworks") if f'"rag-kb">{kb}<' in status] == \
            (readable if len(readable) > 1 else [])
        if name == "rita":
            assert leaks(status) == [] and leaks(config) == [] and "document" in status


def test_file_links_follow_the_grants(team):
    server, _, _ = team
    anonymous = httpx.get(server.url + "/files/hr/hr-notes.txt")
    assert anonymous.status_code == 401
    rita = login(server.url, "rita", PASSWORDS["rita"])
    assert rita.get("files/hr/hr-notes.txt").text == HR
    refused, missing = rita.get("files/skunkworks/skunkworks-notes.txt"), rita.get("files/nope/skunkworks-notes.txt")
    assert refused.status_code == missing.status_code == 404 and refused.json() == missing.json()
    assert rita.get("files/hr/../skunkworks-notes.txt").status_code == 404
    assert rita.get("files/hr/%2e%2e/%2e%2e/users.txt").status_code == 404
    assert login(server.url, "uma", PASSWORDS["uma"]).get("files/skunkworks/skunkworks-notes.txt").text == SECRET


def test_uploads_go_only_where_the_user_may_add(team, tmp_path):
    server, _, _ = team
    note = tmp_path / "kestrel-range.txt"
    note.write_text("The Kestrel-9 range officer is Maren Ode.\n")
    rita = login(server.url, "rita", PASSWORDS["rita"])
    for kb in ("skunkworks", "hr"):  # one she may not read, one she may only ask in
        ok, error = gradio_event(rita, "rag-upload", "upload", [gradio_upload(rita, [note]), kb])
        assert not ok, error
    library = server.app.library
    assert not (library.get("skunkworks").corpus_dir / note.name).exists()
    assert not (library.get("hr").corpus_dir / note.name).exists()
    uma = login(server.url, "uma", PASSWORDS["uma"])
    ok, output = gradio_event(uma, "rag-upload", "upload", [gradio_upload(uma, [note]), "skunkworks"])
    assert ok and "kestrel-range.txt" in json.dumps(output) and "indexed" in json.dumps(output)
    answer = ask_api(server.url, "uma", "Who is the range officer of the Kestrel-9?", ["skunkworks"])
    assert "Maren Ode" in answer["citations"][0]["text"]


def test_a_grant_or_revoke_applies_at_the_next_request(team):
    server, users, _ = team
    rita = login(server.url, "rita", PASSWORDS["rita"])
    assert rita.get("files/skunkworks/skunkworks-notes.txt").status_code == 404
    grant(users, "rita", ["skunkworks"], "ask")
    try:
        assert rita.get("files/skunkworks/skunkworks-notes.txt").text == SECRET  # same session, no restart
        answer = ask_api(server.url, "rita", "How long does the prototype drone fly on one charge?", ["skunkworks"])
        assert "41 minutes" in answer["citations"][0]["text"]
    finally:
        revoke(users, "rita", ["skunkworks"])
    assert rita.get("files/skunkworks/skunkworks-notes.txt").status_code == 404


def test_sessions_end_with_logout_removal_or_a_new_password(team):
    server, users, _ = team
    add_user(users, "temp", "temp-Secret-44", kbs={"hr": "ask"})
    first, second = login(server.url, "temp", "temp-Secret-44"), login(server.url, "temp", "temp-Secret-44")
    assert first.get("files/hr/hr-notes.txt").status_code == 200
    assert first.get("logout", follow_redirects=False).status_code == 302
    assert first.get("files/hr/hr-notes.txt").status_code == 401
    assert second.get("files/hr/hr-notes.txt").status_code == 200  # another session of the same user lives on
    add_user(users, "temp", "temp-Secret-45", kbs={"hr": "ask"})  # a new password ends every old session
    assert second.get("files/hr/hr-notes.txt").status_code == 401
    third = login(server.url, "temp", "temp-Secret-45")
    remove_user(users, "temp")
    assert third.get("files/hr/hr-notes.txt").status_code == 401
    assert third.get("config").status_code == 401
    bad = httpx.post(server.url + "/login", data={"username": "temp", "password": "temp-Secret-45"})
    assert bad.status_code == 400 and bad.json() == {"detail": "Incorrect credentials."}


def test_without_a_login_only_the_login_page_answers(team):
    server, _, _ = team
    page = httpx.get(server.url, follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"].startswith("login")
    assert httpx.get(server.url + "/login").status_code == 200
    for path in ("config", "gradio_api/info", "files/default/putin-diplomacy.txt"):
        assert httpx.get(f"{server.url}/{path}").status_code == 401, path
    with pytest.raises(AuthenticationError):
        Client(server.url, verbose=False).predict("How many U.S. presidents has Putin outlasted?", api_name="/ask")


def test_the_picker_in_a_browser(team, browser):
    """The one browser test of knowledge bases: uma's picker lists hr and skunkworks (not default); with both
    chosen, the answer comes from skunkworks and its source names it."""
    from playwright.sync_api import expect

    server, _, _ = team
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(server.url)
    page.fill("#username", "uma")
    page.fill("#password", PASSWORDS["uma"])
    page.get_by_role("button", name="Log in").click()
    picker = page.locator("#rag-kbs")
    expect(picker).to_be_visible(timeout=SLOW)
    expect(picker.locator(".token")).to_have_text(["hr"])  # her first KB: she may not read default
    picker.locator("input").click()
    options = page.locator("#rag-kbs [role=option]")
    expect(options).to_have_text([re.compile(r"\bhr$"), re.compile(r"\bskunkworks$")])
    options.filter(has_text="skunkworks").click()
    page.keyboard.press("Escape")
    expect(picker.locator(".token")).to_have_text(["hr", "skunkworks"])
    bubble = ask(page, "How long does the prototype drone fly on one charge?")
    assert "41 minutes" in bubble.inner_text()
    source = page.locator("#rag-sources .rag-latest .rag-src").first
    expect(source.locator(".rag-kb")).to_have_text("skunkworks")
    expect(source.locator("mark")).to_contain_text("41 minutes")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "kb-picker.png")
    page.close()
