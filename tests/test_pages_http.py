"""The page view of a citation through the real server (rag/server/cite.py) and in Chromium: who may see it, that
its quote is the stored text, the page image with the cited lines highlighted, the OCR page with its scan, the text
view of other documents; and the chat's "page" link opening it in an overlay.

The KB `papers` holds PDFs printed by Chromium, a page scanned as pixels only (read by Tesseract), a text file, a
Word file and a web page; `default` a note. rita may ask in papers; otto only in default.
"""

from __future__ import annotations

import io
import shutil
from urllib.parse import parse_qsl

import httpx
import numpy as np
import pytest
from gradio_client import Client
from lxml import html as lxml_html

from helpers import SLOW, ask, print_pdfs, serve_chat, shot, wait_until_idle
from rag import Library, Settings
from rag.chat.render import render_sources
from rag.pages.view import MAX_SPANS, POLICY, read_spans, view_query
from rag.users import add_user

PASSWORDS = {"rita": "rita-Secret-51", "otto": "otto-Secret-52"}
SCAN_LINES = ["The lighthouse keeper of Varnholm logged", "two hundred ships in the winter storms.",
              "Every ship was named in his ledger."]
TIDE_LINES = ["High water at Kelmsby harbour falls", "at eleven minutes past four."]
TEXT = "The ferry to Oskarsholm leaves at seven in the morning.\nTickets are sold on board only.\n"
DOCX = ["Quarterly memo.", "The canteen on the fourth floor closes early on Fridays."]
HTML = "<html><body><main><h1>Notice</h1><p>The archive reading room reopens in the spring.</p></main></body></html>"


def scanned_page(path, lines, dpi=200):
    """An A5 page of text as pixels only, saved as an image-only PDF (what a scanner gives) or an image."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (round(5.83 * dpi), round(8.27 * dpi)), 255)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", round(12 / 72 * dpi))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((round(0.7 * dpi), round((1.2 + i * 0.25) * dpi)), line, font=font, fill=0)
    image.save(path, resolution=dpi)


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is absent (make ocr): the scanned page needs it")
    root = tmp_path_factory.mktemp("cite")
    printed = print_pdfs(root / "printed")
    (root / "default").mkdir()
    (root / "default" / "note.txt").write_text("The default knowledge base holds this note about nothing.\n")
    users = root / "users.txt"
    add_user(users, "rita", PASSWORDS["rita"], kbs={"papers": "ask"})
    add_user(users, "otto", PASSWORDS["otto"], kbs={"default": "ask"})
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "default", quiet=True,
                                 auth_file=users, page_cache_dir=root / "page-cache")
    papers = Library.open(settings).create("papers").corpus_dir
    for name in ("one-column.pdf", "two-columns.pdf"):
        shutil.copy(printed[name], papers / name)
    scanned_page(papers / "lighthouse.pdf", SCAN_LINES)
    scanned_page(papers / "tide-table.png", TIDE_LINES, dpi=150)
    (papers / "ferry.txt").write_text(TEXT)
    import docx

    memo = docx.Document()
    for line in DOCX:
        memo.add_paragraph(line)
    memo.save(papers / "memo.docx")
    (papers / "notice.html").write_text(HTML)
    with serve_chat(settings) as server:
        yield server


def login(url, name):
    http = httpx.Client(base_url=url, timeout=SLOW / 1000)
    assert http.post("/login", data={"username": name, "password": PASSWORDS[name]}).status_code == 200
    return http


def ask_api(url, name, question):
    return Client(url, auth=(name, PASSWORDS[name]), verbose=False).predict(question, 0, "", ["papers"], api_name="/ask")


def stored(server, c) -> str:
    return server.app.library.index(c["kb"], build=False).store.document_text(c["source"], c["doc_id"], c["page"])


def spans_of(server, source, page=None, count=3) -> list[dict]:
    """Citations of the first sentences of a stored document, as an answer's to_dict() has them."""
    store = server.app.library.index("papers", build=False).store
    hit = next(h for h in store.chunks(source) if h.page == page)
    return [{"n": n, "kb": "papers", "source": source, "doc_id": hit.doc_id, "page": page, "start": a, "end": b}
            for n, (a, b) in enumerate(hit.sentences[:count], 1)]


@pytest.fixture(scope="module")
def pdf_answer(served):
    answer = ask_api(served.url, "rita", "Who counted boats before the storm reached the pier?")
    assert not answer["abstained"] and answer["citations"][0]["source"].endswith(".pdf")
    return answer


def test_the_ask_endpoint_carries_each_pdf_citations_boxes(served, pdf_answer):
    for c in pdf_answer["citations"]:
        assert c["kb"] == "papers" and c["page"] == 1
        assert c["boxes"] and c["page_width"] > 0 and c["page_height"] > 0
        assert all(0 <= left < right <= c["page_width"] and 0 <= top < bottom <= c["page_height"]
                   for left, top, right, bottom in c["boxes"])
        assert c["text"] == stored(served, c)[c["start"]:c["end"]]


def test_the_view_and_its_image_are_served_only_to_readers_of_the_kb(served, pdf_answer):
    citations = pdf_answer["citations"]
    query = view_query(citations, 0)
    image = lxml_html.fromstring(login(served.url, "rita").get("cite?" + query).text).xpath("//figure/img/@src")[0]
    assert image == "cite/page?" + view_query(citations[:1], 0)
    nowhere = [{**c, "kb": "no-such-kb"} for c in citations]
    otto = login(served.url, "otto")
    for path, missing in (("cite?" + query, "cite?" + view_query(nowhere, 0)),
                          (image, "cite/page?" + view_query(nowhere[:1], 0))):
        assert httpx.get(f"{served.url}/{path}").status_code == 401  # no login
        refused, absent = otto.get(path), otto.get(missing)
        assert refused.status_code == absent.status_code == 404 and refused.json() == absent.json()
        assert "papers" not in refused.text and "boats" not in refused.text
    rita = login(served.url, "rita")
    view, picture = rita.get("cite?" + query), rita.get(image)
    assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
    assert view.headers["content-security-policy"] == POLICY  # its own policy, not the sandbox of documents
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8"


def test_the_quote_is_the_stored_text_at_the_links_offsets(served, pdf_answer):
    rita = login(served.url, "rita")
    citations = pdf_answer["citations"] + spans_of(served, "two-columns.pdf", 1, count=2)
    for i, c in enumerate(citations):
        tree = lxml_html.fromstring(rita.get("cite?" + view_query(citations, i)).text)
        assert tree.xpath("//blockquote")[0].text_content() == stored(served, c)[c["start"]:c["end"]]
        assert len(tree.xpath("//figure/span[@class='line']")) >= 1
        assert tree.xpath("//a[contains(., 'whole file')]/@href") == [f"files/papers/{c['source']}#page=1"]
        assert f"citation {i + 1} of {len(citations)}" in tree.xpath("//header")[0].text_content()
    length = len(stored(served, citations[0]))
    for start, end, status in ((0, length + 1, 404), (5, 3, 400), (-1, 4, 400)):
        bad = view_query([{**citations[0], "start": start, "end": end}], 0)
        assert rita.get("cite?" + bad).status_code == status
    assert rita.get("cite?i=0&c=%5B1%2C2%5D").status_code == 400 and rita.get("cite?i=0").status_code == 400
    assert rita.get("cite?" + view_query(citations, len(citations))).status_code == 400


def test_previous_and_next_lead_to_the_neighbouring_citations(served):
    rita = login(served.url, "rita")
    citations = spans_of(served, "one-column.pdf", 1) + spans_of(served, "ferry.txt")
    tree = lxml_html.fromstring(rita.get("cite?" + view_query(citations, 2)).text)
    (previous,), (following,) = tree.xpath("//a[@rel='prev']/@href"), tree.xpath("//a[@rel='next']/@href")
    for href, c in ((previous, citations[1]), (following, citations[3])):
        quote = lxml_html.fromstring(rita.get(href).text).xpath("//blockquote")[0].text_content()
        assert quote == stored(served, c)[c["start"]:c["end"]]
    first = lxml_html.fromstring(rita.get("cite?" + view_query(citations, 0)).text)
    assert first.xpath("//a[@rel='prev']/@class") == ["off"]


def test_an_ocr_page_says_so_and_shows_the_cited_region_of_the_scan(served):
    answer = ask_api(served.url, "rita", "How many ships did the lighthouse keeper of Varnholm log?")
    c = answer["citations"][0]
    assert c["source"] == "lighthouse.pdf" and c["ocr"] and c["boxes"]
    rita = login(served.url, "rita")
    tree = lxml_html.fromstring(rita.get("cite?" + view_query(answer["citations"], 0)).text)
    assert "read from a scan by OCR" in tree.text_content()
    (scan,) = tree.xpath("//aside/img[@class='scan']/@src")
    from PIL import Image

    whole = Image.open(io.BytesIO(rita.get(tree.xpath("//figure/img/@src")[0]).content))
    region = Image.open(io.BytesIO(rita.get(scan).content)).convert("L")
    assert region.width < whole.width * 2 and region.height < whole.height  # the lines around the quote only
    dark = (np.asarray(region) < 100).mean()
    assert 0.02 < dark < 0.5  # the scan's own letters are in it


def test_a_scanned_image_shows_itself_highlighted_and_its_cited_region(served):
    from PIL import Image

    store = served.app.library.index("papers", build=False).store
    text = store.document_text("tide-table.png", "tide-table.png", None)
    start = text.index("eleven")
    citations = [{"n": 1, "kb": "papers", "source": "tide-table.png", "doc_id": "tide-table.png", "page": None,
                  "start": start, "end": start + len("eleven minutes"), "ocr": True}]
    assert "page</a>" in render_sources({"citations": citations, "passages": []})
    rita = login(served.url, "rita")
    tree = lxml_html.fromstring(rita.get("cite?" + view_query(citations, 0)).text)
    assert "read from a scan by OCR" in tree.text_content() and len(tree.xpath("//figure/span[@class='line']")) == 1
    whole = Image.open(io.BytesIO(rita.get(tree.xpath("//figure/img/@src")[0]).content))
    region = Image.open(io.BytesIO(rita.get(tree.xpath("//aside/img[@class='scan']/@src")[0]).content))
    scan = Image.open(served.app.library.get("papers").corpus_dir / "tide-table.png")
    assert whole.width / whole.height == pytest.approx(scan.width / scan.height, abs=0.01)  # the whole image
    assert region.height < whole.height / 4 and (np.asarray(region.convert("L")) < 100).mean() > 0.02


@pytest.mark.parametrize("source, sentence", [("ferry.txt", "Tickets are sold on board only."),
                                              ("memo.docx", DOCX[1]), ("notice.html", "The archive reading room")])
def test_other_documents_show_their_text_with_the_span_marked(served, source, sentence):
    text = served.app.library.index("papers", build=False).store.document_text(source, source, None)
    start = text.index(sentence)
    end = start + len(sentence)
    link = view_query([{"n": 1, "kb": "papers", "source": source, "doc_id": source, "page": None, "start": start,
                        "end": end}], 0)
    tree = lxml_html.fromstring(login(served.url, "rita").get("cite?" + link).text)
    assert tree.xpath("//mark[@id='cited']")[0].text == sentence == tree.xpath("//blockquote")[0].text_content()
    assert tree.xpath("//pre")[0].text_content().replace("…", "") == text and not tree.xpath("//figure")
    assert login(served.url, "rita").get("cite/page?" + link).status_code == 404  # no page to draw


def test_a_pdf_changed_since_indexing_shows_the_indexed_text_and_no_page(served):
    papers = served.app.library.get("papers").corpus_dir
    citations = spans_of(served, "two-columns.pdf", 1)
    link = view_query(citations, 1)
    original = (papers / "two-columns.pdf").read_bytes()
    rita = login(served.url, "rita")
    try:
        (papers / "two-columns.pdf").write_bytes(original + b"\n% changed\n")
        tree = lxml_html.fromstring(rita.get("cite?" + link).text)
        assert "changed or is gone since it was indexed" in tree.text_content() and not tree.xpath("//figure")
        c = citations[1]
        assert tree.xpath("//mark[@id='cited']")[0].text == stored(served, c)[c["start"]:c["end"]]
        fresh = view_query([{**c, "start": c["start"] + 1}], 0)  # never drawn before: not in the cache
        assert rita.get("cite/page?" + fresh).status_code == 404
    finally:
        (papers / "two-columns.pdf").write_bytes(original)
    assert rita.get("cite/page?" + view_query(citations, 1)).status_code == 200


def test_the_sources_panel_links_each_citation_to_its_view(pdf_answer):
    panel = lxml_html.fromstring(render_sources(pdf_answer))
    links = panel.xpath("//a[@class='rag-view']")
    assert len(links) == len(pdf_answer["citations"])
    for i, link in enumerate(links):
        href = link.get("href")
        assert href.startswith("cite?") and f"i={i}&" in href and link.text_content() == "page"
        spans = read_spans([v for k, v in parse_qsl(href[5:]) if k == "c"])
        assert [(s.source, s.page, s.start, s.end, s.kb) for s in spans] == \
            [(c["source"], c["page"], c["start"], c["end"], c["kb"]) for c in pdf_answer["citations"]]


def test_a_link_carries_at_most_max_spans_citations_the_one_shown_among_them():
    citations = [{"n": n, "kb": "papers", "source": "a.pdf", "doc_id": "a.pdf", "page": 1, "start": n, "end": n + 5}
                 for n in range(1, 101)]
    query = parse_qsl(view_query(citations, 79))
    spans = read_spans([v for k, v in query if k == "c"])
    assert len(spans) == MAX_SPANS and spans[int(dict(query)["i"])].n == 80 and spans[-1].n == 80


# ---- in Chromium -------------------------------------------------------------------------------------

HIGHLIGHTED = """(img) => {
    // the share of yellow pixels under the first marked line: the page image is drawn with it highlighted
    const line = img.parentElement.querySelector('.line');
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d'); g.drawImage(img, 0, 0);
    const s = line.style, w = img.naturalWidth, h = img.naturalHeight;
    const x = parseFloat(s.left) / 100 * w, y = parseFloat(s.top) / 100 * h;
    const data = g.getImageData(x, y, Math.max(1, parseFloat(s.width) / 100 * w), Math.max(1, parseFloat(s.height) / 100 * h)).data;
    let yellow = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] - data[i + 2] > 60 && data[i + 1] - data[i + 2] > 40) yellow++;
    return yellow / (data.length / 4);
}"""


def test_clicking_a_citations_page_link_shows_its_page_highlighted(served, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(served.url)
    page.fill("#username", "rita")
    page.fill("#password", PASSWORDS["rita"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#rag-question")).to_be_visible(timeout=SLOW)
    wait_until_idle(page)

    ask(page, "Who counted boats before the storm reached the pier?")
    link = page.locator("#rag-sources .rag-latest a.rag-view").first
    expect(link).to_have_text("page")
    link.click()
    viewer = page.locator("#rag-viewer")
    expect(viewer).to_be_visible()
    frame = page.frame_locator("#rag-viewer iframe")
    image = frame.locator("figure.page img")
    expect(image).to_be_visible()
    page.wait_for_function("() => { const f = document.querySelector('#rag-viewer iframe');"
                           " const i = f && f.contentDocument && f.contentDocument.querySelector('figure img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert image.evaluate(HIGHLIGHTED) > 0.3
    expect(frame.locator("#cited")).to_be_in_viewport()
    quote = frame.locator("blockquote").inner_text()
    assert quote == page.locator("#rag-sources .rag-latest mark").first.inner_text()
    shot(page, "page-view.png")
    frame.locator("blockquote").click()  # the focus inside the view: Esc still closes it
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    ask(page, "How many ships did the lighthouse keeper of Varnholm log?")
    page.locator("#rag-sources .rag-latest a.rag-view").first.click()
    expect(viewer).to_be_visible()
    expect(frame.locator(".ocr")).to_contain_text("read from a scan by OCR")
    scan = frame.locator("aside img.scan")
    expect(scan).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('#rag-viewer iframe').contentDocument"
                           ".querySelector('img.scan'); return i && i.complete && i.naturalWidth > 0; }")
    assert frame.locator("figure.page img").evaluate(HIGHLIGHTED) > 0.3
    shot(page, "page-view-ocr.png")
    page.locator("#rag-viewer .rag-viewer-close").click()
    expect(viewer).to_be_hidden()
    context.close()
