"""Who may ask and who may add: the users file, logins in front of the chat and its API, roles, the
refusal to go public without logins, slowed-down password guessing, and no password in any output.

The chat runs for real on a free loopback port (tests/helpers.serve_chat) with a users file holding a
reader (may only ask), an uploader (may also add documents) and a third user whose password gets
guessed. The security checks speak plain HTTP, as the page and gradio_client do, so they run without a
browser; one test drives the login page itself in Chromium. The start-up checks and the log check run
`ui.py` / `rag` as subprocesses and read what they print.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from helpers import (ROOT, SLOW, free_port, gradio_event, gradio_upload, log_in, run_env, serve_chat, shot, try_login,
                     wait_until_answering)

from rag import Settings, cli
from rag.access import Access, check_exposure, is_loopback
from rag.errors import AccessError
from rag.users import UserFile, add_user, hash_password, read_users, remove_user, verify_password

READER = ("rita", "reader-Secret-41")
UPLOADER = ("uma", "uploader-Secret-42")
GUESSED = ("gus", "guessed-Secret-44")  # whose password the throttle test guesses at
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
    assert running.get(READER[0]).role("default") == "ask"
    add_user(users, *UPLOADER, can_upload=True)  # `rag user add` while the chat runs
    assert running.check(*UPLOADER) and running.get(UPLOADER[0]).role("default") == "upload"
    remove_user(users, UPLOADER[0])
    assert not running.check(*UPLOADER) and running.get(UPLOADER[0]) is None

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
    check_exposure(host="127.0.0.1", access=nobody, no_auth=False)
    with pytest.raises(AccessError, match="rag user add"):
        check_exposure(host="0.0.0.0", access=nobody, no_auth=False)
    check_exposure(host="0.0.0.0", access=nobody, no_auth=True)
    add_user(tmp_path / "users.txt", *READER)
    logins = Access(users=UserFile(tmp_path / "users.txt"))
    check_exposure(host="0.0.0.0", access=logins, no_auth=False)
    with pytest.raises(AccessError, match="contradict"):
        check_exposure(host="0.0.0.0", access=logins, no_auth=True)


# ---- start-up from the command line -----------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["ui.py", "--host", "0.0.0.0"],
    ["-m", "rag.cli", "chat", "--host", "0.0.0.0"],
    ["-m", "rag.cli", "serve", "--host", "0.0.0.0"],
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
    """The real chat on a free loopback port with a users file: a reader, an uploader, one more reader."""
    root = tmp_path_factory.mktemp("auth")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    add_user(root / "users.txt", *READER)
    add_user(root / "users.txt", *UPLOADER, can_upload=True)
    add_user(root / "users.txt", *GUESSED)
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                 auth_file=root / "users.txt")
    with serve_chat(settings) as server:
        yield server.url, server.app


@pytest.fixture
def forgiven(served):
    """Tests that fail the reader's logins end with a good one, which starts the reader's count over."""
    yield
    assert try_login(served[0], *READER).status_code == 200


def test_without_a_login_only_the_login_form_is_served(served):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    url, app = served
    anonymous = httpx.Client(base_url=url)
    file_url = "/" + app.file_url("default", "putin-diplomacy.txt")
    corpus_file = app.library.get("default").corpus_dir / "putin-diplomacy.txt"
    for method, path in [("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", file_url),
                         ("GET", f"/gradio_api/file={corpus_file}"), ("GET", f"/gradio_api/file/{corpus_file}"),
                         ("POST", "/gradio_api/call/ask"), ("POST", "/gradio_api/queue/join"),
                         ("POST", "/gradio_api/upload")]:
        r = anonymous.request(method, path, json={"data": [QUESTION]} if method == "POST" else None)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    page = anonymous.get("/", follow_redirects=True)
    assert page.status_code == 200 and "rag-question" not in page.text and 'name="password"' in page.text
    # the same requests with a login: they were refused for the login's sake, not for being wrong
    reader = log_in(url, *READER)
    assert reader.get(file_url).text == corpus_file.read_text(encoding="utf-8")
    for route in (f"/gradio_api/file={corpus_file}", f"/gradio_api/file/{corpus_file}"):
        assert reader.get(route).status_code in (403, 404)  # gradio serves no document: /files does, checking who
    assert reader.get("/config").status_code == 200
    assert "rag-question" in reader.get("/").text
    reader.get("/logout")
    assert reader.get(file_url).status_code == 401  # logged out: the link is closed again


def test_a_wrong_password_is_refused_without_saying_which_half(served, forgiven):
    url, _ = served
    wrong_password = try_login(url, READER[0], WRONG)
    wrong_name = try_login(url, "nobody", READER[1])
    assert wrong_password.status_code == wrong_name.status_code == 400
    assert wrong_password.text == wrong_name.text
    assert not wrong_password.cookies


def test_the_login_page_in_a_browser(served, browser):
    """The one browser test of logins: the login page with our message, a refusal, then the chat as a reader."""
    from playwright.sync_api import expect

    url, app = served
    page = browser.new_page(viewport={"width": 1000, "height": 450})
    page.set_default_timeout(20_000)
    page.goto(url)
    expect(page.locator("input[type=password]")).to_be_visible()
    expect(page.get_by_text("rag user add")).to_be_visible()  # whom to ask for a login
    assert page.locator("#rag-question").count() == 0 and page.locator("#rag-sources").count() == 0
    shot(page, "login.png")
    page.fill("#username", READER[0])
    page.fill("#password", WRONG)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong name or password.")).to_be_visible()
    page.fill("#password", READER[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#rag-question")).to_be_visible(timeout=SLOW)
    expect(page.locator("#rag-logout")).to_have_text(f"Log out {READER[0]}")  # the per-session controls are set
    expect(page.locator("#rag-upload")).to_be_hidden()
    page.locator("#rag-logout").click()
    expect(page.locator("input[type=password]")).to_be_visible()
    page.close()


def shown_controls(http: httpx.Client) -> dict:
    """What the page's load event sets for this login: {elem_id: update} (the log-out label, the adding controls)."""
    config = http.get("/config").json()
    by_id = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    (load,) = [d for d in config["dependencies"] if any(by_id.get(o) == "rag-logout" for o in d["outputs"])]
    ok, updates = gradio_event(http, "rag-logout", "load", [])
    assert ok, updates
    return {by_id[o]: update for o, update in zip(load["outputs"], updates)}


def test_the_adding_controls_show_for_uploaders_only(served):
    url, _ = served
    reader, uploader = shown_controls(log_in(url, *READER)), shown_controls(log_in(url, *UPLOADER))
    assert reader["rag-logout"]["value"] == f"Log out {READER[0]}"
    assert reader["rag-upload"]["visible"] is False and reader["rag-reindex"]["visible"] is False
    assert uploader["rag-upload"]["visible"] is True and uploader["rag-reindex"]["visible"] is True


def post_upload(http: httpx.Client, path) -> tuple[bool, object]:
    """The page's upload, by hand: the file to gradio's upload route, then the page's upload event."""
    return gradio_event(http, "rag-upload", "upload", [gradio_upload(http, [path]), "default"])


def test_a_reader_posting_an_upload_or_reindex_directly_is_refused(served, tmp_path):
    url, app = served
    reader = log_in(url, *READER)
    note = tmp_path / "reader-note.txt"
    note.write_text("The reader's note says the moon is made of basalt.\n")
    ok, error = post_upload(reader, note)
    assert not ok and "may ask questions in 'default' but not add documents" in error
    assert not (app.library.get("default").corpus_dir / "reader-note.txt").exists()
    ok, error = gradio_event(reader, "rag-reindex", "click", ["default"])
    assert not ok and "may ask questions in 'default' but not add" in error

    # the same request from the uploader goes through: the refusal was the reader's role
    note = tmp_path / "uploader-note.txt"
    note.write_text("The uploader's note names the Ferrow glacier.\n")
    ok, output = post_upload(log_in(url, *UPLOADER), note)
    assert ok, output
    assert "uploader-note.txt</b> indexed" in output[0]
    assert (app.library.get("default").corpus_dir / "uploader-note.txt").exists()


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


class Waits(logging.Handler):
    """The throttle's decision for each login attempt it holds (its debug log), as they happen."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen: list[float] = []
        self.changed = threading.Condition()

    def emit(self, record):
        with self.changed:
            self.seen.append(float(re.match(r"login attempt waits (\d+) s", record.getMessage()).group(1)))
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[float]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen) >= count, timeout=SLOW / 1000), self.seen
            return self.seen[:count]


@pytest.fixture
def waits():
    logger = logging.getLogger("rag.chat.throttle")
    handler, level = Waits(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def timed_login(url: str, user: str, password: str, address: str = "127.0.0.1") -> tuple[int, float]:
    start = time.monotonic()
    status = try_login(url, user, password, address).status_code
    return status, time.monotonic() - start


def test_guessing_one_name_is_slowed_down_whoever_logs_in_and_from_wherever(served, waits):
    """Failures count per name: another user's success does not reset them, another address does not
    escape them, and while one guess waits, other names log in from the same address."""
    url, _ = served
    name = GUESSED[0]
    for _ in range(3):
        assert timed_login(url, name, WRONG)[0] == 400  # three free tries
    assert timed_login(url, *READER)[0] == 200  # the guesser logs in as themselves: no reset for gus
    status, fourth = timed_login(url, name, WRONG)
    assert status == 400 and fourth >= 1.0
    status, fifth = timed_login(url, name, WRONG, address="127.0.0.2")  # another address counts too
    assert status == 400 and fifth >= 2.0
    assert waits.wait_for(6) == [0, 0, 0, 0, 1, 2]

    guessing = threading.Thread(target=try_login, args=(url, name, WRONG))  # waits 4 s before its check
    guessing.start()
    waits.wait_for(7)  # it is waiting now
    assert try_login(url, *UPLOADER).status_code == 200  # another name, same address: not held up
    assert guessing.is_alive()
    guessing.join()
    assert waits.seen[6:8] == [4, 0]

    status, right = timed_login(url, *GUESSED)  # the right password waits its turn too, then gets in
    assert status == 200 and right >= 8.0
    assert timed_login(url, name, WRONG)[0] == 400  # and that success starts the count over
    assert waits.wait_for(10)[8:] == [8, 0]
    assert try_login(url, *GUESSED).status_code == 200


def test_read_only_takes_adding_away_from_everyone(tmp_path, embedder):
    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    settings = Settings.from_env(environ={"RAG_READ_ONLY": "1"}, index_dir=tmp_path / "index",
                                 corpus_dir=tmp_path / "corpus", quiet=True)
    with serve_chat(settings) as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and "rag-question" in page.text
        config = httpx.get(server.url + "/config").json()
        ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
        assert "rag-question" in ids and not ids & {"rag-upload", "rag-reindex"}  # the controls are not built
        note = tmp_path / "note.txt"
        note.write_text("A note.\n", encoding="utf-8")
        with pytest.raises(AccessError, match="read-only"):
            next(server.app.upload([str(note)], "default"))
        with pytest.raises(AccessError, match="read-only"):
            next(server.app.reindex("default"))
        assert not (server.app.library.get('default').corpus_dir / "note.txt").exists()


# ---- no password in any output ----------------------------------------------------------------

SERVE_WITH_DEBUG_LOGS = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
    "from rag.server import main; sys.exit(main(sys.argv[1:]))"
)


def test_passwords_never_appear_in_logs_errors_or_the_users_file(tmp_path):
    from gradio_client import Client

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
        wait_until_answering(url, server, log)
        for name, password in ((READER[0], WRONG), ("nobody", READER[1]), (UPLOADER[0], READER[1])):
            assert try_login(url, name, password).status_code == 400
        for _ in range(2):  # the reader's third failure is logged (without the name)
            assert try_login(url, READER[0], UPLOADER[1]).status_code == 400
        # typed into the name field, as people do: the form the login page posts (multipart)
        assert httpx.post(url + "/login", files={"username": (None, READER[1]), "password": (None, WRONG)}).status_code == 400
        with pytest.raises(ValueError):
            Client(url, auth=(UPLOADER[0], WRONG), verbose=False)
        assert Client(url, auth=UPLOADER, verbose=False).predict(QUESTION, api_name="/ask")["citations"]
        ok = httpx.post(url + "/login", files={"username": (None, READER[0]), "password": (None, READER[1])})
        assert ok.status_code == 200 and "rag-question" in httpx.get(url + "/", cookies=ok.cookies).text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in text and f"logins from {users}: 2 user(s)" in text  # the capture works
    assert "3 failed logins for one user name, the last from 127.0.0.1" in text
    assert "login attempt waits 1 s" in text  # the throttle's own debug lines are in the capture
    stored = users.read_text(encoding="utf-8")
    for secret in (READER[1], UPLOADER[1], WRONG):
        assert secret not in text, f"a password in the server's output: {secret}"
        assert secret not in stored
        assert not any(secret in out for out in outputs)
