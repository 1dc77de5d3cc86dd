"""The chat window's server side, over HTTP: the named `ask` endpoint (gradio_client), file serving,
upload limits, and answers while an indexing job holds the writer's lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import ROOT, free_port, serve_chat

from rag.chat import render

QUESTION = "How many U.S. presidents has Putin outlasted?"
UPLOAD_LIMIT_MB = 0.05  # 51 KB: small, so the limit itself can be tested


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    """The real app on a free loopback port, over a temporary copy of corpus/ and a fresh index."""
    from rag import Settings

    root = tmp_path_factory.mktemp("ui-api")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True)
    with serve_chat(settings, max_upload_mb=UPLOAD_LIMIT_MB) as server:
        yield server.url, server.app


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def check_citations(answer: dict, corpus: Path):
    assert not answer["abstained"], answer["text"]
    assert answer["citations"], "an answer without citations"
    for c in answer["citations"]:
        assert f"[{c['n']}]" in answer["text"]
        file_text = (corpus / c["source"]).read_text(encoding="utf-8")
        assert c["page"] is None
        assert file_text[c["start"] : c["end"]] == c["text"]
        p = answer["passages"][c["passage"]]
        assert p["text"][c["start"] - p["start"] : c["end"] - p["start"] ] == c["text"]


def test_ask_endpoint_cites_exact_spans_of_the_corpus_file(served, client):
    url, app = served
    answer = client.predict(QUESTION, api_name="/ask")
    assert answer["question"] == QUESTION
    check_citations(answer, app.library.get('default').corpus_dir)
    assert any("five U.S. presidents" in c["text"] for c in answer["citations"])
    assert app.settings.min_confidence <= answer["confidence"] <= 1


def test_ask_endpoint_gives_the_same_answer_as_the_library(served, client):
    from rag import ask

    _, app = served
    via_api = client.predict(QUESTION, api_name="/ask")
    direct = ask(QUESTION, index=app.library.index('default')).to_dict()
    for d in (via_api, direct):
        d.pop("timings")
    assert via_api == direct


def test_ask_endpoint_takes_k_and_mode(served, client):
    answer = client.predict(QUESTION, 2, "bm25", api_name="/ask")
    assert 1 <= len(answer["passages"]) <= 2
    check_citations(answer, served[1].library.get('default').corpus_dir)


def test_ask_endpoint_abstains_with_related_passages(served, client):
    answer = client.predict("What is the melting point of tungsten in kelvin?", api_name="/ask")
    assert answer["abstained"]
    assert answer["citations"] == []
    assert answer["passages"], "an abstention still lists the closest passages"
    assert 0 <= answer["confidence"] < served[1].settings.min_confidence


def test_several_clients_at_once_get_their_own_answers(served):
    from gradio_client import Client

    questions = [QUESTION, "How many NATO chiefs has Putin outlasted?", "Who did Putin reach out to after September 11?"]
    results: dict = {}

    def one(q):
        results[q] = Client(served[0], verbose=False).predict(q, api_name="/ask")

    threads = [threading.Thread(target=one, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == set(questions)
    for q, answer in results.items():
        assert answer["question"] == q


def test_questions_are_answered_while_a_writer_holds_the_lock(served, client):
    """An upload or re-index in progress holds the writer's lock; questions must not wait for it."""
    _, app = served
    with app.writer("default"):
        answer = client.predict(QUESTION, api_name="/ask")
    check_citations(answer, app.library.get('default').corpus_dir)


def test_only_files_inside_the_corpus_are_served(served):
    import httpx

    url, app = served
    corpus = app.library.get("default").corpus_dir
    link = app.file_url("default", "putin-diplomacy.txt")
    assert link == "files/default/putin-diplomacy.txt"
    r = httpx.get(f"{url}/{link}")
    assert r.status_code == 200 and r.text == (corpus / "putin-diplomacy.txt").read_text(encoding="utf-8")
    for outside in ("../index/rag.sqlite", "%2e%2e/index/rag.sqlite", "..%2f..%2fpyproject.toml", "/etc/passwd",
                    "%2fetc%2fpasswd"):
        assert httpx.get(f"{url}/files/default/{outside}").status_code == 404, outside
    for route in ("/gradio_api/file=", "/gradio_api/file/"):  # gradio's own file routes serve no document
        assert httpx.get(url + route + str(corpus / "putin-diplomacy.txt")).status_code in (403, 404), route
    assert app.file_url("default", "../index/rag.sqlite") is None
    assert app.file_url("default", "/etc/passwd") is None
    assert app.file_url("default", "no-such-file.txt") is None
    assert app.file_url("no-such-kb", "putin-diplomacy.txt") is None
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers  # plain text opens as it is


ACTIVE = {"page.html": ("text/html", "<script>document.title = 'x'</script><p>A web page.</p>"),
          "logo.svg": ("image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')}
# gradio 6's routes that serve a path they are given: any file of the corpus could come out of them
FILE_ROUTES = {"/svelte/{path:path}", "/static/{path:path}", "/assets/{path:path}",
               "/gradio_api/proxy={url_path:path}", "/gradio_api/file={path_or_url:path}", "/gradio_api/file/{path:path}"}


OUR_ROUTE = "/files/{kb}/{path:path}"


def gradio_routes(routes):
    """(path, methods) of every route of a gradio app, inside its included routers too."""
    for r in routes:
        if hasattr(r, "original_router"):
            yield from gradio_routes(r.original_router.routes)
        else:
            yield r.path, getattr(r, "methods", None) or set()


def test_active_corpus_files_are_sandboxed_on_every_file_route(served):
    """An HTML page or an SVG with a script, put into the corpus, asked for on every route gradio serves
    files on and on ours, as GET, HEAD and a range: each answer that serves it carries the sandbox, so its
    scripts never run in the chat's origin."""
    import gradio as gr
    import httpx
    from gradio.routes import App

    url, app = served
    with gr.Blocks() as blank:
        gr.Markdown("routes")
    routes = dict(gradio_routes(App.create_app(blank).routes))
    catch_all = {path for path in routes if ":path}" in path}
    assert catch_all == FILE_ROUTES, "gradio's file routes changed: check each new one serves corpus files safely"
    served_on = set()
    try:
        for name, (kind, body) in ACTIVE.items():
            (app.library.get('default').corpus_dir / name).write_text(body, encoding="utf-8")
            where = str((app.library.get('default').corpus_dir / name).resolve())
            for route in sorted(FILE_ROUTES | {OUR_ROUTE}, key=lambda r: ("/file" not in r, r)):
                link = url + (f"/files/default/{name}" if route == OUR_ROUTE else route[: route.index("{")] + quote(where))
                for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-15"})):
                    if method not in ({"GET", "HEAD"} if route == OUR_ROUTE else routes[route]):
                        continue
                    r = httpx.request(method, link, headers=headers)
                    if r.status_code in (200, 206):
                        served_on.add(route)
                        assert r.headers.get("content-security-policy") == "sandbox", (route, method, headers, r.headers)
                        if method == "GET" and not headers:
                            assert r.text == body and r.headers["content-type"].startswith(kind), (route, r.headers)
                    assert r.headers["x-content-type-options"] == "nosniff", (route, method)
    finally:
        for name in ACTIVE:
            (app.library.get('default').corpus_dir / name).unlink(missing_ok=True)
    # our route does serve them (so the checks above ran); gradio's never do: it is given no folder to serve
    assert served_on == {OUR_ROUTE}


def test_the_page_itself_keeps_its_scripts(served):
    import httpx

    page = httpx.get(served[0] + "/")
    assert page.status_code == 200 and "<script" in page.text
    assert "content-security-policy" not in page.headers and page.headers["x-content-type-options"] == "nosniff"


def test_upload_limit_is_enforced_by_the_server(served):
    """gradio's upload route refuses files over max_file_size, whatever the page allowed."""
    import httpx

    url, _ = served
    route = url.rstrip("/") + "/gradio_api/upload"
    small = httpx.post(route, files={"files": ("small.txt", b"a few words", "text/plain")})
    assert small.status_code == 200, small.text[:200]
    big = b"x" * int(UPLOAD_LIMIT_MB * 1024 * 1024 * 2)
    r = httpx.post(route, files={"files": ("big.txt", big, "text/plain")})
    assert r.status_code >= 400, r.text[:200]


def test_rag_chat_passes_max_upload_mb_to_the_server(tmp_path):
    """`rag chat --max-upload-mb N` (the README's flag) caps gradio's upload route as `python ui.py` does."""
    import httpx

    (tmp_path / "corpus").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))} | {"PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "chat", "--max-upload-mb", str(UPLOAD_LIMIT_MB), "--port", str(free_port()),
         "--index", str(tmp_path / "index"), "--corpus", str(tmp_path / "corpus")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = []
        for line in server.stdout:  # until the server says where it listens, or the command ends
            said.append(line)
            if line.startswith("serving http"):
                break
        assert said[-1].startswith("serving http"), "".join(said)
        route = said[-1].split()[1].rstrip("/") + "/gradio_api/upload"
        small = httpx.post(route, files={"files": ("small.txt", b"a few words", "text/plain")})
        assert small.status_code == 200, small.text[:200]
        big = httpx.post(route, files={"files": ("big.txt", b"x" * int(UPLOAD_LIMIT_MB * 1024 * 1024 * 2), "text/plain")})
        assert big.status_code >= 400, big.text[:200]
    finally:
        server.kill()
        server.wait()


def test_upload_handler_rejects_bad_types_and_sizes_and_keeps_the_index(served, tmp_path):
    """The handler checks again: type and size, by name and reason, and the good file still goes in."""
    _, app = served
    before = app.library.index('default').status()["documents"]
    good = tmp_path / "heron-notes.md"
    good.write_text("# Herons\n\nThe grey heron nests in tall trees near the Ouzel river.\n", encoding="utf-8")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    big = tmp_path / "huge.txt"
    big.write_text("word " * int(UPLOAD_LIMIT_MB * 1024 * 1024), encoding="utf-8")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog garbage\n")
    *_, (log, status) = list(app.upload([str(good), str(exe), str(big), str(broken)], "default"))
    assert "tool.exe" in log and "file type .exe is not accepted" in log
    assert "huge.txt" in log and "too large" in log
    assert "broken.pdf" in log and "PDF" in log
    assert "heron-notes.md</b> indexed" in log
    assert (app.library.get('default').corpus_dir / "heron-notes.md").exists()
    for name in ("tool.exe", "huge.txt", "broken.pdf"):
        assert not (app.library.get('default').corpus_dir / name).exists(), name
    assert app.library.index('default').status()["documents"] == before + 1
    assert "broken.pdf" not in status  # a file taken back out of the corpus is not listed as failing


def make_pdf(pages: list[list[str]]) -> bytes:
    """A small valid PDF with a text layer: one list of lines per page (Helvetica, ASCII)."""
    n = len(pages)
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>",
    ]
    font = 3 + 2 * n
    for i, lines in enumerate(pages):
        stream = "BT /F1 12 Tf 72 720 Td " + "".join(f"({line}) Tj 0 -16 Td " for line in lines) + "ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>")
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_a_pdf_answer_names_its_page_and_links_to_it(served, client, tmp_path):
    from rag.load import load_file

    _, app = served
    pdf = tmp_path / "bridges.pdf"
    pdf.write_bytes(make_pdf([["Page one is about the weather in Oslo."],
                              ["The Quillfeather bridge was opened in 1911.", "It spans the river Tamsin."]]))
    *_, (log, _) = list(app.upload([str(pdf)], "default"))
    assert "bridges.pdf</b> indexed" in log
    answer = client.predict("When was the Quillfeather bridge opened?", api_name="/ask")
    assert not answer["abstained"], answer["text"]
    c = answer["citations"][0]
    assert (c["source"], c["page"]) == ("bridges.pdf", 2)
    pages = {d.page: d.text for d in load_file(app.library.get('default').corpus_dir / "bridges.pdf", app.library.get('default').corpus_dir)}
    assert pages[2][c["start"] : c["end"]] == c["text"] and "1911" in c["text"]
    html = render.render_sources(answer, file_url=app.file_url)
    assert "page 2" in html
    assert 'bridges.pdf#page=2" target="_blank"' in html
