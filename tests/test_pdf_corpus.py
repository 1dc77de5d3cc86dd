"""The 115 real, encrypted and broken PDFs: every one indexed or reported, none lost, no crash."""

from __future__ import annotations

from pathlib import Path

from conftest import shared_path
from rag import Index

PASSWORDS = ["asdfzxcv", "foo", "password", "test", "openpassword", "usersecret"]  # bench-data/SOURCES.md
NEED_PASSWORD = ["pypdf/encryption/r6-both-passwords.pdf", "pypdf/crazyones-encrypted-256.pdf",
                 "pypdf/encrypted-file.pdf", "pypdf/libreoffice-writer-password.pdf",
                 "pdfminer/encryption/aes-256-r6.pdf", "pdfminer/encryption/rc4-128.pdf"]


def test_every_pdf_is_indexed_or_reported(settings):
    folder = shared_path("bench-data", "pdfs")
    pdfs = {p.relative_to(folder).as_posix() for p in folder.rglob("*.pdf")}
    assert len(pdfs) == 115
    index = Index.open(settings=settings.replace(pdf_passwords=PASSWORDS))
    report = index.add([folder])
    added = {s for s in report.added if s.endswith(".pdf")}
    failed = {Path(e.path).resolve().relative_to(folder.resolve()).as_posix() for e in report.failed}
    assert added | failed == pdfs and not added & failed
    assert len(added) >= 90, sorted(failed)
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
