"""Stage 1, load: exact text for offsets, and a clear DocumentError for every file that cannot load."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.load import Document, LoadOptions, file_hash, find_files, load_file
from rag.load.pdf import GARBLED_SHARE, clean_pdf_text, garbled_share

REPO = Path(__file__).resolve().parents[1]
BENCH = (REPO / "../shared/bench-data").resolve()
PDFS = BENCH / "pdfs"
needs_pdfs = pytest.mark.skipif(
    not PDFS.is_dir(), reason=f"bench PDFs not found at {PDFS} (../shared/bench-data/pdfs from the repo)"
)


def load(path, root=None, passwords=(), ocr=False):
    """The text layer only, unless ocr=True: reading scans is tested in test_formats.py and test_pdf_corpus.py."""
    path = Path(path)
    return list(load_file(path, root or path.parent, LoadOptions(passwords=list(passwords), ocr=ocr)))


def docs_of(items):
    return [d for d in items if isinstance(d, Document)]


def pypdf_pages(path, password=None):
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted:
        assert reader.decrypt(password or "")
    return [p.extract_text() for p in reader.pages]


# --- text files ------------------------------------------------------------------------------------


def test_txt_keeps_crlf_and_offsets_point_into_the_file(tmp_path):
    raw = "First line.\r\nSecond line, caf\u00e9.\r\n\r\nThird.\r\n"
    f = tmp_path / "notes.txt"
    f.write_bytes(raw.encode("utf-8"))
    [doc] = load(f, tmp_path)
    assert doc.text == raw  # newlines untouched
    assert doc.source == "notes.txt" and doc.doc_id == "notes.txt" and doc.page is None
    start = doc.text.index("Second")
    end = start + len("Second line, caf\u00e9.")
    assert doc.text[start:end] == "Second line, caf\u00e9."
    assert doc.text[end:end + 2] == "\r\n"


def test_markdown_with_unicode_quotes_offsets(tmp_path):
    raw = "# Title\n\nShe said \u201cit\u2019s fine\u201d \u2014 twice.\n"
    f = tmp_path / "sub" / "a.md"
    f.parent.mkdir()
    f.write_text(raw, encoding="utf-8", newline="")
    [doc] = load(f, tmp_path)
    assert doc.source == "sub/a.md"
    assert doc.text == raw
    quote = "\u201cit\u2019s fine\u201d"
    i = doc.text.index(quote)
    assert doc.text[i:i + len(quote)] == quote
    assert i == len("# Title\n\nShe said ")  # character offsets, not byte offsets


def test_utf8_bom_is_dropped(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfHello.")
    [doc] = load(f)
    assert doc.text == "Hello."


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\r\n\t", "empty"),
        ("empty.pdf", b"", "empty"),
        ("empty.jsonl", b"\n\n", "empty"),
        ("binary.txt", bytes(range(256)) * 4, "binary"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "UTF-8"),
        ("utf16.txt", "hello".encode("utf-16"), "UTF-16"),
        ("fake.pdf", b"<html><body>not a pdf</body></html>", "not a PDF"),
        ("garbage.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 8, "PDF"),
        ("slides.key", b"PK\x03\x04keynote", "unsupported file type"),
    ],
)
def test_bad_files_fail_clearly_naming_the_file(tmp_path, name, data, reason):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(DocumentError) as info:
        load(f)
    assert info.value.path == str(f)
    assert str(f) in str(info.value)
    assert reason.lower() in info.value.reason.lower()


def test_non_utf8_error_says_where(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_bytes(b"good line\nsecond \xff line\n")
    with pytest.raises(DocumentError, match=r"byte 17, line 2"):
        load(f)


def test_missing_file_fails_clearly(tmp_path):
    with pytest.raises(DocumentError, match="cannot read"):
        load(tmp_path / "gone.txt")


# --- JSONL -----------------------------------------------------------------------------------------


def test_jsonl_beir_layout_ids_titles_and_bad_lines(tmp_path):
    lines = [
        json.dumps({"_id": "d1", "title": "First title", "text": "Alpha text.", "metadata": {}}),
        json.dumps({"id": 42, "text": "Beta \u201cquoted\u201d text.\r\nwith CRLF inside"}),
        '{"_id": "broken", "text": ',  # line 3: invalid JSON
        "",
        json.dumps({"_id": "d4", "title": None, "text": "Has U+2028 \u2028 inside, still one record."},
                   ensure_ascii=False),
        json.dumps({"_id": "d5", "title": "No text"}),  # line 6
        json.dumps({"_id": "d1", "text": "duplicate id"}),  # line 7
        json.dumps({"_id": "d8", "text": "   "}),  # line 8
        json.dumps(["not", "an", "object"]),  # line 9
        json.dumps({"text": "no id at all"}),  # line 10
    ]
    f = tmp_path / "corpus.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    items = load(f, tmp_path)
    docs = docs_of(items)
    errors = [e for e in items if isinstance(e, DocumentError)]
    assert [d.doc_id for d in docs] == ["d1", "42", "d4", "corpus.jsonl:10"]
    assert docs[0].title == "First title" and docs[0].text == "Alpha text."
    assert docs[1].title == "" and docs[1].text == "Beta \u201cquoted\u201d text.\r\nwith CRLF inside"
    assert docs[2].text == "Has U+2028 \u2028 inside, still one record."
    assert all(d.source == "corpus.jsonl" and d.page is None for d in docs)
    by_line = {e.line: e.reason for e in errors}
    assert sorted(by_line) == [3, 6, 7, 8, 9]
    assert "invalid JSON" in by_line[3]
    assert '"text"' in by_line[6]
    assert "duplicate id 'd1'" in by_line[7] and "line 1" in by_line[7]
    assert "empty text" in by_line[8]
    assert all(e.path == str(f) and str(e) == f"{f} line {e.line}: {e.reason}" for e in errors)


def test_jsonl_real_scifact_records_load():
    corpus = BENCH / "scifact/beir/corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"SciFact corpus not found at {corpus}")
    head = b"".join(corpus.open("rb").readlines()[:50])
    items = list(load_file(corpus, corpus.parent))  # the whole file: 5,183 records
    docs = docs_of(items)
    assert len(docs) == 5183 and len(items) == 5183
    for line, doc in zip(head.decode("utf-8").splitlines(), docs):
        record = json.loads(line)
        assert (doc.doc_id, doc.title, doc.text) == (record["_id"], record["title"], record["text"])


def test_jsonl_that_is_not_jsonl_fails_as_a_whole(tmp_path):
    f = tmp_path / "table.jsonl"
    f.write_text("\n".join(f"a,b,{i}" for i in range(100)), encoding="utf-8")
    with pytest.raises(DocumentError, match="not JSON Lines"):
        load(f)


# --- PDFs ------------------------------------------------------------------------------------------


@needs_pdfs
def test_pdf_pages_are_one_based_and_match_pypdf():
    path = PDFS / "pdfminer/contrib/pagelabels.pdf"
    docs = docs_of(load(path, PDFS))
    expected = pypdf_pages(path)
    assert [d.page for d in docs] == [i + 1 for i, t in enumerate(expected) if t.strip()]
    assert len(docs) == 5
    for doc in docs:
        assert doc.text == clean_pdf_text(expected[doc.page - 1])
        assert doc.source == "pdfminer/contrib/pagelabels.pdf" and doc.doc_id == doc.source


@needs_pdfs
def test_pdf_page_numbers_skip_blank_pages(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    source = PdfReader(str(PDFS / "pypdf/crazyones.pdf")).pages[0]
    writer.add_page(source)
    writer.add_blank_page(width=612, height=792)
    writer.add_page(source)
    f = tmp_path / "gap.pdf"
    with f.open("wb") as out:
        writer.write(out)
    docs = docs_of(load(f))
    assert [d.page for d in docs] == [1, 3]
    assert docs[0].text == docs[1].text


@needs_pdfs
def test_a_page_that_fails_is_reported_and_the_others_load(monkeypatch):
    from pypdf import PageObject

    real = PageObject.extract_text
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("/Font")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    path = PDFS / "pdfminer/contrib/pagelabels.pdf"
    items = load(path, PDFS)
    assert [d.page for d in docs_of(items)] == [1, 3, 4, 5]
    [error] = [e for e in items if isinstance(e, DocumentError)]
    assert error.path == str(path)
    assert "1 of 5 pages could not be read" in error.reason and "page 2: KeyError" in error.reason


@needs_pdfs
def test_crazyones_text_is_sensible():
    [doc] = load(PDFS / "pypdf/crazyones.pdf")
    expected = (PDFS / "pypdf/crazyones.txt").read_text(encoding="utf-8")
    assert doc.text == clean_pdf_text(expected)
    assert doc.text.startswith("The Crazy Ones\nOctober 14, 1998\n")
    assert "The misfits. The rebels." in doc.text  # the "ﬁ" ligature became letters
    assert not re.search("[\ufb00-\ufb06]", doc.text)


@needs_pdfs
def test_pdf_without_xref_is_repaired():
    [doc] = load(PDFS / "pdfminer/simple1.pdf")
    assert doc.page == 1 and doc.text.startswith("Hello World\nHello World")


@needs_pdfs
@pytest.mark.parametrize(
    "name, reason",
    [
        ("pypdf/imagemagick-CCITTFaxDecode.pdf", "no text layer: image-only PDF (1 page, scanned?)"),
        ("pdfminer/simple2.pdf", "no text on its 1 page (blank pages or drawings only)"),
        ("pdfminer/scancode/patchelf.pdf", "no extractable text"),
        ("pdfminer/jo.pdf", "garbled"),  # a CJK font without a Unicode map: glyph ids come out as text
    ],
)
def test_pdfs_without_text_fail_with_a_reason(name, reason):
    with pytest.raises(DocumentError) as info:
        load(PDFS / name, PDFS)
    assert info.value.path == str(PDFS / name)
    assert reason in info.value.reason and "OCR is off (--no-ocr, RAG_OCR=0)" in info.value.reason


def test_garbled_share_tells_glyph_ids_from_text_in_any_script():

    for real in ["Hello world.", "Привет, мир.", "こんにちは世界。", "مرحبا بالعالم", "Γειά σου Κόσμε", "", "  "]:
        assert garbled_share(real) == 0
    assert garbled_share("\u0378\u09c5 Θ\u038b ং\u0382 ͨ͘ ") >= GARBLED_SHARE  # unassigned code points
    assert garbled_share("Icons \ue001\ue002 mark the sections of this page, which is otherwise plain prose") < GARBLED_SHARE


@needs_pdfs
def test_truncated_pdf_never_crashes(tmp_path):
    data = (PDFS / "pypdf/crazyones.pdf").read_bytes()
    for cut in (len(data) // 4, len(data) // 2, len(data) - 40):
        f = tmp_path / f"cut{cut}.pdf"
        f.write_bytes(data[:cut])
        try:
            items = load(f)
        except DocumentError as e:
            assert e.path == str(f) and e.reason
        else:
            assert all(isinstance(d, Document) and d.text.strip() for d in items)


# --- encryption ------------------------------------------------------------------------------------

USER_PASSWORD = {  # file: a password that opens it and the text source it must equal
    "pypdf/encryption/r2-user-password.pdf": "asdfzxcv",
    "pypdf/encryption/r3-user-password.pdf": "asdfzxcv",
    "pypdf/encryption/r4-user-password.pdf": "asdfzxcv",
    "pypdf/encryption/r4-aes-user-password.pdf": "asdfzxcv",
    "pypdf/encryption/r6-both-passwords.pdf": "foo",
    "pypdf/crazyones-encrypted-256.pdf": "password",
    "pypdf/encrypted-file.pdf": "test",
    "pypdf/libreoffice-writer-password.pdf": "openpassword",
    "pdfminer/encryption/rc4-40.pdf": "foo",
    "pdfminer/encryption/rc4-128.pdf": "foo",
    "pdfminer/encryption/aes-128.pdf": "foo",
    "pdfminer/encryption/aes-128-m.pdf": "foo",
    "pdfminer/encryption/aes-256.pdf": "foo",
    "pdfminer/encryption/aes-256-m.pdf": "foo",
    "pdfminer/encryption/aes-256-r6.pdf": "usersecret",
}
EMPTY_PASSWORD = [
    "pypdf/encryption/r2-empty-password.pdf", "pypdf/encryption/r3-empty-password.pdf",
    "pypdf/encryption/r5-empty-password.pdf", "pypdf/encryption/r6-empty-password.pdf",
    "pypdf/encryption/r2-owner-password.pdf", "pypdf/encryption/r4-owner-password.pdf",
    "pypdf/encryption/r5-owner-password.pdf", "pypdf/encryption/r6-owner-password.pdf",
    "pypdf/encryption/r4-aes-v2-no-key-length.pdf",
    # user `asdfzxcv` but owner "": the empty password opens them as their owner
    "pypdf/encryption/r5-user-password.pdf", "pypdf/encryption/r6-user-password.pdf",
    "pdfminer/contrib/issue-00352-asw-oct96-p41.pdf", "pdfminer/contrib/issue-625-identity-cmap.pdf",
]


@needs_pdfs
@pytest.mark.parametrize("name", sorted(USER_PASSWORD))
def test_encrypted_pdf_opens_with_its_password_only(name):
    path = PDFS / name
    password = USER_PASSWORD[name]
    docs = docs_of(load(path, PDFS, [password]))
    assert docs and all(d.text.strip() for d in docs)
    assert [d.text for d in docs] == [clean_pdf_text(t) for t in pypdf_pages(path, password) if t.strip()]
    with pytest.raises(DocumentError, match="needs a password") as info:
        load(path, PDFS)
    assert info.value.path == str(path)
    with pytest.raises(DocumentError, match="wrong password"):
        load(path, PDFS, ["qwerty"])
    # the right one among wrong ones still opens it
    assert docs_of(load(path, PDFS, ["qwerty", "", password, "zzz"])) == docs


@needs_pdfs
def test_encrypted_pdfs_open_to_the_plain_text():
    plain = docs_of(load(PDFS / "pypdf/encryption/unencrypted.pdf"))[0].text
    for name in [n for n in USER_PASSWORD if n.startswith("pypdf/encryption/")]:
        assert docs_of(load(PDFS / name, PDFS, [USER_PASSWORD[name]]))[0].text == plain, name
    assert docs_of(load(PDFS / "pypdf/encryption/r6-both-passwords.pdf", PDFS, ["bar"]))[0].text == plain
    base = docs_of(load(PDFS / "pdfminer/encryption/base.pdf"))[0].text
    for name in [n for n in USER_PASSWORD if n.startswith("pdfminer/encryption/") and "r6" not in n]:
        assert docs_of(load(PDFS / name, PDFS, [USER_PASSWORD[name]]))[0].text == base, name
    r6 = PDFS / "pdfminer/encryption/aes-256-r6.pdf"
    assert docs_of(load(r6, PDFS, ["ownersecret"])) == docs_of(load(r6, PDFS, ["usersecret"]))
    assert docs_of(load(r6, PDFS, ["usersecret"]))[0].text == "Hello World"
    assert docs_of(load(PDFS / "pdfminer/encryption/rc4-128.pdf", PDFS, ["baz"]))[0].text == base


@needs_pdfs
@pytest.mark.parametrize("name", EMPTY_PASSWORD)
def test_encrypted_pdf_with_empty_user_password_opens_without_one(name):
    docs = docs_of(load(PDFS / name, PDFS))
    assert docs and all(d.text.strip() for d in docs)


def sources_md_passwords() -> list[str]:
    text = (BENCH / "SOURCES.md").read_text(encoding="utf-8")
    section = text[text.index("## 4."):text.index("## 5.")]
    found = re.findall(r"(?:user|owner|\.pdf`:)\s+`([^`]+)`", section)
    return sorted(set(found))


@needs_pdfs
def test_every_bench_pdf_loads_or_fails_clearly():
    passwords = sources_md_passwords()
    assert {"asdfzxcv", "foo", "bar", "password", "test", "openpassword", "usersecret"} <= set(passwords)
    assert "qwerty" not in passwords  # SOURCES.md names it as the wrong one
    files = sorted(PDFS.rglob("*.pdf"))
    assert len(files) >= 100
    loaded, failed = {}, {}
    for path in files:
        name = path.relative_to(PDFS).as_posix()
        try:
            items = list(load_file(path, PDFS, LoadOptions(passwords=list(passwords), ocr=False)))
        except DocumentError as e:
            assert e.path == str(path) and e.reason, name
            failed[name] = e.reason
            continue
        # any other exception fails the test right here, with its traceback
        docs = docs_of(items)
        assert docs and all(isinstance(d, (Document, DocumentError)) for d in items), name
        assert all(e.path == str(path) for e in items if isinstance(e, DocumentError)), name
        pages = [d.page for d in docs]
        assert pages == sorted(set(pages)) and pages[0] >= 1, name
        assert all(d.source == name and d.text.strip() for d in docs), name
        loaded[name] = docs
    assert set(USER_PASSWORD) | set(EMPTY_PASSWORD) <= set(loaded)
    assert "pypdf/crazyones.pdf" in loaded and "pdfminer/simple1.pdf" in loaded
    assert not any("password" in reason for reason in failed.values())
    assert len(loaded) >= 95, sorted(failed.items())
    # what has no usable text layer says that OCR would read it (test_pdf_corpus.py reads them)
    assert all("OCR is off" in reason for reason in failed.values() if "image-only" in reason or "garbled" in reason)


@needs_pdfs
def test_pypdf_warnings_stay_off_stderr():
    noisy = ["pypdf/issue-297.pdf", "pypdf/toy.pdf", "pdfminer/scancode/patchelf.pdf",
             "pdfminer/zen_of_python_corrupted.pdf", "pdfminer/font-size-test.pdf", "pdfminer/simple1.pdf"]
    code = (
        "import sys\nfrom pathlib import Path\nfrom rag.load import load_file\nfrom rag.errors import DocumentError\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        list(load_file(Path(name), Path(name).parent))\n"
        "    except DocumentError:\n        pass\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *[str(PDFS / n) for n in noisy]],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# --- folders and hashes ----------------------------------------------------------------------------


def test_find_files_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.PDF").write_bytes(b"%PDF-")
    (tmp_path / "c.key").write_text("x")
    (tmp_path / ".hidden.txt").write_text("h")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.md").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jsonl").write_text("{}")
    found, skipped, failed = find_files([tmp_path])
    assert [(f.relative_to(tmp_path).as_posix(), root) for f, root in found] == [
        ("a.txt", tmp_path), ("b.PDF", tmp_path), ("sub/d.jsonl", tmp_path)]
    assert skipped == [tmp_path / "c.key"]
    assert find_files([tmp_path / "a.txt"]) == ([(tmp_path / "a.txt", tmp_path)], [], [])
    with pytest.raises(DocumentError, match="no such file"):
        find_files([tmp_path / "nope"])


def test_file_hash_is_sha256():
    assert file_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- pages and passwords that fail say why (issue 20, defect 7) --------------------------------------


def two_page_pdf(tmp_path, damage: bytes | None = None):
    """Two text pages; `damage` replaces the Font entry of the second page's resources (same length, so the
    cross-reference table stays right)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_compression(False)
    for line in ("The first page tells of the harbour.", "The second page tells of the lighthouse keeper."):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.cell(0, 10, line)
    data = bytes(pdf.output())
    if damage is not None:
        good = b"/Font <</F1 7 0 R>>"
        at = data.index(good, data.index(b"\n9 0 obj"))  # the second page's resources
        assert len(damage) == len(good)
        data = data[:at] + damage + data[at + len(good):]
    path = tmp_path / "two.pdf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("damage", [b"/Font (unterminated", b"/Font <<]F1 7 0 R>>"])
def test_a_page_whose_resources_fail_to_parse_is_reported_with_ocr_off(tmp_path, damage):
    path = two_page_pdf(tmp_path, damage)
    items = load(path, tmp_path)
    assert [(d.page, d.text) for d in docs_of(items)] == [(1, "The first page tells of the harbour.")]
    [error] = [e for e in items if isinstance(e, DocumentError)]
    assert "1 of 2 pages could not be read" in error.reason and "page 2:" in error.reason
    assert "page 2: no extractable text: pypdf could not parse it (Pdf" in error.reason  # the real reason: not a blank page, not OCR's


def test_a_page_pypdf_fails_on_is_reported_and_the_other_loads(tmp_path):
    items = load(two_page_pdf(tmp_path, b"<< << << << << << <"), tmp_path)  # pdfminer fails on it too
    assert [d.page for d in docs_of(items)] == [1]
    [error] = [e for e in items if isinstance(e, DocumentError)]
    assert "1 of 2 pages could not be read" in error.reason and "page 2: PdfStreamError" in error.reason


def test_an_undamaged_two_page_pdf_loads_whole(tmp_path):
    assert [d.page for d in load(two_page_pdf(tmp_path), tmp_path)] == [1, 2]


@needs_pdfs
def test_a_decryption_error_is_not_reported_as_a_wrong_password(tmp_path):
    data = (PDFS / "pypdf/encryption/r6-both-passwords.pdf").read_bytes()
    ue = re.search(rb"/UE <[0-9a-f]+>", data).group(0)  # the user key's envelope, damaged: AES cannot open it
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(data.replace(ue, b"/UE <1234>".ljust(len(ue)), 1))
    with pytest.raises(DocumentError) as info:
        load(damaged, passwords=["foo"])  # the right user password
    assert "wrong password" not in info.value.reason
    assert "cannot decrypt" in info.value.reason and "ValueError" in info.value.reason
    with pytest.raises(DocumentError, match="wrong password"):  # a wrong one is still called so
        load(PDFS / "pypdf/encryption/r6-both-passwords.pdf", passwords=["qwerty"])
