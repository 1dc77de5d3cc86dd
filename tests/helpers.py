"""What several test modules share: paths, the `rag` command, the chat served on loopback, logins over
HTTP and the browser's steps. Test modules import from here, never from each other.

`serve_chat` is the one way tests start the chat server: when the server changes, only it changes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS_FILE = ROOT / "corpus" / "putin-diplomacy.txt"
SLOW = 180_000  # ms: upper bound for model loading, indexing and answering on a busy machine, not a speed check
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--no-first-run",
]
SHOTS = Path(os.environ.get("RAG_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "rag-screenshots")


def shared_path(*parts) -> Path:
    """A file under ../shared, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared bench data (../shared beside the repo)")
    return path


# ---- processes and ports ----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on now. Another process may take it before the caller binds it:
    the servers below bind it themselves and start again on another port when it was taken."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def refusing_port():
    """A loopback port where every connection is refused for as long as this lasts: bound, never
    listening, so no other process can take it meanwhile (a port freed a moment ago could be)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def run_env(**extra) -> dict:
    """This environment without RAG_* and GRADIO_* settings, with this checkout's rag first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def rag(*args, env=None, timeout=300, cwd=ROOT) -> subprocess.CompletedProcess:
    """The `rag` command as a user runs it, with `env` added to this environment."""
    return subprocess.run([sys.executable, "-m", "rag.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def rag_killed_at(patch: str, *args, env=None) -> subprocess.CompletedProcess:
    """Run `rag` with `patch` applied first; the patch SIGKILLs the process at its chosen instant."""
    script = textwrap.dedent(patch) + "\nimport sys\nfrom rag.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def wait_until_answering(url: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll until the server at `url` answers HTTP at all (any status), or its process exits."""
    import httpx

    deadline = time.monotonic() + SLOW / 1000
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}): {log.read_text() if log else ''}")
        try:
            httpx.get(url + "/", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


# ---- the chat server ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Served:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    app: object  # the ChatApp behind it (its Library, Access and handlers)
    server: object  # rag.server.Server: settings, library, access, auth, chat


@contextmanager
def serve_chat(settings, *, ready: bool = True, **options):
    """The real server (rag.server: the chat and the API) over `settings`, in this process, on a port the system
    picks, answering HTTP when this yields.

    `options` go to rag.server.build (max_upload_mb, access). With ready=True it also waits until start-up has
    indexed every knowledge base once. Logins and the slow-down of guessing apply when settings name a users
    file, exactly as `rag serve` runs them.
    """
    from rag.server.app import Running, build

    app = build(settings, **options)
    running = Running(app, "127.0.0.1", 0).start()
    chat = app.state.rag.chat
    try:
        if ready:
            assert chat.started.wait(SLOW / 1000), "start-up indexing never finished"
            assert not chat.errors, chat.errors
        yield Served(url=running.url.rstrip("/"), app=chat, server=app.state.rag)
    finally:
        running.stop()


# ---- logins over HTTP -------------------------------------------------------------------------


def try_login(url: str, user: str, password: str, address: str = "127.0.0.1"):
    """gradio's login form, posted as the page and gradio_client post it, from this loopback address."""
    import httpx

    with httpx.Client(base_url=url, timeout=SLOW / 1000, transport=httpx.HTTPTransport(local_address=address)) as http:
        return http.post("/login", data={"username": user, "password": password})


def log_in(url: str, user: str, password: str):
    """An HTTP session holding the login cookie."""
    import httpx

    http = httpx.Client(base_url=url, timeout=SLOW / 1000)
    r = http.post("/login", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return http


# ---- the page in a browser (the `browser` fixture is in conftest.py) ----------------------------


def wait_until_idle(page):
    """The status line shows counts and no indexing job is running."""
    page.wait_for_function(
        """() => {
            const s = document.querySelector('#rag-status .rag-status');
            return s && s.querySelector('b') && !s.querySelector('.rag-spin');
        }""",
        timeout=SLOW,
    )


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def ask(page, question):
    """Ask, wait until this question's answer is complete, and return its chat bubble."""
    bots = page.locator('#rag-chat [data-testid="bot"]')
    turn = page.locator('#rag-chat [data-testid="user"]').count() + 1
    page.fill("#rag-question textarea", question)
    page.press("#rag-question textarea", "Enter")
    page.wait_for_function(
        """(turn) => {
            const panel = document.querySelector('#rag-sources .rag-latest');
            if (panel && panel.dataset.turn === String(turn)) return true;
            const bots = document.querySelectorAll('#rag-chat [data-testid="bot"]');
            return bots.length === turn && bots[turn - 1].querySelector('.rag-error') !== null;
        }""",
        arg=turn,
        timeout=SLOW,
    )
    bubble = bots.nth(turn - 1)
    assert bubble.locator(".rag-error").count() == 0, bubble.inner_text()
    return bubble


def upload(page, files):
    with page.expect_file_chooser() as chooser:
        page.click("#rag-upload")
    chooser.value.set_files([str(f) for f in files])
    page.wait_for_function(  # this upload's report: it names every file
        """(names) => {
            const r = document.querySelector('#rag-upload-log .rag-report');
            return r && names.every((n) => r.innerText.includes(n));
        }""",
        arg=[Path(f).name for f in files],
        timeout=SLOW,
    )


# ---- the page's events over HTTP, as the browser fires them -------------------------------------

def gradio_event(http, elem_id: str, event: str, data: list, session_hash: str = "tests",
                 event_data: dict | None = None) -> tuple[bool, object]:
    """Fire a page event over HTTP exactly as the browser does (gradio's queue protocol), with `http` an httpx
    Client on the server's URL carrying the caller's cookies; return (success, the last output or the error).
    The event is the component's (by elem_id), or for "load", the page load that fills that component;
    `event_data` is what the browser sends with it (a .like's {"index", "value", "liked"})."""
    import json

    config = http.get("config").json()
    target = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    if event == "load":
        fn_index = next(d["id"] for d in config["dependencies"]
                        if any(t[1] == "load" for t in d["targets"]) and target in d["outputs"])
    else:
        fn_index = next(d["id"] for d in config["dependencies"] if [target, event] in [list(t) for t in d["targets"]])
    joined = http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "trigger_id": target,
                                                       "session_hash": session_hash, "event_data": event_data})
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}, timeout=600) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return bool(message.get("success")), output.get("data", output.get("error"))
    raise AssertionError(f"the event {elem_id}.{event} never completed")


def gradio_upload(http, paths) -> list[dict]:
    """Upload files to gradio's cache as the browser's upload button does; return them as the event's value."""
    from pathlib import Path

    files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
    uploaded = http.post("gradio_api/upload", files=files)
    uploaded.raise_for_status()
    return [{"path": path, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}}
            for path, p in zip(uploaded.json(), paths)]


# ---- PDFs printed by Chromium, the pages of issue 25 ---------------------------------------------

# DejaVu Serif sets "fi", "ffi", "fl" as ligature glyphs; &shy; breaks words with a hyphen at line ends
# (Debian's Chromium has no hyphenation dictionary, so hyphens:auto alone would not)
LIGATURES = ("The official fisheries office staffed efficient flotillas. Affluent fjord fishers reflected on "
             "the difficult offers. ")
BROKEN = ("Notwithstanding extra&shy;ordinarily in&shy;compre&shy;hensible circum&shy;stances, the inter&shy;nation"
          "&shy;alization com&shy;mittee re&shy;convened ef&shy;ficiently. ")
FILLER = ["The harbour master counted {n} boats before the storm reached the northern pier.",
          "Every ledger of the guild was copied twice and kept in separate towns.",
          "A short note.",
          "Merchants from the southern valleys brought salt, wool and news of the {n} bridges rebuilt after the flood.",
          "Nobody expected the annual fair to move across the river, yet it did in the year {n}."]
STYLE = "@page {{ size: {size}; margin: 1.5cm }} body {{ font: 11pt/1.4 'DejaVu Serif'; {extra} }}"


def html(paragraphs: list[str], size="A5", extra="") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><style>{STYLE.format(size=size, extra=extra)}'
            f"</style></head><body>{body}</body></html>")


def filler(count: int, start: int = 0) -> str:
    return " ".join(FILLER[i % len(FILLER)].format(n=i + 3) for i in range(start, start + count))


def print_pdfs(folder: Path) -> dict:
    """The test PDFs of issue 25, printed by Chromium into folder/corpus (one and two columns, ligatures and
    hyphenation, a table, a rotated page, a scanned page): {name: path, "corpus", "folder", "original" (of the scan)}."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make browser) to print the test PDFs")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    import pypdfium2 as pdfium
    from pypdf import PdfReader, PdfWriter

    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    pages = {
        "one-column.pdf": html([LIGATURES + BROKEN + filler(3), filler(4, 3) + " " + BROKEN]),
        "two-columns.pdf": html([filler(9) + " " + LIGATURES, filler(9, 9) + " " + BROKEN, filler(12, 2)], size="A4",
                                extra="columns: 2; column-gap: 1cm; text-align: justify"),
        "table.pdf": ("<!doctype html><meta charset='utf-8'><style>td,th{padding:4px 14px;font:12pt 'DejaVu Sans'}"
                      "</style><table><tr><th>Region</th><th>Revenue</th><th>Employees</th></tr>"
                      "<tr><td>Benelux</td><td>55.9</td><td>418</td></tr>"
                      "<tr><td>Nordics</td><td>71.2</td><td>530</td></tr></table>"),
    }
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        for name, markup in pages.items():
            page.set_content(markup)
            page.pdf(path=str(corpus / name), prefer_css_page_size=True)
        browser.close()
    writer = PdfWriter()
    writer.append(PdfReader(str(corpus / "one-column.pdf")))
    writer.pages[0].rotate(90)
    writer.write(str(corpus / "rotated.pdf"))
    # a scan: the two-column page as pixels only, at the same size in points (200 dpi, saved as 200 dpi)
    original = folder / "scan-original.pdf"
    shutil.copy(corpus / "two-columns.pdf", original)
    pdf = pdfium.PdfDocument(str(original))
    image = pdf[0].render(scale=200 / 72, grayscale=True).to_pil()
    pdf.close()
    image.save(corpus / "scanned.pdf", resolution=200)
    names = {name: corpus / name for name in ("one-column.pdf", "two-columns.pdf", "rotated.pdf", "scanned.pdf",
                                             "table.pdf")}
    return {"corpus": corpus, "folder": folder, "original": original, **names}
