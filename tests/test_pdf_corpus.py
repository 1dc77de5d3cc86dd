"""The 115 real, encrypted and broken PDFs: every one indexed or reported, none lost, no crash; the
scanned ones read by OCR (indexed once for the module: OCR of the ~20 pages without text takes a while)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import shared_path
from rag import DocumentError, Index, Settings
from rag.load import LoadOptions, load_file

PASSWORDS = ["asdfzxcv", "foo", "password", "test", "openpassword", "usersecret"]  # bench-data/SOURCES.md
NEED_PASSWORD = ["pypdf/encryption/r6-both-passwords.pdf", "pypdf/crazyones-encrypted-256.pdf",
                 "pypdf/encrypted-file.pdf", "pypdf/libreoffice-writer-password.pdf",
                 "pdfminer/encryption/aes-256-r6.pdf", "pdfminer/encryption/rc4-128.pdf"]


def relative(folder: Path, path) -> str:
    return Path(path).resolve().relative_to(folder.resolve()).as_posix()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder):
    folder = shared_path("bench-data", "pdfs")
    work = tmp_path_factory.mktemp("pdf-corpus")
    settings = Settings.from_env(environ={}, index_dir=work / "index", corpus_dir=folder, quiet=True,
                                 pdf_passwords=PASSWORDS)
    index = Index.open(settings=settings)
    stages = []
    report = index.add([folder], progress=lambda stage, done, total: stages.append(stage))
    return folder, index, report, stages


def test_every_pdf_is_indexed_or_reported(indexed, settings):
    folder, index, report, _ = indexed
    pdfs = {p.relative_to(folder).as_posix() for p in folder.rglob("*.pdf")}
    assert len(pdfs) == 115
    added = {s for s in report.added if s.endswith(".pdf")}
    failed = {relative(folder, e.path) for e in report.failed}
    assert added | failed == pdfs and not added & failed
    assert len(added) >= 95, sorted(failed)
    assert all(e.reason for e in report.failed)
    for name in NEED_PASSWORD:
        assert name in added, name
    hit = index.search("The crazy ones, the misfits, the rebels", k=3, mode="bm25")[0]
    assert "crazyones" in hit.source and hit.page >= 1
    assert index.store.document_text(hit.source, hit.doc_id, hit.page)[hit.start:hit.end] == hit.text
    # Without the passwords the protected files are reported, and everything else still goes in.
    bare = Index.open(tmp := settings.index_dir.with_name("bare"), settings.replace(index_dir=tmp))
    locked = bare.add([folder / "pypdf" / "encryption"])
    reasons = {Path(e.path).name: e.reason for e in locked.failed}
    assert "password" in reasons["r6-both-passwords.pdf"]
    assert "r2-empty-password.pdf" in {Path(s).name for s in locked.added}


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed (make test installs it)")
def test_pdfs_without_a_text_layer_are_read_by_ocr(indexed):
    folder, index, report, stages = indexed
    # what the text layer alone cannot give: image-only files and garbled pages
    without = {}
    for path in sorted(folder.rglob("*.pdf")):
        try:
            items = list(load_file(path, folder, LoadOptions(passwords=PASSWORDS, ocr=False)))
        except DocumentError as e:
            if "OCR is off" in e.reason:
                without[relative(folder, path)] = e.reason
            continue
        if any(isinstance(i, DocumentError) and "OCR is off" in i.reason for i in items):
            without[relative(folder, path)] = items[-1].reason
    assert len(without) >= 8, without
    read = {d["source"] for d in index.store.documents() if d["ocr"]}
    reasons = {relative(folder, e.path): e.reason for e in report.failed}
    assert len(read & set(without)) >= 4, (read, reasons)
    for name in without:  # each one was indexed, or reported with what OCR found: never "no text layer" again
        assert name in report.added or "OCR found no words" in reasons.get(name, ""), (name, reasons.get(name))
    assert not any("no text layer" in r or "needs OCR" in r or "OCR is off" in r for r in reasons.values())
    assert "ocr" in stages
    for doc in index.store.documents():
        if doc["ocr"]:
            assert doc["text"].strip() and doc["page"] >= 1
    for hit in index.store.chunks():
        assert index.store.document_text(hit.source, hit.doc_id, hit.page)[hit.start:hit.end] == hit.text
