"""Who may ask and who may add: the users file, logins in front of the chat and its API, roles, the
refusal to go public without logins, slowed-down password guessing, and no password in any output.

The chat runs for real on a free loopback port with a users file holding a reader (may only ask)
and an uploader (may also add documents); Chromium logs in like a person; scripts use HTTP and
gradio_client like a script would. The start-up checks and the log check run `ui.py` / `rag` as
subprocesses and read what they print.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import ROOT
from test_ui import SLOW, ask, browser, free_port, shot, upload, wait_until_idle  # noqa: F401 (browser: a fixture)

from rag import Settings, chat, cli
from rag.chat.access import Access, check_exposure, is_loopback
from rag.errors import AccessError
from rag.users import UserFile, add_user, hash_password, read_users, remove_user, verify_password

READER = ("rita", "reader-Secret-41")
UPLOADER = ("uma", "uploader-Secret-42")
WRONG = "not-her-Password-43"
QUESTION = "How many U.S. presidents has Putin outlasted?"


# ---- the users file ------------------------------------------------------------------------


def test_passwords_are_stored_as_salted_scrypt_hashes(tmp_path):
    encoded = hash_password("correct horse battery")
    algo, n, r, p, salt, digest = encoded.split("$")
    assert (algo, n, r, p) == ("scrypt", "16384", "8", "1")
    assert encoded != hash_password("correct horse battery")  # a fresh salt every time
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    weaker = hash_password("correct horse battery", n=2**10, r=4, p=2)
    assert weaker.startswith("scrypt$1024$4$2$") and verify_password("correct horse battery", weaker)
    with pytest.raises(AccessError, match="at least 8"):
        hash_password("short")


def test_user_add_remove_and_list_write_the_file_atomically_with_mode_0600(tmp_path, capsys, monkeypatch):
    users = tmp_path / "conf" / "users.txt"
    monkeypatch.delenv("RAG_AUTH_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(READER[1] + "\n"))
    assert cli.main(["user", "add", READER[0], "--password-stdin", "--auth-file", str(users)]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(UPLOADER[1] + "\n"))
    monkeypatch.setenv("RAG_AUTH_FILE", str(users))
    assert cli.main(["user", "add", UPLOADER[0], "--can-upload", "--password-stdin"]) == 0
    assert users.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in users.parent.iterdir()) == ["users.txt"]  # no temporary file left behind
    lines = [line for line in users.read_text().splitlines() if not line.startswith("#")]
    assert [line.split(":")[0::2] for line in lines] == [["rita", "ask"], ["uma", "upload"]]
    assert all(line.split(":")[1].startswith("scrypt$16384$8$1$") for line in lines)
    capsys.readouterr()
    assert cli.main(["user", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["rita\task", "uma\tupload"]

    assert cli.main(["user", "remove", "rita"]) == 0
    assert list(read_users(users)) == ["uma"]
    assert cli.main(["user", "remove", "rita"]) == 2
    assert "no user 'rita'" in capsys.readouterr().err
    assert cli.main(["user", "add", "no:colons", "--password-stdin"]) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal and no --password-stdin: refuse, never echo
    assert cli.main(["user", "add", "someone"]) == 2
    assert "--password-stdin" in capsys.readouterr().err
    monkeypatch.delenv("RAG_AUTH_FILE")
    assert cli.main(["user", "list"]) == 2
    assert "--auth-file" in capsys.readouterr().err


def test_a_broken_users_file_names_its_line_and_a_running_chat_sees_edits(tmp_path):
    users = tmp_path / "users.txt"
    add_user(users, *READER)
    running = UserFile(users)
    assert running.check(*READER) and not running.check(READER[0], WRONG) and not running.check("nobody", READER[1])
    assert not running.can_upload(READER[0])
    add_user(users, *UPLOADER, can_upload=True)  # `rag user add` while the chat runs
    assert running.check(*UPLOADER) and running.can_upload(UPLOADER[0])
    remove_user(users, UPLOADER[0])
    assert not running.check(*UPLOADER) and not running.can_upload(UPLOADER[0])

    users.write_text(users.read_text() + "mallory:plaintext-password:ask\n")
    with pytest.raises(AccessError, match=r"users.txt line 5: the password hash is not scrypt"):
        UserFile(users)
    with pytest.raises(AccessError):
        running.check(*READER)  # fails closed until the file is fixed
    (tmp_path / "empty.txt").write_text("# nobody yet\n")
    with pytest.raises(AccessError, match="has no users: add one with `rag user add"):
        UserFile(tmp_path / "empty.txt")


def test_exposure_beyond_loopback_needs_users_or_no_auth(tmp_path):
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org", ""))
    nobody = Access()
    check_exposure(host="127.0.0.1", share=False, access=nobody, no_auth=False)
    for host, share in (("0.0.0.0", False), ("127.0.0.1", True)):
        with pytest.raises(AccessError, match="rag user add"):
            check_exposure(host=host, share=share, access=nobody, no_auth=False)
        check_exposure(host=host, share=share, access=nobody, no_auth=True)
    add_user(tmp_path / "users.txt", *READER)
    logins = Access(users=UserFile(tmp_path / "users.txt"))
    check_exposure(host="0.0.0.0", share=True, access=logins, no_auth=False)
    with pytest.raises(AccessError, match="contradict"):
        check_exposure(host="0.0.0.0", share=False, access=logins, no_auth=True)


# ---- start-up from the command line -----------------------------------------------------------


def run_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("command", [
    ["ui.py", "--host", "0.0.0.0"],
    ["-m", "rag.cli", "chat", "--host", "0.0.0.0"],
    ["ui.py", "--share"],
])
def test_start_up_beyond_loopback_without_logins_stops_and_says_how_to_add_users(command, tmp_path):
    argv = [sys.executable] + [str(ROOT / "ui.py") if c == "ui.py" else c for c in command]
    done = subprocess.run(argv + ["--index", str(tmp_path / "index"), "--corpus", str(tmp_path / "corpus"),
                                  "--port", str(free_port())],
                          cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "rag user add" in lines[0], done.stderr
    assert not (tmp_path / "index").exists()  # stopped before doing anything


def test_no_auth_starts_but_warns(tmp_path):
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "ui.py"), "--host", "0.0.0.0", "--no-auth", "--port", str(free_port()),
         "--index", str(tmp_path / "index"), "--corpus", str(tmp_path / "corpus")],
        cwd=tmp_path, env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
    finally:
        server.kill()
        server.wait()
    assert first.startswith("warning: --no-auth: anyone who can reach 0.0.0.0 can read every indexed document"), first


# ---- the chat behind logins -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    """The real chat on a free loopback port with a users file: a reader and an uploader."""
    root = tmp_path_factory.mktemp("auth")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    add_user(root / "users.txt", *READER)
    add_user(root / "users.txt", *UPLOADER, can_upload=True)
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                 auth_file=root / "users.txt")
    demo = chat.build_app(settings)
    _, url, _ = chat.launch(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    app = demo.rag_app
    assert app.wait_ready(), "the index never became ready"
    yield url.rstrip("/"), app
    demo.close()


def try_login(url: str, user: str, password: str, address: str = "127.0.0.1") -> httpx.Response:
    """gradio's login form, posted the way the page and gradio_client post it, from this address."""
    with httpx.Client(base_url=url, timeout=SLOW / 1000, transport=httpx.HTTPTransport(local_address=address)) as http:
        return http.post("/login", data={"username": user, "password": password})


def log_in(url: str, user: str, password: str) -> httpx.Client:
    """An HTTP session holding the login cookie."""
    http = httpx.Client(base_url=url, timeout=SLOW / 1000)
    r = http.post("/login", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return http


@pytest.fixture
def forgiven(served):
    """Tests that fail logins end with a good one, which lifts the slow-down for 127.0.0.1."""
    yield
    assert try_login(served[0], *READER).status_code == 200


def test_before_login_only_the_login_page_is_served(served, browser):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError
    from playwright.sync_api import expect

    url, app = served
    page = browser.new_page(viewport={"width": 1000, "height": 450})
    page.goto(url)
    expect(page.locator("input[type=password]")).to_be_visible()
    expect(page.get_by_text("rag user add")).to_be_visible()  # our message on gradio's login page
    assert page.locator("#rag-question").count() == 0 and page.locator("#rag-sources").count() == 0
    shot(page, "login.png")
    page.close()

    anonymous = httpx.Client(base_url=url)
    file_url = "/" + app.file_url("putin-diplomacy.txt")
    for method, path in [("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", file_url),
                         ("POST", "/gradio_api/call/ask"), ("POST", "/gradio_api/queue/join"),
                         ("POST", "/gradio_api/upload")]:
        r = anonymous.request(method, path, json={"data": [QUESTION]} if method == "POST" else None)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    # the same requests with a login: they were refused for the login's sake, not for being wrong
    reader = log_in(url, *READER)
    assert reader.get(file_url).text == (app.corpus_dir / "putin-diplomacy.txt").read_text(encoding="utf-8")
    assert reader.get("/config").status_code == 200
    assert "rag-question" in reader.get("/").text and "rag-question" not in anonymous.get("/").text


def test_a_wrong_password_is_refused_without_saying_which_half(served, browser, forgiven):
    from playwright.sync_api import expect

    url, _ = served
    wrong_password = try_login(url, READER[0], WRONG)
    wrong_name = try_login(url, "nobody", READER[1])
    assert wrong_password.status_code == wrong_name.status_code == 400
    assert wrong_password.text == wrong_name.text
    assert not wrong_password.cookies

    page = browser.new_page()
    page.goto(url)
    page.fill("input[data-testid=textbox]", READER[0])
    page.fill("input[type=password]", WRONG)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text(re.compile("incorrect credentials", re.I))).to_be_visible()
    assert page.locator("#rag-question").count() == 0
    page.close()


def browser_login(browser, url: str, user: str, password: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(url)
    page.fill("input[data-testid=textbox]", user)
    page.fill("input[type=password]", password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#rag-question", timeout=SLOW)
    wait_until_idle(page)
    from playwright.sync_api import expect

    expect(page.locator("#rag-logout")).to_have_text(f"Log out {user}")  # the per-session controls are set
    return page


def test_a_reader_asks_and_opens_sources_but_sees_no_upload_controls(served, browser):
    from playwright.sync_api import expect

    url, app = served
    page = browser_login(browser, url, *READER)
    expect(page.locator("#rag-upload")).to_be_hidden()
    expect(page.locator("#rag-reindex")).to_be_hidden()
    answer = ask(page, QUESTION)
    expect(answer.locator("a.rag-cite").first).to_be_visible()
    href = page.locator("#rag-sources .rag-latest a.rag-open").first.get_attribute("href")
    opened = page.request.get(url + "/" + href)  # the browser's login cookie opens the file
    assert opened.status == 200 and "five U.S. presidents" in opened.text()

    page.locator("#rag-logout").click()
    expect(page.locator("input[type=password]")).to_be_visible()
    assert page.request.get(url + "/" + href).status == 401  # logged out: the link is closed again
    page.close()


def component_event(config: dict, elem_id: str, event: str) -> int:
    """The dependency (fn_index) that `event` on the component with this elem_id triggers."""
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(ids) == 1, f"no component #{elem_id}"
    return next(d["id"] for d in config["dependencies"] if [ids[0], event] in d["targets"])


def run_event(http: httpx.Client, fn_index: int, data: list) -> dict:
    """Call a page event the way the page does (queue/join, then the event stream); its last message."""
    session = secrets.token_hex(8)
    joined = http.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session})
    assert joined.status_code == 200, joined.text
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the event stream ended without a result")


def post_upload(http: httpx.Client, name: str, text: str) -> dict:
    """The page's upload, by hand: the file to gradio's upload route, then the page's upload event."""
    stored = http.post("/gradio_api/upload", files={"files": (name, text.encode(), "text/plain")})
    assert stored.status_code == 200, stored.text
    config = http.get("/config").json()
    files = [{"path": stored.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}]
    return run_event(http, component_event(config, "rag-upload", "upload"), [files])


def test_a_reader_posting_an_upload_or_reindex_directly_is_refused(served):
    url, app = served
    reader = log_in(url, *READER)
    done = post_upload(reader, "reader-note.txt", "The reader's note says the moon is made of basalt.\n")
    assert done["success"] is False
    assert "may ask questions but not add documents" in done["output"]["error"]
    assert not (app.corpus_dir / "reader-note.txt").exists()
    config = reader.get("/config").json()
    done = run_event(reader, component_event(config, "rag-reindex", "click"), [])
    assert done["success"] is False and "may ask questions but not add" in done["output"]["error"]

    # the same request from the uploader goes through: the refusal was the reader's role
    done = post_upload(log_in(url, *UPLOADER), "uploader-note.txt", "The uploader's note names the Ferrow glacier.\n")
    assert done["success"] is True, done
    assert "uploader-note.txt</b> indexed" in done["output"]["data"][0]
    assert (app.corpus_dir / "uploader-note.txt").exists()


def test_an_uploader_adds_a_document_in_the_browser(served, browser, tmp_path):
    from playwright.sync_api import expect

    url, app = served
    page = browser_login(browser, url, *UPLOADER)
    expect(page.locator("#rag-upload")).to_be_visible()
    expect(page.locator("#rag-reindex")).to_be_visible()
    note = tmp_path / "observatory.txt"
    note.write_text("The Pellow observatory sits on Mount Carra. Its dome was rebuilt in 2004.\n", encoding="utf-8")
    upload(page, [note])
    expect(page.locator("#rag-upload-log")).to_contain_text("observatory.txt indexed")
    assert (app.corpus_dir / "observatory.txt").read_text(encoding="utf-8") == note.read_text(encoding="utf-8")
    ask(page, "Where does the Pellow observatory sit?")
    expect(page.locator("#rag-sources .rag-latest mark").first).to_contain_text("Mount Carra")
    page.close()


def test_the_ask_api_answers_with_a_login_and_refuses_without(served, forgiven):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    url, app = served
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=(READER[0], WRONG), verbose=False)
    answer = Client(url, auth=READER, verbose=False).predict(QUESTION, api_name="/ask")
    assert not answer["abstained"] and any("five U.S. presidents" in c["text"] for c in answer["citations"])
    assert httpx.post(url + "/gradio_api/call/ask", json={"data": [QUESTION]}).status_code == 401


def timed_login(url: str, password: str, address: str = "127.0.0.1") -> tuple[int, float]:
    start = time.monotonic()
    status = try_login(url, READER[0], password, address).status_code
    return status, time.monotonic() - start


def test_repeated_failures_from_one_address_are_slowed_down(served, forgiven):
    url, _ = served
    for _ in range(3):
        assert timed_login(url, WRONG)[0] == 400  # three free tries
    status, fourth = timed_login(url, WRONG)
    assert status == 400 and fourth >= 1.0
    status, fifth = timed_login(url, WRONG)
    assert status == 400 and fifth >= 2.0
    status, elsewhere = timed_login(url, WRONG, address="127.0.0.2")  # another address is not slowed
    assert status == 400 and elsewhere < 2.0
    status, right = timed_login(url, READER[1])  # the right password waits its turn too, then gets in
    assert status == 200 and right >= 4.0
    status, after = timed_login(url, WRONG)  # and a success starts the count over (else 8 s)
    assert status == 400 and after < 4.0
    assert timed_login(url, READER[1], address="127.0.0.2")[0] == 200


def test_read_only_takes_adding_away_from_everyone(tmp_path, embedder, browser):
    from playwright.sync_api import expect

    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    settings = Settings.from_env(environ={"RAG_READ_ONLY": "1"}, index_dir=tmp_path / "index",
                                 corpus_dir=tmp_path / "corpus", quiet=True)
    demo = chat.build_app(settings)
    _, url, _ = chat.launch(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        app = demo.rag_app
        page = browser.new_page()
        page.goto(url)
        wait_until_idle(page)
        expect(page.locator("#rag-question")).to_be_visible()
        assert page.locator("#rag-upload").count() == 0 and page.locator("#rag-reindex").count() == 0
        config = httpx.get(url.rstrip("/") + "/config").json()
        assert not [c for c in config["components"] if c.get("props", {}).get("elem_id") in ("rag-upload", "rag-reindex")]
        page.close()
        note = tmp_path / "note.txt"
        note.write_text("A note.\n", encoding="utf-8")
        with pytest.raises(AccessError, match="read-only"):
            next(app.upload([str(note)]))
        with pytest.raises(AccessError, match="read-only"):
            next(app.reindex())
        assert not (app.corpus_dir / "note.txt").exists()
    finally:
        demo.close()


# ---- no password in any output ----------------------------------------------------------------

SERVE_WITH_DEBUG_LOGS = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
    "from rag.chat import main; sys.exit(main(sys.argv[1:]))"
)


def test_passwords_never_appear_in_logs_errors_or_the_users_file(tmp_path, browser):
    from gradio_client import Client
    from playwright.sync_api import expect

    users = tmp_path / "users.txt"
    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    outputs = []
    for (name, password), role in ((READER, []), (UPLOADER, ["--can-upload"])):
        done = subprocess.run([sys.executable, "-m", "rag.cli", "user", "add", name, "--password-stdin", *role,
                               "--auth-file", str(users)], input=password + "\n", capture_output=True, text=True,
                              env=run_env(), cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE_WITH_DEBUG_LOGS, "--auth-file", str(users), "--port", str(port),
             "--index", str(tmp_path / "index"), "--corpus", str(tmp_path / "corpus")],
            cwd=tmp_path, env=run_env(), stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SLOW / 1000
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        for name, password in ((READER[0], WRONG), ("nobody", READER[1]), (UPLOADER[0], READER[1])):
            assert try_login(url, name, password).status_code == 400
        with pytest.raises(ValueError):
            Client(url, auth=(UPLOADER[0], WRONG), verbose=False)
        assert Client(url, auth=UPLOADER, verbose=False).predict(QUESTION, api_name="/ask")["citations"]
        page = browser.new_page()
        page.goto(url)
        page.fill("input[data-testid=textbox]", READER[0])
        page.fill("input[type=password]", READER[1])
        page.get_by_role("button", name="Login").click()
        expect(page.locator("#rag-question")).to_be_visible(timeout=SLOW)
        page.close()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in text and f"logins from {users}: 2 user(s), 1 may add documents" in text  # the capture works
    assert "3 failed logins from 127.0.0.1" in text
    stored = users.read_text(encoding="utf-8")
    for secret in (READER[1], UPLOADER[1], WRONG):
        assert secret not in text, f"a password in the server's output: {secret}"
        assert secret not in stored
        assert not any(secret in out for out in outputs)
