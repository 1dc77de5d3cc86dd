"""PDF: one Document per page (1-based page numbers), text by pypdf, or by OCR where a page has none.

Tables on text pages (found by pdfplumber: rag/load/pdf_tables.py) replace their cells in pypdf's text
by rows that carry their column names; the rest of the page's text is pypdf's.

Encrypted files open with the empty password or a given one; broken cross-reference tables are
repaired. A page without a text layer (a scan) or whose text comes out garbled (a font without a
Unicode map) is rendered by pdfium and read by Tesseract (rag/load/ocr.py); its Document says ocr=True.
Without Tesseract, or with OCR off, such pages are reported, not indexed.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import unicodedata
from pathlib import Path
from typing import Iterator, NamedTuple

from ..errors import DocumentError
from ..model import Document
from . import ocr
from .pdf_tables import PageTables

SUFFIXES = (".pdf",)
KIND = "PDF (pypdf, pdfplumber)"
FORMAT = ('one document per page (1-based page numbers), text by pypdf; tables found by pdfplumber are stored '
          'as rows carrying their column names, in place of their cells; encrypted PDFs open with an empty or '
          'given password; a page without a text layer, or whose text comes out garbled (a font without a '
          'Unicode map), is read by OCR')

log = logging.getLogger(__name__)


# Ligatures become letters (the tokenizer and BM25 know "fi", not "ﬁ"); stray control characters
# (bad font maps) become spaces. Offsets refer to this cleaned page text.
_PDF_CLEAN = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st",
              0: None}
_PDF_CLEAN.update({c: " " for c in [*range(1, 9), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)]})


def clean_pdf_text(text: str) -> str:
    """What a Document keeps of pypdf's page text (public so tests can compare with pypdf)."""
    return text.translate(_PDF_CLEAN)


GARBLED_SHARE = 0.05  # of a page's characters unassigned or private-use: no real text has that many
# what pypdf logs when it cannot parse part of a page (its resources, its content stream): a page that comes
# out empty or garbled with such a note is damaged, and is reported so, not taken for a blank page
_DAMAGE = re.compile(r"error|invalid|corrupt|decompress|unexpected", re.IGNORECASE)


def garbled_share(text: str) -> float:
    """How much of the text is unassigned or private-use code points, or U+FFFD: what a font without a
    Unicode map gives (glyph ids read as characters), or one pypdf could not load. Text in any real
    script has next to none."""
    chars = [c for c in text if not c.isspace()]
    bad = sum(c == "\ufffd" or unicodedata.category(c) in ("Cn", "Co", "Cs") for c in chars)
    return bad / len(chars) if chars else 0.0


class _PypdfLog(logging.Handler):
    """pypdf reports the repairs it makes through logging; keep them off stderr, note them per file."""

    local = threading.local()

    def emit(self, record):
        notes = getattr(self.local, "notes", None)
        message = record.getMessage()
        if notes is not None and len(notes) < 1000:
            notes.append(message[:300])
        log.debug("pypdf: %s", message)


def _quiet_pypdf() -> None:
    logger = logging.getLogger("pypdf")
    if not any(isinstance(h, _PypdfLog) for h in logger.handlers):
        logger.addHandler(_PypdfLog())
        logger.propagate = False


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document | DocumentError]:
    if b"%PDF-" not in data[:1024]:
        raise DocumentError(path, f"not a PDF file (it starts with {data[:8]!r}, not %PDF-)")
    _quiet_pypdf()
    _PypdfLog.local.notes = notes = []
    try:
        docs = _read_pdf(path, source, data, options, notes)
    finally:
        _PypdfLog.local.notes = None
    yield from docs


def _open_pdf(path, data: bytes, notes):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        return PdfReader(io.BytesIO(data), strict=False)
    except (PdfReadError, ValueError) as first:
        if b"startxref" in data[-1024:]:
            raise
        # Hand-made or truncated files without a cross-reference table: pointing startxref at 0
        # makes pypdf rebuild the table by scanning the objects.
        try:
            reader = PdfReader(io.BytesIO(data.rstrip() + b"\nstartxref\n0\n%%EOF\n"), strict=False)
        except Exception:
            raise first from None
        notes.append(f"repaired: {first}")
        return reader


class _Scan(NamedTuple):
    """A page without a usable text layer: OCR's to read."""

    number: int
    why: str  # why its text layer is unusable (garbled, or damaged); "" when it has none
    fonts: int  # what its resources declare, to tell scans from blank pages
    images: int


def _read_pdf(path: Path, source: str, data: bytes, options, notes) -> list:
    from pypdf.errors import DependencyError

    try:
        reader = _open_pdf(path, data, notes)
        password = _decrypt(path, reader, list(options.passwords)) if reader.is_encrypted else None
        count = len(reader.pages)
    except DocumentError:
        raise
    except DependencyError as e:
        raise DocumentError(path, f"cannot decrypt: {e}") from None
    except NotImplementedError as e:
        raise DocumentError(path, f"unsupported PDF feature ({e})") from None
    except RecursionError:
        raise DocumentError(path, "corrupt PDF (its object structure is nested without end)") from None
    except Exception as e:  # pypdf raises many kinds on broken files
        raise DocumentError(path, f"corrupt or unreadable PDF ({type(e).__name__}: {e})") from None
    if count == 0:
        raise DocumentError(path, "PDF has no pages")

    docs, failures, scans = {}, [], []
    tables = PageTables(data, password, clean_pdf_text, enabled=options.pdf_tables)
    try:
        for number in range(1, count + 1):
            seen = len(notes)
            try:
                page = reader.pages[number - 1]
                text = clean_pdf_text(page.extract_text() or "")
            except Exception as e:  # one bad page must not lose the others
                failures.append(f"page {number}: {type(e).__name__}: {e}")
                continue
            damage = next((f"no extractable text: pypdf could not parse it ({n})" for n in notes[seen:]
                           if _DAMAGE.search(n)), "")
            share = garbled_share(text)
            if share >= GARBLED_SHARE:  # citing it would quote garbage
                why = damage or (f"its text comes out garbled ({share:.0%} of the characters are not real ones: a "
                                 "font without a Unicode map)")
                scans.append(_Scan(number, why, *_page_resources(page)))
            elif text.strip():
                text, rows = tables.place(number, text)
                docs[number] = Document(source=source, doc_id=source, text=text, page=number, rows=rows)
            else:  # blank, a scan, or its content failed to parse (the reason is kept: it is no blank page)
                scans.append(_Scan(number, damage, *_page_resources(page)))
    finally:
        tables.close()
    why_not = ocr.unavailable(options.ocr, options.ocr_language) if scans else None
    if why_not:
        failures += [f"page {s.number}: {s.why or 'no text layer, only images (scanned?)'}; {why_not}"
                     for s in scans if s.why or s.images]
    elif scans:
        failures += _read_scans(source, data, password, scans, options, docs)
    if docs:
        pages = [docs[n] for n in sorted(docs)]
        if failures:  # reported beside the pages that did load, like a bad JSONL line
            pages.append(DocumentError(path, f"{len(failures)} of {count} pages could not be read, the others "
                                             f"loaded ({failures[0]})", retry=bool(why_not)))
        return pages
    raise DocumentError(path, _why_no_text(count, scans, failures, why_not, notes))


def _read_scans(source: str, data: bytes, password, scans: list[_Scan], options, docs: dict) -> list[str]:
    """OCR the pages without a usable text layer into `docs`; the pages that failed, one line each."""
    problems, done = [], set()
    garbled = {s.number: s.why for s in scans}
    progress = options.progress or (lambda done, total: None)
    progress(0, len(scans))
    try:
        for number, image, dpi in ocr.render_pdf_pages(data, password, [s.number for s in scans], options.ocr_dpi):
            try:
                page = None if ocr.is_blank(image) else ocr.read_image(image, language=options.ocr_language, dpi=dpi)
            except OSError as e:
                problems.append(f"page {number}: OCR failed ({e})")
            else:
                if page is not None and page.has_text:
                    docs[number] = Document(source=source, doc_id=source, text=page.text, page=number, ocr=True,
                                            words=page.placed(image.size, dpi))
                elif garbled[number]:
                    problems.append(f"page {number}: {garbled[number]}, and OCR found no words on it")
            done.add(number)
            progress(len(done), len(scans))
    except Exception as e:  # pdfium could not open or draw what pypdf read: report the pages left
        left = [n for n in garbled if n not in done]
        problems += [f"page {n}: cannot render it for OCR (pdfium: {type(e).__name__}: {e})" for n in left]
    return problems


def _why_no_text(count: int, scans: list[_Scan], failures: list[str], why_not: str | None, notes) -> str:
    """The reason a PDF gave no page at all, in words that say whether OCR was tried."""
    images, fonts = sum(s.images for s in scans), sum(s.fonts for s in scans)
    pages = f"{count} page{'s' if count > 1 else ''}"
    if why_not and images and not fonts:
        reason = f"no text layer: image-only PDF ({pages}, scanned?); {why_not}"
    elif len(failures) == count:
        reason = f"no page could be read ({failures[0]})"
    elif images and not fonts:
        reason = f"image-only PDF ({pages}): OCR found no words in its images"
    else:
        kind = (f"no extractable text on its {pages} (fonts but no text came out" if fonts
                else f"no text on its {pages} (blank pages or drawings only")
        reason = f"{kind}); {why_not}" if why_not else f"{kind}; OCR found no words either)"
    damage = [n for n in notes if "decompress" in n or "corrupt" in n.lower()]
    if damage:
        reason += f"; pypdf reports damage: {damage[0]}"
    return reason


def _page_resources(page) -> tuple[int, int]:
    """(fonts, images) a page's resources declare, to tell scans from blank pages."""
    try:
        resources = page.get("/Resources") or {}
        fonts = len(resources.get("/Font") or {})
        images = 0
        for xobject in (resources.get("/XObject") or {}).values():
            if xobject.get_object().get("/Subtype") == "/Image":
                images += 1
        return fonts, images
    except Exception:
        return 0, 0


def _decrypt(path: Path, reader, passwords: list[str]) -> str:
    """The empty password first (many PDFs only restrict printing), then the given ones; the one that
    opened it (pdfium needs it to render pages for OCR)."""
    from pypdf.errors import DependencyError

    failed = None
    for password in ("", *passwords):
        try:
            if reader.decrypt(password):
                return password
        except DependencyError:
            raise
        except NotImplementedError as e:
            raise DocumentError(path, f"unsupported encryption ({e})") from None
        except Exception as e:  # not a wrong password: decrypting itself failed
            failed = failed or e
    if failed is not None:
        raise DocumentError(path, f"encrypted PDF that cannot decrypt: its encryption data is damaged or not "
                                  f"standard ({type(failed).__name__}: {failed})")
    if not any(passwords):
        raise DocumentError(
            path, "encrypted PDF that needs a password; give it with --password (or RAG_PDF_PASSWORDS)"
        )
    n = len([p for p in passwords if p])
    raise DocumentError(
        path, f"encrypted PDF: wrong password (none of the {n} given opens it); give the right one with --password"
    )
