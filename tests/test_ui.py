"""The chat window: rendering (pure functions) and the real page driven in headless Chromium.

The browser tests start the app on a free loopback port over a temporary copy of corpus/ and a
fresh index, and drive it like a person: ask, click a marker, upload a file and ask about it,
upload a broken PDF. Screenshots go to $RAG_SCREENSHOT_DIR (RAG_SCREENSHOT_DIR=docs/screenshots
refreshes the README's), else to a temporary folder: a test run leaves the working tree alone.
They are skipped, saying why, when /usr/bin/chromium is absent (make browser installs it).
"""

from __future__ import annotations

import re
import shutil

import pytest

from helpers import ROOT, ask, serve_chat, shot, upload, wait_until_idle

from rag import server
from rag.chat import render, uploads

PASSAGE = "Putin is a tactician. He’s outlasted five U.S. presidents & <b>eight</b> PMs. The end."
CITED = "He’s outlasted five U.S. presidents & <b>eight</b> PMs."


def make_answer(abstained=False, page=None, offset=100):
    a = PASSAGE.index(CITED)
    passage = {"chunk_id": 1, "doc_id": "doc.txt", "source": "doc.txt", "page": page, "start": offset,
               "end": offset + len(PASSAGE), "text": PASSAGE, "score": 0.81, "sentences": [], "title": ""}
    citation = {"n": 1, "source": "doc.txt", "doc_id": "doc.txt", "page": page, "start": offset + a,
                "end": offset + a + len(CITED), "text": CITED, "score": 0.8, "passage": 0}
    return {
        "question": "How many?",
        "text": "I can't find that in the documents." if abstained else f"{CITED} [1] *stars* [7] #1 it's",
        "abstained": abstained,
        "citations": [] if abstained else [citation],
        "passages": [passage],
        "timings": {"total": 0.25},
        "mode": "extractive",
        "note": "",
    }


# ---- rendering ------------------------------------------------------------------------------


def test_markers_become_links_to_their_sources_and_the_text_is_escaped():
    md = render.render_answer_markdown(make_answer())
    assert '<a href="#src-1" class="rag-cite"' in md
    assert "[7]" not in md.replace("\\[7\\]", "")  # a marker with no citation stays plain text
    assert "<b>" not in md and "&lt;b&gt;" in md
    assert "\\*stars\\*" in md and "\\#1" in md  # no Markdown emphasis or headings from document text
    assert "it's" in md  # quotes need no escaping in text, and entities would show up verbatim


def test_earlier_answers_keep_their_own_anchors():
    turns = [{"question": "one?", "answer": make_answer()}, {"question": "two?", "answer": make_answer()}]
    chat = render.render_chat(turns)
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]
    assert 'href="#src-1-1"' in chat[1]["content"]
    assert 'href="#src-1"' in chat[3]["content"]
    panel = render.render_panel(turns)
    assert 'id="src-1"' in panel and 'id="src-1-1"' in panel
    assert render.history_for(turns) == [
        {"role": "user", "content": "one?"}, {"role": "assistant", "content": turns[0]["answer"]["text"]},
        {"role": "user", "content": "two?"}, {"role": "assistant", "content": turns[1]["answer"]["text"]},
    ]
    # a follow-up goes back into the conversation written out, as it was searched
    turns[1]["answer"]["resolved_question"] = "two, of one?"
    assert render.history_for(turns)[2] == {"role": "user", "content": "two, of one?"}


def test_low_confidence_answers_are_marked():
    sure, unsure = make_answer(), make_answer()
    sure["confidence"], unsure["confidence"] = 0.9, 0.31
    assert "rag-low" not in render.render_answer_markdown(sure)
    md = render.render_answer_markdown(unsure)
    assert '<span class="rag-low"' in md and "low confidence (0.31)" in md
    assert "confidence 0.31" in render.answer_footer(unsure)
    withheld = make_answer(abstained=True)
    withheld["confidence"] = 0.02
    assert "rag-low" not in render.render_answer_markdown(withheld)  # an abstention says so already


def test_the_cited_sentence_is_highlighted_inside_its_passage():
    html = render.render_sources(make_answer(page=3), file_url=lambda kb, source, page: f"files/{kb}/{source}#page={page}")
    assert 'id="src-1"' in html
    assert "<mark>He’s outlasted five U.S. presidents &amp; &lt;b&gt;eight&lt;/b&gt; PMs.</mark>" in html
    assert "Putin is a tactician. <mark>" in html and "</mark> The end." in html
    assert "doc.txt" in html and "page 3" in html
    a = 100 + PASSAGE.index(CITED)
    assert f"chars {a}–{a + len(CITED)}" in html
    assert 'href="files//doc.txt#page=3"' in html and ">open</a>" in html
    assert "<b>eight" not in html


def test_offsets_that_do_not_fit_the_passage_still_show_the_cited_text():
    answer = make_answer()
    answer["citations"][0]["start"] += 1
    html = render.render_sources(answer)
    assert "<mark>He’s outlasted" in html and "tactician" not in html
    assert "open</a>" not in html  # no file_url, no link


def test_an_abstention_says_so_and_lists_the_closest_passages():
    answer = make_answer(abstained=True)
    html = render.render_sources(answer)
    assert "No answer" in html
    assert 'id="src-related"' in html and "Closest related passages (1)" in html
    assert "&lt;b&gt;eight" in html and "<mark>" not in html
    md = render.render_answer_markdown(answer)
    assert 'href="#src-related"' in md and "can't" in md


def test_upload_names_and_checks(tmp_path):
    assert uploads.safe_filename("../../etc/passwd") == "passwd"
    assert uploads.safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert uploads.safe_filename(".notes.md") == "notes.md"  # stored visible: the indexer skips hidden files
    assert uploads.safe_filename("..") is None and uploads.safe_filename(" / ") is None
    assert uploads.safe_filename("my notes <1>.md") == "my notes _1_.md"
    f = tmp_path / "a.txt"
    f.write_text("hello", encoding="utf-8")
    assert uploads.check_upload(f, "a.txt", 100) is None
    assert "too large" in uploads.check_upload(f, "a.txt", 3)
    assert "not accepted" in uploads.check_upload(f, "a.exe", 100)
    for accepted in ("a.docx", "a.html", "a.htm", "a.png", "a.JPG", "a.tiff"):
        assert uploads.check_upload(f, accepted, 100) is None, accepted
    assert uploads.inside(tmp_path / "x" / ".." / "a.txt", tmp_path)
    assert not uploads.inside(tmp_path / ".." / "a.txt", tmp_path)


def test_report_names_each_failure_with_its_reason():
    from rag import DocumentError, IngestReport

    report = IngestReport(added=["good.md"], failed=[DocumentError("/c/bad.pdf", "corrupt <PDF>"),
                                                    DocumentError("/c/x.jsonl", "invalid JSON", line=3)])
    html = render.render_report(report, rejected=[("tool.exe", "file type .exe is not accepted")])
    assert "<b>bad.pdf</b>: corrupt &lt;PDF&gt;" in html
    assert "<b>x.jsonl</b> line 3: invalid JSON" in html
    assert "<b>tool.exe</b>: file type .exe" in html
    assert "<b>good.md</b> indexed" in html


def test_status_line():
    status = {"documents": 1, "files": 1, "chunks": 8, "model": "all-MiniLM-L6-v2", "size_bytes": 2048}
    line = render.render_status({"default": status})
    assert "<b>1</b> document " in line and "<b>8</b> chunks" in line and "all-MiniLM-L6-v2" in line
    assert "rag-kb" not in line  # one knowledge base: no need to name it
    job = {"running": True, "kb": "hr", "label": "indexing uploads", "stage": "embedding", "done": 3, "total": 9}
    busy = render.render_status({"default": status, "hr": None}, job)
    assert "indexing uploads: embedding 3/9" in busy and '"rag-kb">hr<' in busy and '"rag-kb">default<' in busy
    assert "indexing uploads" not in render.render_status({"default": status}, job)  # not a job of a KB shown
    assert "ask whoever runs this server" in render.render_status({})


def test_command_line_options(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = server.parse_args([])
    assert (args.host, args.port, args.index, args.corpus, args.max_upload_mb) == ("127.0.0.1", 7860, None, None, 50)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    assert server.parse_args([]).port == 8123
    args = server.parse_args(["--index", "i", "--corpus", "c", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.index, args.corpus, args.host, args.port) == ("i", "c", "0.0.0.0", 9000)
    assert server.main(["--share"]) == 2  # gradio's share tunnel is gone: one server for the chat and the API


# ---- the page in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder, browser):
    from rag import Settings

    root = tmp_path_factory.mktemp("ui")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True)
    with serve_chat(settings, ready=False) as server:  # the page shows the start-up indexing
        yield server.url, server.app, root


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)  # for what is already on the page; slow steps say their own bound
    page.goto(served[0])
    wait_until_idle(page)
    yield page
    context.close()


def test_ask_see_marker_and_highlighted_sentence(page, served):
    from playwright.sync_api import expect

    _, app, _ = served
    expect(page.locator("#rag-status")).to_contain_text("1 document")
    answer = ask(page, "How many U.S. presidents has Putin outlasted?")
    marker = answer.locator("a.rag-cite").first
    expect(marker).to_have_text(re.compile(r"\[\d+\]"))
    n = marker.inner_text().strip("[]")
    source = page.locator(f"#src-{n}")
    expect(source).to_contain_text("putin-diplomacy.txt")
    assert source.locator("mark").count() == 1, "the cited sentence is not highlighted"
    cited = source.locator("mark").inner_text()
    assert "five U.S. presidents" in cited
    # the header's character range points at exactly that sentence in the file
    file_text = (app.library.get('default').corpus_dir / "putin-diplomacy.txt").read_text(encoding="utf-8")
    start, end = map(int, re.search(r"chars (\d+)–(\d+)", source.locator("header").inner_text()).groups())
    assert file_text[start:end] == cited
    # ... surrounded by its passage
    passage = source.locator(".rag-passage").inner_text()
    assert len(passage) > len(cited) and cited in passage

    marker.click()
    expect(source).to_have_class(re.compile(r"\brag-flash\b"))
    expect(source).to_be_in_viewport()
    shot(page, "chat-answer.png")

    # a follow-up: the conversation goes on, earlier markers keep pointing at their own sources
    follow = ask(page, "And how many NATO chiefs?")
    expect(follow.locator("a.rag-cite").first).to_be_visible()
    assert "NATO" in page.locator("#rag-sources .rag-latest mark").first.inner_text()
    first = page.locator('#rag-chat [data-testid="bot"]').first.locator("a.rag-cite").first
    expect(first).to_have_attribute("href", re.compile(r"^#src-1-\d+$"))
    first.click()
    expect(page.locator(first.get_attribute("href"))).to_be_in_viewport()


def test_an_abstention_lists_the_closest_passages(page):
    from playwright.sync_api import expect

    ask(page, "What is the melting point of tungsten in kelvin?")
    panel = page.locator("#rag-sources .rag-latest")
    expect(panel.locator(".rag-abstain")).to_contain_text("No answer")
    expect(panel.locator(".rag-related .rag-src").first).to_be_visible()
    shot(page, "abstain.png")


def test_a_low_confidence_answer_says_so(page):
    """The article never says where Putin was born: the answer it gives is marked, with its confidence."""
    from playwright.sync_api import expect

    answer = ask(page, "Where was Putin born?")
    expect(answer.locator(".rag-low")).to_contain_text(re.compile(r"low confidence \(0\.\d\d\)"))
    shot(page, "low-confidence.png")


def test_upload_a_file_then_ask_about_it_and_a_broken_pdf_is_reported(page, served, tmp_path):
    from playwright.sync_api import expect

    url, app, _ = served
    note = tmp_path / "lighthouse.txt"
    note.write_text(
        "The Zorblat lighthouse stands on Kestrel Point. It was painted teal in 1987 by the harbour guild.\n"
        "Its lamp can be seen from 40 kilometres away on clear nights.\n",
        encoding="utf-8",
    )
    log = page.locator("#rag-upload-log")
    expect(log).to_contain_text("Add documents of these types: .txt .md")  # the registry's types, issue 24
    expect(log).to_contain_text(".xlsx .xlsm .csv .tsv .pptx .epub .eml .mbox")
    upload(page, [note])
    expect(log).to_contain_text("lighthouse.txt indexed")
    expect(page.locator("#rag-status")).to_contain_text("2 documents")
    assert (app.library.get('default').corpus_dir / "lighthouse.txt").read_text(encoding="utf-8") == note.read_text(encoding="utf-8")

    ask(page, "Where does the Zorblat lighthouse stand?")
    source = page.locator("#rag-sources .rag-latest .rag-src").first
    expect(source.locator("header")).to_contain_text("lighthouse.txt")
    expect(source.locator("mark")).to_contain_text("Kestrel Point")
    href = source.locator("a.rag-open").get_attribute("href")
    served_file = page.request.get(url.rstrip("/") + "/" + href)
    assert served_file.status == 200 and served_file.text() == note.read_text(encoding="utf-8")

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog garbage\nnot really a pdf\n")
    upload(page, [broken])
    failure = log.locator(".rag-bad")
    expect(failure).to_contain_text("broken.pdf")
    expect(failure).to_contain_text("PDF")
    expect(page.locator("#rag-status")).to_contain_text("2 documents")  # the existing index is intact
    assert not (app.library.get('default').corpus_dir / "broken.pdf").exists()
    shot(page, "upload-error.png")

    # and the earlier documents still answer
    ask(page, "How many U.S. presidents has Putin outlasted?")
    expect(page.locator("#rag-sources .rag-latest mark").first).to_contain_text("five U.S. presidents")
