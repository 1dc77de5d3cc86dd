"""OCR: the text of page images (scanned PDF pages, image files) by Tesseract.

We run the `tesseract` binary ourselves rather than through pytesseract, which wraps the same binary
with temporary files: one process per page, the image on stdin, TSV on stdout. One run then gives
the page's text and every word's box and confidence, and a timeout, a missing binary or a missing
language is ours to report in words that say what to do.
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache

from ..model import PageWords

log = logging.getLogger(__name__)

INSTALL_HINT = "needs OCR: install tesseract-ocr (apt-get install tesseract-ocr tesseract-ocr-eng)"
OFF_HINT = "OCR is off (--no-ocr, RAG_OCR=0)"
PAGE_TIMEOUT = 180  # seconds for one page; a 300 dpi page takes 2-4 CPU seconds (bench/results/ingest.md)
MAX_PIXELS = 60_000_000  # a rendered page larger than this is rendered at a lower dpi (memory, time)
MIN_CONFIDENCE = 50  # a page whose words all score below this holds no text, only shapes read as letters


@dataclass(kw_only=True, frozen=True)
class Word:
    start: int  # offsets into OcrPage.text
    end: int
    box: tuple[int, int, int, int]  # left, top, width, height in pixels of the image read
    confidence: float  # 0-100, Tesseract's


@dataclass(kw_only=True)
class OcrPage:
    text: str  # words joined by spaces, lines by "\n", paragraphs by a blank line
    words: list[Word] = field(default_factory=list)

    @property
    def has_text(self) -> bool:
        """Drawings and noise come out as a few low-confidence marks; a page of text has confident words."""
        return any(w.confidence >= MIN_CONFIDENCE and any(c.isalnum() for c in self.text[w.start:w.end])
                   for w in self.words)

    def placed(self, size: tuple[int, int], dpi: int | None) -> PageWords:
        """The words' boxes in points for an image of `size` pixels read at `dpi` (pixels when unknown)."""
        k = 72 / dpi if dpi else 1.0
        boxes = [(x * k, y * k, (x + w) * k, (y + h) * k) for x, y, w, h in (word.box for word in self.words)]
        return PageWords(width=size[0] * k, height=size[1] * k, boxes=boxes)


def unavailable(enabled: bool, language: str) -> str | None:
    """Why OCR cannot run (switched off, no tesseract, no data for the language), or None when it can."""
    if not enabled:
        return OFF_HINT
    return _engine_problem(language)


@lru_cache(maxsize=None)
def _engine_problem(language: str) -> str | None:
    """Checked once per process (and language); said once in the log, then on each file it affects."""
    binary = shutil.which("tesseract")
    if binary is None:
        log.warning("tesseract is not installed: scanned pages and images are reported, not read; %s",
                    INSTALL_HINT)
        return INSTALL_HINT
    try:
        listed = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"needs OCR, but tesseract does not run ({e})"
    have = {line.strip() for line in listed.splitlines()[1:]}
    missing = [lang for lang in language.split("+") if lang not in have]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        problem = (f"needs OCR in {'+'.join(missing)}, which tesseract has no data for: "
                   f"apt-get install {packages} (or set RAG_OCR_LANGUAGE)")
        log.warning(problem)
        return problem
    return None


def read_image(image, *, language: str, dpi: int | None = None, timeout: float = PAGE_TIMEOUT) -> OcrPage:
    """Tesseract's reading of one PIL image. Raises OSError when tesseract fails or times out."""
    pixels = io.BytesIO()
    _grey(image).save(pixels, format="PPM")  # PGM: no compression to spend time on
    command = [shutil.which("tesseract") or "tesseract", "stdin", "stdout", "-l", language]
    if dpi:
        command += ["--dpi", str(int(dpi))]
    # one thread: two cores are shared with embedding and other work, and OpenMP threads gain little
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run([*command, "tsv"], input=pixels.getvalue(), capture_output=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        raise OSError(f"tesseract took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OSError(f"tesseract exited with {done.returncode}: {message[-1] if message else 'no message'}")
    return parse_tsv(done.stdout.decode("utf-8", "replace"))


def parse_tsv(tsv: str) -> OcrPage:
    """Text and word boxes from Tesseract's TSV: blocks and paragraphs become blank lines, lines newlines."""
    parts, words, length, last = [], [], 0, None
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        word = cells[11].strip()
        place = (cells[1], cells[2], cells[3], cells[4])  # page, block, paragraph, line
        if last is not None:
            gap = " " if place[:4] == last[:4] else "\n" if place[:3] == last[:3] else "\n\n"
            parts.append(gap)
            length += len(gap)
        last = place
        left, top, width, height = (int(c) for c in cells[6:10])
        words.append(Word(start=length, end=length + len(word), box=(left, top, width, height),
                          confidence=float(cells[10])))
        parts.append(word)
        length += len(word)
    return OcrPage(text="".join(parts), words=words)


def _grey(image):
    """8-bit greyscale; transparency over white (a transparent screenshot is not black on black)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        image = canvas
    return image if image.mode == "L" else image.convert("L")


def is_blank(image) -> bool:
    """One colour only: nothing to read, and no reason to start tesseract."""
    low, high = _grey(image).getextrema()
    return high - low < 16


def render_pdf_pages(data: bytes, password: str | None, pages: list[int], dpi: int):
    """Yield (page number, PIL image, dpi used) for the 1-based `pages`, rendered by pdfium at `dpi` (less for
    pages so large the bitmap would exceed MAX_PIXELS). Raises pdfium's errors for a file it cannot open."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data, password=password or None)
    try:
        for number in pages:
            page = pdf[number - 1]
            try:
                width, height = page.get_size()  # points, 72 a inch
                scale = min(dpi / 72, math.sqrt(MAX_PIXELS / max(width * height, 1)))
                image = page.render(scale=scale, grayscale=True).to_pil()
            finally:
                page.close()
            yield number, image, round(scale * 72)
    finally:
        pdf.close()
