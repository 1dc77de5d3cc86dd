"""Citations on their page (rag/pages/): over PDFs made here by Chromium (one and two columns, sentences broken
across lines and across a column, ligatures and hyphenation, a rotated page, a scanned page), the text pdfium
reads inside each citation's boxes holds the cited sentence and little more; the page renders with the lines
highlighted; the OCR word boxes survive the store, and an index of the previous format is migrated in place."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import print_pdfs

from rag import Index, Settings, ask
from rag.model import Answer, Citation, PageWords
from rag.pages.align import align
from rag.pages.locate import held, locate, read_layout, text_boxes, text_in
from rag.pages.render import PageCache, page_image, render
from rag.pages.view import page_view
from rag.pages.words import pack_words, span_boxes, unpack_words
from rag.store import FORMAT_VERSION, MIGRATIONS

@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    return print_pdfs(tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def pages_index(pdfs, embedder):
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is absent (make ocr): the scanned page needs it")
    settings = Settings.from_env(environ={}, index_dir=pdfs["folder"] / "index", corpus_dir=pdfs["corpus"], quiet=True)
    index = Index.open(settings=settings)
    report = index.add()
    assert report.ok and len(report.added) == 5, report.failed
    return index


def sentence_citations(index, source):
    """A Citation for every stored sentence of `source`, each with the chunk it lies in: what answers cite."""
    hits = index.store.chunks(source)
    seen, answer = set(), Answer(question="", text="", abstained=False, passages=hits)
    for i, hit in enumerate(hits):
        page_text = index.store.document_text(source, hit.doc_id, hit.page)
        for start, end in hit.sentences:
            if (hit.page, start) not in seen:
                seen.add((hit.page, start))
                answer.citations.append(Citation(n=len(answer.citations) + 1, source=source, doc_id=hit.doc_id,
                                                 page=hit.page, start=start, end=end, text=page_text[start:end],
                                                 score=0.0, passage=i, ocr=hit.ocr))
    locate(answer, index.store_of)
    return answer.citations


@pytest.mark.parametrize("name", ["one-column.pdf", "two-columns.pdf", "rotated.pdf", "scanned.pdf"])
def test_the_text_inside_each_citations_boxes_is_its_sentence(pdfs, pages_index, name):
    import pypdfium2 as pdfium

    citations = sentence_citations(pages_index, name)
    assert len(citations) >= 8
    # the scan has no text layer: its boxes are read back on the page it was made from
    pdf = pdfium.PdfDocument(str(pdfs["original"] if name == "scanned.pdf" else pdfs[name]))
    failures, extras = [], []
    for c in citations:
        assert c.boxes and c.page_width > 0 and c.page_height > 0, c.text
        assert all(0 <= b[0] < b[2] <= c.page_width + 1 and 0 <= b[1] < b[3] <= c.page_height + 1 for b in c.boxes)
        page = pdf[c.page - 1]
        assert (c.page_width, c.page_height) == pytest.approx(page.get_size(), abs=1)
        ok, extra = held(c.text, text_in(page, c.boxes))
        extras.append(extra)
        if not ok or extra > max(6, 0.1 * len(c.text)):
            failures.append((c.text, text_in(page, c.boxes)))
    pdf.close()
    if name == "scanned.pdf":  # OCR misreads a little: most sentences, not all, come back exactly
        assert all(c.ocr for c in citations)
        assert len(failures) <= 0.2 * len(citations), failures
    else:
        assert not failures, failures
        assert np.mean(extras) <= 2
    multi_line = [c for c in citations if len(c.boxes) >= 2]
    assert len(multi_line) >= 3  # sentences broken across lines come back whole


def test_a_sentence_across_the_column_break_gets_boxes_in_both_columns(pdfs, pages_index):
    citations = sentence_citations(pages_index, "two-columns.pdf")
    across = [c for c in citations if min(b[0] for b in c.boxes) < c.page_width / 2 < max(b[0] for b in c.boxes)]
    assert across, "no sentence crosses the column break: make the first column end mid-sentence"
    for c in across:  # the part in the second column starts at its top, the first ends at the bottom of the first
        left = [b for b in c.boxes if b[0] < c.page_width / 2]
        right = [b for b in c.boxes if b[0] >= c.page_width / 2]
        assert max(b[1] for b in left) > min(b[1] for b in right)


def test_ligatures_and_hyphenated_words_are_covered(pdfs, pages_index):
    import pypdfium2 as pdfium

    citations = sentence_citations(pages_index, "one-column.pdf")
    pdf = pdfium.PdfDocument(str(pdfs["one-column.pdf"]))
    ligature = next(c for c in citations if "official fisheries" in c.text)
    broken = next(c for c in citations if c.text.startswith("Notwithstanding"))
    assert "ﬁ" not in ligature.text  # stored as letters; pdfium gives the glyph's letters their boxes
    read = text_in(pdf[0], broken.boxes)
    assert held(broken.text, read)[0] and "‐" in read  # the hyphen at each line end is inside the boxes
    assert len(broken.boxes) >= 3
    pdf.close()


def test_held_takes_a_glyph_pdfium_cannot_name_for_any_character_and_a_line_end_hyphen_as_optional():
    """pdfium gives a control character for a glyph without a Unicode map (TeX's ϵ, ′, ‖), and may read a
    list's dash at a line end, which looks like a word broken there."""
    assert held("an ϵ parameter, D′ and ‖f‖1.", "an \x02 parameter, D\x03 and \x06f\x061.") == (True, 0)
    assert held("- Isolated:  boolean", "- \nIsolated: boolean")[0]
    assert held("the contribu-\ntion of each", "the contribu\r\ntion of each")[0]
    assert held("Computational", "Computa\x02tional")[0]
    assert not held("an ϵ parameter", "an parameter")[0] and not held("exp(ϵ)", "exp(x)")[0]


def test_table_rows_with_repeated_headers_map_only_their_cells(pdfs):
    """The stored text of a table will be rows of 'Header: cell' pairs: the cells map to their boxes, the
    inserted header names and separators to nothing."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdfs["table.pdf"]))
    page = pdf[0]
    layout = read_layout(page)
    stored = ("Region: Benelux | Revenue: 55.9 | Employees: 418\n"
              "Region: Nordics | Revenue: 71.2 | Employees: 530\n")
    mapped = align(stored, layout.chars)
    second = stored.index("Region: Nordics")
    boxes = text_boxes(layout, mapped, second, stored.index("\n", second))
    read = text_in(page, boxes)
    for cell in ("Nordics", "71.2", "530"):
        assert cell in read
    for other in ("Benelux", "55.9", "418"):
        assert other not in read
    assert all(mapped[stored.index(w):stored.index(w) + len(w)].min() >= 0 for w in ("Benelux", "55.9", "418"))
    pdf.close()


def test_ask_carries_the_boxes_to_the_answer_and_its_json(pages_index):
    answer = ask("Who counted boats before the storm reached the pier?", index=pages_index)
    assert not answer.abstained and answer.citations
    c = answer.citations[0]
    assert c.source.endswith(".pdf") and c.boxes and "locate" in answer.timings
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["citations"][0]["boxes"] == [list(b) for b in c.boxes]
    assert data["citations"][0]["page_width"] == c.page_width > 0


def test_a_pdf_changed_since_indexing_gets_no_boxes_and_no_page(pdfs, pages_index, tmp_path):
    cited = sentence_citations(pages_index, "one-column.pdf")[0]
    cache = PageCache(tmp_path / "cache", 10_000_000)
    hit = pages_index.store.chunks("one-column.pdf")[0]
    page = pages_index.store.pages_of([hit.chunk_id])[hit.chunk_id]
    copy = tmp_path / "one-column.pdf"
    shutil.copy(pdfs["one-column.pdf"], copy)
    assert page_image(cache, str(copy), page["hash"], 1, cited.boxes)[:2] == b"\xff\xd8"  # a JPEG
    with copy.open("ab") as f:
        f.write(b"\n% changed\n")
    from rag.errors import RagError

    with pytest.raises(RagError, match="changed since it was indexed"):
        page_image(cache, str(copy), page["hash"], 1, cited.boxes, zoom=2.0)
    original = page["path"]
    try:
        Path(original).rename(original + ".away")
        answer = Answer(question="", text="", abstained=False, passages=[hit], citations=[
            Citation(n=1, source=hit.source, doc_id=hit.doc_id, page=1, start=cited.start, end=cited.end,
                     text=cited.text, score=0.0, passage=0)])
        from rag.pages import locate as locate_module

        locate_module._layouts.kept.clear()
        locate(answer, pages_index.store_of)
        assert answer.citations[0].boxes == [] and answer.citations[0].page_width == 0
    finally:
        Path(original + ".away").rename(original)


def test_the_rendered_page_is_highlighted_where_the_boxes_are(pdfs, pages_index):
    from PIL import Image
    import io

    c = sentence_citations(pages_index, "two-columns.pdf")[3]
    data = pdfs["two-columns.pdf"].read_bytes()
    plain = Image.open(io.BytesIO(render(data, c.page, []))).convert("RGB")
    marked = Image.open(io.BytesIO(render(data, c.page, c.boxes))).convert("RGB")
    assert plain.size == marked.size
    assert plain.size == pytest.approx((c.page_width * 1.5, c.page_height * 1.5), abs=1)
    diff = np.asarray(plain, dtype=np.int16) - np.asarray(marked, dtype=np.int16)
    changed = np.abs(diff).sum(axis=2) > 30
    scale = plain.width / c.page_width
    inside, near = np.zeros_like(changed), np.zeros_like(changed)  # near: JPEG's 8-pixel blocks around the edges
    for left, top, right, bottom in c.boxes:
        inside[round(top * scale):round(bottom * scale), round(left * scale):round(right * scale)] = True
        near[int(top * scale) - 12:int(bottom * scale) + 12, int(left * scale) - 12:int(right * scale) + 12] = True
    assert changed[inside].mean() > 0.5 and not changed[~near].any()
    blue_drop = diff[..., 2][changed]  # yellow: blue falls, red stays
    assert blue_drop.mean() > 40
    crop = Image.open(io.BytesIO(render(data, c.page, c.boxes, crop=True)))
    width = (max(b[2] for b in c.boxes) - min(b[0] for b in c.boxes) + 36) * 3
    assert crop.width == pytest.approx(width, abs=4) and crop.height < plain.height


def test_the_scan_view_crops_the_scan_itself(pdfs, pages_index):
    from PIL import Image
    import io

    c = sentence_citations(pages_index, "scanned.pdf")[2]
    crop = Image.open(io.BytesIO(render(pdfs["scanned.pdf"].read_bytes(), c.page, c.boxes, crop=True))).convert("L")
    assert 0.02 < (np.asarray(crop) < 100).mean() < 0.5  # dark text pixels in the region, not a blank


def test_page_cache_keeps_within_its_bound_dropping_the_least_recently_used(tmp_path):
    cache = PageCache(tmp_path, 2500)
    made = []

    def maker(n):
        return lambda: made.append(n) or bytes([n]) * 1000

    for n in range(3):
        assert cache.get({"n": n}, maker(n)) == bytes([n]) * 1000
    assert sum(p.stat().st_size for p in tmp_path.glob("*.jpg")) <= 2500
    assert cache.get({"n": 2}, maker(2)) and made == [0, 1, 2]  # kept: not made again
    assert cache.get({"n": 0}, maker(0)) and made == [0, 1, 2, 0]  # dropped first: made again
    assert not list(tmp_path.glob("*.tmp"))


def test_ocr_word_boxes_pack_small_and_exactly_to_a_quarter_point():
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 500, 400)
    top = np.sort(rng.uniform(0, 800, 400))
    boxes = [(x, y, x + rng.uniform(5, 60), y + rng.uniform(6, 12)) for x, y in zip(left, top)]
    words = PageWords(width=612.0, height=792.0, boxes=boxes)
    blob = pack_words(words)
    back = unpack_words(blob)
    assert (back.width, back.height) == (612.0, 792.0)
    assert np.abs(np.asarray(back.boxes) - np.asarray(boxes)).max() <= 0.25
    assert len(blob) < 8 * len(boxes)  # under 8 bytes a word


def test_ocr_span_boxes_one_per_line_narrowed_to_the_span():
    text = "Alpha beta gamma\ndelta epsilon"
    words = PageWords(width=100, height=100, boxes=[(0, 0, 50, 10), (60, 0, 80, 10), (90, 0, 100, 10),
                                                    (0, 20, 50, 30), (60, 20, 95, 30)])
    start = text.index("beta")
    assert span_boxes(text, words, start, text.index("delta") + 5) == [(60, 0, 100, 10), (0, 20, 50, 30)]
    assert span_boxes(text, words, text.index("pha"), text.index(" beta")) == [(20.0, 0, 50, 10)]
    assert span_boxes(text + " zeta", words, 0, 5) == []  # words and text disagree: no boxes


def test_an_index_of_the_previous_format_opens_migrated_without_re_embedding(pdfs, pages_index, tmp_path, embedder):
    """Format 5 is today's schema less documents.words: an index written by it opens, migrated in place,
    every chunk and vector kept; its OCR pages have no boxes, its text pages do."""
    assert MIGRATIONS == {5: ["ALTER TABLE documents ADD COLUMN words BLOB"]} and FORMAT_VERSION == 6
    old = tmp_path / "old-index"
    pages_index.store.close()
    shutil.copytree(pages_index.dir, old)
    db = sqlite3.connect(old / "rag.sqlite")
    db.execute("ALTER TABLE documents DROP COLUMN words")
    db.execute("UPDATE manifest SET value = '5' WHERE key = 'format_version'")
    db.commit()
    db.close()
    settings = Settings.from_env(environ={}, index_dir=old, corpus_dir=pdfs["corpus"], quiet=True)
    index = Index.open(settings=settings)
    assert index.store.manifest()["format_version"] == FORMAT_VERSION
    ids = index.store.chunk_ids()
    assert np.array_equal(ids, pages_index.store.chunk_ids())
    assert np.array_equal(index.store.vectors_of(ids, 384), pages_index.store.vectors_of(ids, 384))
    report = index.add()
    assert report.embedded == 0 and report.added == [] and report.unchanged == 5
    scanned = sentence_citations(index, "scanned.pdf")
    assert scanned and all(c.boxes == [] for c in scanned)  # indexed before words were kept
    assert all(c.boxes for c in sentence_citations(index, "one-column.pdf"))
    columns = [r[1] for r in sqlite3.connect(old / "rag.sqlite").execute("PRAGMA table_info(documents)")]
    assert columns[-1] == "words"
    index.close()


def test_page_view_html_for_a_pdf_an_ocr_page_and_a_text_file():
    from lxml import html as lxml_html

    c = Citation(n=2, source="report <1>.pdf", doc_id="report <1>.pdf", page=3, start=10, end=40,
                 text="Revenue rose <b>5%</b> & more.", score=0.9, boxes=[(72.0, 100.0, 300.0, 112.0),
                                                                         (72.0, 113.0, 200.0, 125.0)],
                 page_width=612.0, page_height=792.0)
    page = page_view(c, position=(2, 3), image_url="/page?c=2&z=1", file_url="/file/report%20%3C1%3E.pdf",
                     previous_url="/view?c=1", next_url="/view?c=3")
    tree = lxml_html.fromstring(page)
    assert tree.xpath("//img[@src='/page?c=2&z=1']")
    lines = tree.xpath("//figure//span[@class='line']")
    assert len(lines) == 2 and lines[0].get("id") == "cited"
    assert "left:11.765%" in lines[0].get("style") and "top:12.626%" in lines[0].get("style")
    assert tree.xpath("//blockquote")[0].text_content() == c.text  # escaped, shown as text
    assert not tree.xpath("//blockquote//b")
    assert tree.xpath("//a[@href='/file/report%20%3C1%3E.pdf#page=3']")
    assert tree.xpath("//a[@rel='prev']/@href") == ["/view?c=1"] and tree.xpath("//a[@rel='next']/@href") == ["/view?c=3"]
    assert tree.xpath("//button[@data-zoom]") and "scrollIntoView" in page and "OCR" not in page

    c.ocr = True
    ocr = lxml_html.fromstring(page_view(c, image_url="/page?c=2", scan_url="/page?c=2&crop=1", next_url=""))
    assert "read from a scan by OCR" in ocr.text_content()
    assert ocr.xpath("//aside//img[@src='/page?c=2&crop=1']") and ocr.xpath("//a[@rel='next']/@class") == ["off"]

    text = "word " * 10_000 + "<script>alert(1)</script>\nThe cited sentence. " + "tail " * 10_000
    start = text.index("The cited")
    t = Citation(n=1, source="notes.txt", doc_id="notes.txt", page=None, start=start, end=start + 19,
                 text=text[start:start + 19], score=0.5)
    doc = lxml_html.fromstring(page_view(t, file_url="/file/notes.txt", text=text))
    assert doc.xpath("//mark[@id='cited']")[0].text == "The cited sentence."
    assert not doc.xpath("//pre//script") and "<script>alert" in doc.xpath("//pre")[0].text_content()
    assert not doc.xpath("//figure") and doc.xpath("//a[@href='/file/notes.txt']")
    shown = doc.xpath("//pre")[0].text_content()
    assert len(shown) < 45_000 and shown.endswith("…")  # a long document is cut around the span


def test_a_view_link_leaves_withheld_citations_out():
    """A citation into a KB the reader lost is {"n", "withheld"}: nothing of it goes into the link, and the others
    still open at the right index."""
    from urllib.parse import parse_qs

    from rag.pages.view import read_spans, view_query

    shown = {"n": 2, "kb": "hr", "source": "notes.txt", "doc_id": "notes.txt", "page": None, "start": 4, "end": 9}
    query = parse_qs(view_query([{"n": 1, "withheld": True}, shown], 1))
    assert query["i"] == ["0"] and len(query["c"]) == 1
    (span,) = read_spans(query["c"])
    assert (span.n, span.kb, span.source, span.start, span.end) == (2, "hr", "notes.txt", 4, 9)
