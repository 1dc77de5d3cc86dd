"""Word, web pages, scanned PDFs and images: real files made here, real Tesseract, exact offsets."""

from __future__ import annotations

import logging
import re
import shutil

import pytest

from conftest import shared_path
from rag import DocumentError, Index, Settings, ask
from rag.chat import render
from rag.cli import main as cli_main
from rag.load import LoadOptions, load_file
from rag.load import ocr
from rag.load.pdf import clean_pdf_text

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract is not installed (make test installs it: apt-get install "
                                            "tesseract-ocr tesseract-ocr-eng)")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def recall(found: str, expected: str) -> float:
    """Share of the expected words that OCR found (each counted as often as it occurs)."""
    have = words(found)
    hits = 0
    for w in words(expected):
        if w in have:
            have.remove(w)
            hits += 1
    return hits / max(len(words(expected)), 1)


def assert_exact(index: Index) -> None:
    chunks = index.store.chunks()
    assert chunks
    for c in chunks:
        assert c.text == index.store.document_text(c.source, c.doc_id, c.page)[c.start:c.end]


def assert_citations_exact(index: Index, answer) -> None:
    assert answer.citations
    for c in answer.citations:
        assert c.text == index.store.document_text(c.source, c.doc_id, c.page)[c.start:c.end]


# --- Word ------------------------------------------------------------------------------------------


def make_docx(path):
    import docx

    d = docx.Document()
    d.core_properties.title = "Lighthouse survey"
    d.sections[0].header.paragraphs[0].text = "CONFIDENTIAL HEADER"
    d.sections[0].footer.paragraphs[0].text = "Page footer text"
    d.add_heading("Survey of the northern lighthouses", level=1)
    d.add_paragraph("The survey visited eleven lighthouses along the northern coast in 2021.")
    d.add_heading("Findings", level=2)
    d.add_paragraph("Lamps were replaced at four stations", style="List Bullet")
    d.add_paragraph("Two towers need new paint", style="List Bullet")
    d.add_paragraph("Inspect the foundations", style="List Number")
    d.add_paragraph("Order the spare lenses", style="List Number")
    d.add_paragraph("The table lists each station with its keeper.")
    table = d.add_table(rows=3, cols=3)
    rows = [["Station", "Keeper", "Built"], ["Skerry Point", "Ada Morrow", "1874"], ["Gull Rock", "Ben Tarr", "1902"]]
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    d.add_paragraph("The oldest tower, Skerry Point, was built in 1874 by the harbour board.")
    d.save(path)
    return rows


def test_docx_headings_lists_and_tables_in_body_order(tmp_path):
    rows = make_docx(tmp_path / "survey.docx")
    [doc] = load_file(tmp_path / "survey.docx", tmp_path)
    text = doc.text
    assert doc.title == "Lighthouse survey" and doc.source == "survey.docx" and doc.page is None and not doc.ocr
    assert text.startswith("Survey of the northern lighthouses\n\nThe survey visited eleven")
    assert "\n\nFindings\n\n" in text
    assert "- Lamps were replaced at four stations\n- Two towers need new paint\n" in text
    assert "1. Inspect the foundations\n2. Order the spare lenses" in text
    table = "\n".join(" | ".join(f"{name}: {value}" for name, value in zip(rows[0], row)) for row in rows[1:])
    assert "\n\n" + table + "\n\n" in text  # one line a row carrying the column names, a block of its own
    assert [text[a:b] for a, b in doc.rows] == table.split("\n")
    # in body order: the table sits between the paragraphs around it
    assert text.index("with its keeper.") < text.index(table) < text.index("The oldest tower")
    assert "CONFIDENTIAL" not in text and "footer" not in text


def test_docx_and_html_are_indexed_with_exact_offsets(settings, tmp_path):
    corpus = settings.corpus_dir
    corpus.mkdir()
    make_docx(corpus / "survey.docx")
    (corpus / "page.html").write_bytes(make_html("windows-1252"))
    index = Index.open(settings=settings)
    report = index.add()
    assert sorted(report.added) == ["page.html", "survey.docx"] and report.ok, report.failed
    assert_exact(index)
    answer = ask("When was Skerry Point built?", index=index)
    assert not answer.abstained and answer.citations[0].source == "survey.docx"
    assert "1874" in answer.citations[0].text and not answer.citations[0].ocr
    assert_citations_exact(index, answer)
    answer = ask("How deep is the Velmora lake?", index=index)
    assert answer.citations and all(c.source == "page.html" for c in answer.citations)
    assert any("312\u00a0m" in c.text for c in answer.citations)
    assert_citations_exact(index, answer)


@pytest.mark.parametrize("data, reason", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "Word 97-2003 .doc"),
    (b"just some text", "not a Word .docx"),
    (b"PK\x03\x04" + b"\x00" * 100, "not a readable .docx"),
])
def test_broken_docx_is_reported(tmp_path, data, reason):
    f = tmp_path / "bad.docx"
    f.write_bytes(data)
    with pytest.raises(DocumentError) as info:
        list(load_file(f, tmp_path))
    assert info.value.path == str(f) and reason in info.value.reason


# --- web pages -------------------------------------------------------------------------------------

SECRETS = ["navsecret", "scriptsecret", "stylesecret", "footersecret", "asidesecret", "hiddenattr", "ariahidden",
           "displaynone", "visibilityhidden", "commentsecret", "noscriptsecret", "templatesecret", "headersecret"]


def make_html(charset: str, declare: str = "meta") -> bytes:
    head = {"meta": f'<meta charset="{charset}">',
            "http-equiv": f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">',
            "none": ""}[declare]
    page = f"""<!DOCTYPE html>
<html><head>{head}<title>Lakes  of
  Velmora</title><style>.x {{ content: "stylesecret" }}</style>
<script>var s = "scriptsecret";</script></head>
<body><header>headersecret banner</header><nav><a href="/">navsecret home</a></nav>
<noscript>noscriptsecret</noscript><template><p>templatesecret</p></template>
<article>
  <h1>The lakes of  Velmora</h1>
  <p>Lake Orm is the deepest: 312&nbsp;m at its centre, &amp; its water stays at 4&#176;C
     all year.</p>
  <!-- commentsecret -->
  <p hidden>hiddenattr</p><div aria-hidden="true">ariahidden</div>
  <p style="color: red; display : none">displaynone</p><span style="visibility:hidden">visibilityhidden</span>
  <p>Caf\u00e9 owners sell cr\u00e8me br\u00fbl\u00e9e by the shore.<br>Boats cost 5&euro; an hour.</p>
  <ul><li>Lake Orm</li><li>Lake Sinn</li></ul>
  <table><tr><th>Lake</th><th>Depth</th></tr><tr><td>Orm</td><td>312 m</td></tr></table>
</article>
<aside>asidesecret related</aside><footer>footersecret</footer></body></html>"""
    return page.encode("utf-8" if charset.lower().startswith("utf") else "cp1252")


@pytest.mark.parametrize("charset, declare", [("iso-8859-1", "meta"), ("windows-1252", "http-equiv"),
                                              ("utf-8", "meta"), ("windows-1252", "none")])
def test_html_keeps_the_visible_article_text_only(tmp_path, charset, declare):
    f = tmp_path / "lakes.html"
    f.write_bytes(make_html(charset, declare))
    [doc] = load_file(f, tmp_path)
    text = doc.text
    assert doc.title == "Lakes of Velmora" and doc.page is None and not doc.ocr
    for secret in SECRETS:
        assert secret not in text, secret
    assert text.startswith("The lakes of Velmora\n\nLake Orm is the deepest: 312\u00a0m at its centre, & its water "
                           "stays at 4\u00b0C all year.\n\n")
    # bytes in a single-byte charset decoded (iso-8859-1 is read as windows-1252, like browsers do: 0x80 is €)
    assert "Caf\u00e9 owners sell cr\u00e8me br\u00fbl\u00e9e by the shore.\nBoats cost 5\u20ac an hour." in text
    assert "\n\nLake Orm\nLake Sinn\n\n" in text
    assert text.endswith("Lake | Depth\nOrm | 312 m")


def test_html_charset_from_bom_wins_and_the_body_is_used_without_an_article(tmp_path):
    page = '<html><head><meta charset="iso-8859-1"><title>T</title></head><body><div>Привет, мир.</div>' \
           '<nav>menu</nav><p>Второй абзац.</p></body></html>'
    f = tmp_path / "ru.htm"
    f.write_bytes(b"\xef\xbb\xbf" + page.encode("utf-8"))  # the BOM says UTF-8 whatever the meta says
    [doc] = load_file(f, tmp_path)
    assert doc.text == "Привет, мир.\n\nВторой абзац."
    f.write_bytes(page.replace("iso-8859-1", "windows-1251").encode("cp1251"))
    [doc] = load_file(f, tmp_path)
    assert doc.text == "Привет, мир.\n\nВторой абзац."


def test_html_main_is_preferred_and_an_empty_page_is_reported(tmp_path):
    f = tmp_path / "m.html"
    f.write_bytes(b"<body><p>outside</p><main><p>inside main</p></main><article>other</article></body>")
    [doc] = load_file(f, tmp_path)
    assert doc.text == "inside main"
    f.write_bytes(b"<html><body><script>only()</script><nav>menu</nav></body></html>")
    with pytest.raises(DocumentError, match="no visible text"):
        list(load_file(f, tmp_path))


# --- images and scanned PDFs ---------------------------------------------------------------------

LINES = ["The harbour of Velmora freezes", "every winter for nine weeks.", "Ferries stop on the first of January."]


def text_image(lines, mode="L", size=(1400, 420)):
    from PIL import Image, ImageDraw, ImageFont

    background = (255, 255, 255, 0) if mode == "RGBA" else "white"
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for i, line in enumerate(lines):
        draw.text((60, 60 + i * 100), line, fill="black", font=font)
    return image


@needs_tesseract
def test_png_and_multi_page_tiff_are_read_by_ocr(tmp_path):
    text_image(LINES).save(tmp_path / "note.png")
    [doc] = load_file(tmp_path / "note.png", tmp_path)
    assert doc.ocr and doc.page is None and doc.source == "note.png"
    assert recall(doc.text, " ".join(LINES)) >= 0.9, doc.text
    # text on a transparent background is read too (composited over white)
    text_image(LINES, mode="RGBA").save(tmp_path / "clear.png")
    [clear] = load_file(tmp_path / "clear.png", tmp_path)
    assert recall(clear.text, " ".join(LINES)) >= 0.9, clear.text
    pages = [text_image(LINES[:1]), text_image(["A blank page follows."]), text_image([])]
    pages[0].save(tmp_path / "fax.tiff", save_all=True, append_images=pages[1:])
    docs = list(load_file(tmp_path / "fax.tiff", tmp_path))
    assert [d.page for d in docs] == [1, 2] and all(d.ocr for d in docs)  # the blank third frame has no text
    assert recall(docs[1].text, "A blank page follows.") == 1.0


@needs_tesseract
def test_an_image_without_text_or_that_is_no_image_is_reported(tmp_path):
    from PIL import Image

    Image.new("L", (300, 200), "white").save(tmp_path / "blank.png")
    with pytest.raises(DocumentError, match="OCR found no words"):
        list(load_file(tmp_path / "blank.png", tmp_path))
    (tmp_path / "fake.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DocumentError, match="not an image"):
        list(load_file(tmp_path / "fake.jpg", tmp_path))


ALCE_PAGES = (1, 2)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A scanned PDF (two pages of the ALCE paper rendered to images, no text layer), a PDF whose first
    page has its text layer and whose second is the scan, and the text layers of those pages."""
    import pypdfium2 as pdfium
    from pypdf import PdfReader, PdfWriter

    paper = shared_path("bench-data", "alce", "paper", "ALCE.pdf")
    folder = tmp_path_factory.mktemp("scans")
    pdf = pdfium.PdfDocument(str(paper))
    images = [pdf[n - 1].render(scale=200 / 72, grayscale=True).to_pil() for n in ALCE_PAGES]
    pdf.close()
    corpus = folder / "corpus"
    corpus.mkdir()
    scan = corpus / "alce-scan.pdf"
    images[0].save(scan, save_all=True, append_images=images[1:], resolution=200)
    mixed = folder / "mixed.pdf"
    writer = PdfWriter()
    writer.add_page(PdfReader(str(paper)).pages[ALCE_PAGES[0] - 1])
    writer.add_page(PdfReader(str(scan)).pages[1])
    with mixed.open("wb") as out:
        writer.write(out)
    layers = [clean_pdf_text(PdfReader(str(paper)).pages[n - 1].extract_text()) for n in ALCE_PAGES]
    assert not "".join(p.extract_text() for p in PdfReader(str(scan)).pages).strip()  # truly image-only
    return {"folder": folder, "corpus": corpus, "scan": scan, "mixed": mixed, "layers": layers}


@pytest.fixture(scope="module")
def scanned_index(scans, embedder):
    settings = Settings.from_env(environ={}, index_dir=scans["folder"] / "index", corpus_dir=scans["corpus"],
                                 quiet=True)
    index = Index.open(settings=settings)
    events = []
    report = index.add(progress=lambda stage, done, total: events.append((stage, done, total)))
    return index, report, events


@needs_tesseract
def test_scanned_pdf_answers_with_the_right_page_cited_as_ocr(scans, scanned_index):
    index, report, events = scanned_index
    assert report.added == ["alce-scan.pdf"] and report.ok, report.failed
    assert [e for e in events if e[0] == "ocr"] == [("ocr", n, len(ALCE_PAGES)) for n in range(len(ALCE_PAGES) + 1)]
    docs = index.store.documents("alce-scan.pdf")
    assert [d["page"] for d in docs] == list(ALCE_PAGES) and all(d["ocr"] for d in docs)
    for d, layer in zip(docs, scans["layers"]):  # OCR read what the text layer of the original says
        assert recall(d["text"], layer) >= 0.9
    assert_exact(index)
    answer = ask("What does ALCE assume?", index=index)
    assert not answer.abstained
    cited = answer.citations[0]
    assert cited.ocr and cited.source == "alce-scan.pdf" and "retrieval corpus" in cited.text
    # the right page: the one whose original text layer holds the cited sentence
    best = max(range(len(ALCE_PAGES)), key=lambda i: recall(scans["layers"][i], cited.text))
    assert cited.page == ALCE_PAGES[best] and recall(scans["layers"][best], cited.text) >= 0.9
    assert_citations_exact(index, answer)
    assert all(p.ocr for p in answer.passages) and answer.to_dict()["citations"][0]["ocr"] is True
    panel = render.render_sources(answer.to_dict())
    assert panel.count("(OCR)") == len(answer.citations)
    related = render.render_sources({**answer.to_dict(), "abstained": True, "citations": []})
    assert "Closest related passages" in related and related.count("(OCR)") == len(answer.passages)


@needs_tesseract
def test_an_unchanged_scan_is_not_read_again(scans, scanned_index):
    index, _, _ = scanned_index
    events = []
    again = index.add(progress=lambda stage, done, total: events.append(stage))
    assert again.unchanged == 1 and again.added == [] and again.embedded == 0
    assert "ocr" not in events


@needs_tesseract
def test_a_page_without_text_layer_beside_text_pages_is_read(scans):
    docs = list(load_file(scans["mixed"], scans["mixed"].parent))
    assert [(d.page, d.ocr) for d in docs] == [(1, False), (2, True)]
    assert recall(docs[1].text, scans["layers"][1]) >= 0.9


@pytest.fixture
def no_tesseract(tmp_path, monkeypatch):
    """A PATH without tesseract, for this test only (the engine check is cached per process)."""
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    ocr._engine_problem.cache_clear()
    yield
    ocr._engine_problem.cache_clear()


def test_without_tesseract_scans_are_reported_as_needing_ocr(scans, no_tesseract, tmp_path, settings, caplog):
    assert shutil.which("tesseract") is None
    caplog.set_level(logging.WARNING, logger="rag.load.ocr")
    with pytest.raises(DocumentError) as info:
        list(load_file(scans["scan"], scans["corpus"]))
    assert "image-only PDF (2 pages" in info.value.reason
    assert "needs OCR: install tesseract-ocr (apt-get install tesseract-ocr tesseract-ocr-eng)" in info.value.reason
    page, error = load_file(scans["mixed"], scans["mixed"].parent)  # the text page loads, the scan is reported
    assert page.page == 1 and not page.ocr
    assert "1 of 2 pages could not be read" in error.reason and "page 2: " in error.reason
    assert "needs OCR: install tesseract-ocr" in error.reason
    text_image(LINES).save(tmp_path / "note.png")
    with pytest.raises(DocumentError, match="needs OCR: install tesseract-ocr"):
        list(load_file(tmp_path / "note.png", tmp_path))
    # the pipeline goes on: the scan is reported, nothing crashes
    report = Index.open(settings=settings).add([scans["scan"], tmp_path / "note.png"])
    assert report.added == [] and len(report.failed) == 2
    assert all("needs OCR: install tesseract-ocr" in e.reason for e in report.failed)
    said = [r for r in caplog.records if "tesseract is not installed" in r.getMessage()]
    assert len(said) == 1  # said once, then on each file


def test_ocr_off_reports_the_scan_instead_of_reading_it(scans, tmp_path, settings):
    assert Settings.from_env(environ={"RAG_OCR": "0"}).ocr is False
    assert Settings.from_env(environ={}).ocr is True
    off = settings.replace(ocr=False)
    report = Index.open(settings=off).add([scans["scan"]])
    [error] = report.failed
    assert "no text layer: image-only PDF (2 pages, scanned?); OCR is off (--no-ocr, RAG_OCR=0)" in error.reason
    page, partial = load_file(scans["mixed"], scans["mixed"].parent, LoadOptions(ocr=False))
    assert page.page == 1 and "page 2: no text layer" in partial.reason and "OCR is off" in partial.reason
    # the command line: rag index --no-ocr
    code = cli_main(["index", "--quiet", "--no-ocr", "--index", str(tmp_path / "cli-index"), str(scans["scan"])])
    assert code == 1  # the documented exit code when a file could not be indexed


def test_ocr_settings_are_checked():
    from rag import RagError

    assert Settings.from_env(environ={"RAG_OCR_DPI": "200", "RAG_OCR_LANGUAGE": "eng+deu"}).ocr_dpi == 200
    with pytest.raises(RagError, match="ocr_dpi"):
        Settings(ocr_dpi=20)
    with pytest.raises(RagError, match="ocr_language"):
        Settings(ocr_language="eng; rm -rf /")


@needs_tesseract
def test_a_language_without_tesseract_data_is_reported(tmp_path):
    text_image(LINES).save(tmp_path / "note.png")
    with pytest.raises(DocumentError, match=r"no data for: apt-get install tesseract-ocr-xyz"):
        list(load_file(tmp_path / "note.png", tmp_path, LoadOptions(ocr_language="xyz")))


def test_tesseract_tsv_becomes_text_with_exact_word_offsets():
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [(1, 1, 0, 0, 0, 0, -1, ""), (5, 1, 1, 1, 1, 1, 96.5, "Hello"), (5, 1, 1, 1, 1, 2, 91, "world."),
            (4, 1, 1, 1, 2, 0, -1, ""), (5, 1, 1, 1, 2, 1, 88, "Next"), (5, 1, 2, 1, 1, 1, 40, "Block"),
            (5, 1, 2, 1, 1, 2, 95, " ")]
    tsv = "\n".join([header] + [f"{lv}\t{p}\t{b}\t{pa}\t{ln}\t{w}\t10\t20\t30\t40\t{c}\t{t}"
                                for lv, p, b, pa, ln, w, c, t in rows])
    page = ocr.parse_tsv(tsv)
    assert page.text == "Hello world.\nNext\n\nBlock"
    assert [page.text[w.start:w.end] for w in page.words] == ["Hello", "world.", "Next", "Block"]
    assert page.words[0].box == (10, 20, 30, 40) and page.words[0].confidence == 96.5
    assert page.has_text
    assert not ocr.parse_tsv(header + "\n5\t1\t1\t1\t1\t1\t0\t0\t5\t5\t12\t|~").has_text  # a drawing's marks


@needs_tesseract
def test_pages_left_for_ocr_are_read_once_tesseract_is_there(scans, no_tesseract, settings, monkeypatch):
    index = Index.open(settings=settings)
    first = index.add([scans["mixed"]])
    assert first.added == ["mixed.pdf"] and "needs OCR" in first.failed[0].reason
    assert [d["page"] for d in index.store.documents("mixed.pdf")] == [1]
    monkeypatch.undo()  # tesseract is installed now; the file itself has not changed
    ocr._engine_problem.cache_clear()
    second = index.add([scans["mixed"]])
    assert second.added == ["mixed.pdf"] and second.ok and second.unchanged == 0
    assert [(d["page"], d["ocr"]) for d in index.store.documents("mixed.pdf")] == [(1, False), (2, True)]
    assert index.add([scans["mixed"]]).unchanged == 1  # read in full: from now on a hash, nothing more
