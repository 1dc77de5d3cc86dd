"""Citations on their page (rag/pages/): do a citation's boxes hold its sentence, what do they cost, how fast
is a page drawn.

  agreement  every sentence (rag.chunk.split_sentences, the units answers cite) of every text page of the PDFs
             in ../shared/bench-data/pdfs and alce: its boxes (stored text aligned with pdfium's characters,
             as at question time), read back with pdfium: the share whose boxes hold the sentence (whitespace
             and line-end hyphens aside) and the extra characters; the share of stored characters aligned
  ocr        ALCE pages rendered at 300 dpi and read by Tesseract through the loader's functions: the bytes the
             packed word boxes add per page (beside the page's text), and the same agreement, read back on
             the original page with its text layer
  render     each ALCE page drawn with a cited sentence highlighted (render.render: pdfium, JPEG), and the
             cropped region; and the first look at a page (characters, boxes and alignment, what the first
             citation into it costs an answer)
  route      the same through the server, as the chat's "page" link asks for them: GET /cite (the view: the
             file checked, the boxes placed from stored data) and GET /cite/page (the image, first drawn, then
             from the disk cache), over ALCE and a scan of three of its pages (OCR, the cited region cropped)

    .venv/bin/python bench/suites/pages.py          # writes bench/results/pages.md
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402

from rag.chunk import split_sentences  # noqa: E402
from rag.errors import DocumentError  # noqa: E402
from rag.load import LoadOptions, load_file  # noqa: E402
from rag.pages.align import align  # noqa: E402
from rag.pages.locate import held, read_layout, text_boxes, text_in  # noqa: E402
from rag.pages.render import render  # noqa: E402
from rag.pages.words import pack_words, span_boxes  # noqa: E402

PDFS = common.DATA / "pdfs"
ALCE = common.DATA / "alce" / "paper" / "ALCE.pdf"
OCR_PAGES = (1, 4, 7)
MIN_CHARS = 10  # shorter "sentences" (page numbers, stray marks) are left out


def passwords() -> list[str]:
    """The passwords SOURCES.md gives for the encrypted test PDFs (its section 4, as tests/test_load.py reads it)."""
    text = (common.DATA / "SOURCES.md").read_text(encoding="utf-8")
    section = text[text.index("## 4."):text.index("## 5.")]
    return sorted(set(re.findall(r"(?:user|owner|\.pdf`:)\s+`([^`]+)`", section)))


def sentences(text: str):
    for start, end in split_sentences(text):
        if len(text[start:end].strip()) >= MIN_CHARS:
            yield start, end


def score(page, layout_boxes, text: str, spans) -> list[tuple[bool, int, bool]]:
    """(held, extra characters, has boxes) of each span, `layout_boxes(start, end)` giving its boxes."""
    out = []
    for start, end in spans:
        boxes = layout_boxes(start, end)
        ok, extra = held(text[start:end], text_in(page, boxes)) if boxes else (False, 0)
        out.append((ok, max(extra, 0), bool(boxes)))
    return out


def agreement() -> tuple[str, dict]:
    import pypdfium2 as pdfium

    files = sorted(PDFS.rglob("*.pdf")) + [ALCE]
    options = LoadOptions(passwords=passwords(), ocr=False)
    results, per_file, aligned, chars, seconds, pages = [], [], 0, 0, [], 0
    for path in files:
        docs = []
        try:
            docs = [d for d in load_file(path, path.parent, options) if not isinstance(d, DocumentError)]
        except DocumentError:
            pass
        if not docs:
            continue
        pdf = None
        for password in (None, *options.passwords):
            try:
                pdf = pdfium.PdfDocument(str(path), password=password)
                break
            except pdfium.PdfiumError:
                continue
        if pdf is None:
            continue
        mine = []
        for doc in docs:
            page = pdf[doc.page - 1]
            t = time.perf_counter()
            layout = read_layout(page)
            mapped = align(doc.text, layout.chars)
            seconds.append(time.perf_counter() - t)
            pages += 1
            solid = [i for i, c in enumerate(doc.text) if not c.isspace()]
            aligned += int((mapped[solid] >= 0).sum())
            chars += len(solid)
            mine += score(page, lambda s, e: text_boxes(layout, mapped, s, e), doc.text, sentences(doc.text))
            page.close()
        pdf.close()
        results += mine
        if mine:
            per_file.append((path.relative_to(common.DATA), len(docs), mine))
    n = len(results)
    held_share = sum(r[0] for r in results) / n
    extras = [r[1] for r in results if r[0]]
    figures = {"sentences": n, "held": held_share, "boxed": sum(r[2] for r in results) / n,
               "extra_mean": statistics.mean(extras), "extra_p95": sorted(extras)[int(0.95 * len(extras))],
               "aligned": aligned / chars, "pages": pages, "files": len(per_file),
               "first_look_p50": statistics.median(seconds) * 1000,
               "first_look_p95": sorted(seconds)[int(0.95 * len(seconds))] * 1000}
    rows = ["| file | pages | sentences | boxes hold the sentence | extra characters (mean, when held) |",
            "|---|---:|---:|---:|---:|"]
    for name, count, mine in per_file:
        ok = [r for r in mine if r[0]]
        rows.append(f"| {name} | {count} | {len(mine)} | {len(ok) / len(mine):.1%} | "
                    f"{statistics.mean(r[1] for r in ok) if ok else 0:.1f} |")
    return "\n".join(rows), figures


def ocr_cost() -> dict:
    import pypdfium2 as pdfium

    from rag.load import ocr

    data = ALCE.read_bytes()
    pdf = pdfium.PdfDocument(data)
    blobs, texts, words, results, cpu = [], [], 0, [], 0.0
    for number, image, dpi in ocr.render_pdf_pages(data, None, list(OCR_PAGES), 300):
        before = common.cpu_seconds(children=True)
        read = ocr.read_image(image, language="eng", dpi=dpi)
        cpu += common.cpu_seconds(children=True) - before
        placed = read.placed(image.size, dpi)
        blobs.append(len(pack_words(placed)))
        texts.append(len(read.text.encode()))
        words += len(placed.boxes)
        page = pdf[number - 1]
        results += score(page, lambda s, e: span_boxes(read.text, placed, s, e), read.text, sentences(read.text))
        page.close()
    pdf.close()
    extras = [r[1] for r in results if r[0]]
    return {"bytes": statistics.mean(blobs), "text_bytes": statistics.mean(texts), "per_word": sum(blobs) / words,
            "words": words / len(blobs), "held": sum(r[0] for r in results) / len(results), "sentences": len(results),
            "extra_mean": statistics.mean(extras) if extras else 0.0, "ocr_cpu": cpu / len(blobs)}


def render_times() -> dict:
    from pypdf import PdfReader

    from rag.load.pdf import clean_pdf_text

    data = ALCE.read_bytes()
    reader = PdfReader(str(ALCE))
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    wall, cpu, crop_wall, sizes = [], [], [], []
    for number in range(1, len(reader.pages) + 1):
        text = clean_pdf_text(reader.pages[number - 1].extract_text())
        page = pdf[number - 1]
        layout = read_layout(page)
        mapped = align(text, layout.chars)
        page.close()
        spans = list(sentences(text))
        boxes = text_boxes(layout, mapped, *spans[len(spans) // 2]) if spans else []
        t, c = time.perf_counter(), common.cpu_seconds()
        image = render(data, number, boxes)
        wall.append(time.perf_counter() - t)
        cpu.append(common.cpu_seconds() - c)
        sizes.append(len(image))
        t = time.perf_counter()
        render(data, number, boxes, crop=True)
        crop_wall.append(time.perf_counter() - t)
    pdf.close()

    def ms(values, q=0.5):
        return sorted(values)[min(int(q * len(values)), len(values) - 1)] * 1000

    return {"pages": len(wall), "p50": ms(wall), "p95": ms(wall, 0.95), "max": max(wall) * 1000, "cpu_p50": ms(cpu),
            "crop_p50": ms(crop_wall), "kib": statistics.mean(sizes) / 1024}


def through_the_server() -> dict:
    """Wall times (s) of the view and its image over HTTP from a fresh server over ALCE and a scan of its OCR_PAGES."""
    import shutil
    import tempfile

    import httpx
    import pypdfium2 as pdfium

    from rag import Settings
    from rag.pages.view import view_query
    from rag.server.app import Running, build

    times = {"view": [], "cold": [], "warm": [], "crop": [], "ocr_view": [], "ocr_cold": []}
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus"
        corpus.mkdir()
        shutil.copy(ALCE, corpus / ALCE.name)
        pdf = pdfium.PdfDocument(str(ALCE))
        scans = [pdf[n - 1].render(scale=200 / 72, grayscale=True).to_pil() for n in OCR_PAGES]
        pdf.close()
        scans[0].save(corpus / "ALCE-scan.pdf", save_all=True, append_images=scans[1:], resolution=200)
        settings = Settings.from_env(environ={}, index_dir=Path(folder) / "index", corpus_dir=corpus, quiet=True,
                                     page_cache_dir=Path(folder) / "page-cache")
        app = build(settings)
        running = Running(app, "127.0.0.1", 0).start()
        try:
            chat = app.state.rag.chat
            chat.started.wait()
            store = chat.library.index("default", build=False).store
            with httpx.Client(base_url=running.url, timeout=60) as http:
                for source in (ALCE.name, "ALCE-scan.pdf"):
                    seen = set()
                    for hit in store.chunks(source):
                        if hit.page in seen or not hit.sentences:
                            continue
                        seen.add(hit.page)
                        start, end = hit.sentences[len(hit.sentences) // 2]
                        link = view_query([{"n": 1, "kb": "default", "source": source, "doc_id": hit.doc_id,
                                            "page": hit.page, "start": start, "end": end}], 0)
                        ocr = "ocr_" if hit.ocr else ""
                        for key, path in ((ocr + "view", "cite?"), (ocr + "cold", "cite/page?"),
                                          ("warm", "cite/page?"), ("crop", "cite/page?crop=1&")):
                            if key == "crop" and not hit.ocr:
                                continue
                            t = time.perf_counter()
                            http.get(path + link).raise_for_status()
                            times[key].append(time.perf_counter() - t)
        finally:
            running.stop()
    return times


def main() -> int:
    common.require(PDFS, ALCE)
    machine = common.machine_info(("pypdfium2", "pypdf", "rapidfuzz", "PIL"))  # and the load now, at the start
    load_start = os.getloadavg()[0]
    table, a = agreement()
    o = ocr_cost()
    r = render_times()
    load_route = os.getloadavg()[0]
    h = through_the_server()
    load_end = os.getloadavg()[0]

    def ms(key, q=0.5):
        values = sorted(h[key])
        return f"{values[min(int(q * len(values)), len(values) - 1)] * 1000:.0f}"

    text = f"""# Citations on their page

{machine}- Load average {load_start:.1f} at start, {load_end:.1f} at the end.

## Do the boxes hold the sentence?

Every sentence of at least {MIN_CHARS} characters (`rag.chunk.split_sentences`) of every page with a text layer of
the PDFs in `bench-data/pdfs` and `bench-data/alce` that load ({a['files']} files, {a['pages']} pages,
{a['sentences']:,} sentences): its boxes computed as at question time (the stored text, from pypdf, aligned with
pdfium's characters), then the text pdfium reads inside them. Baseline: the stored text itself, which holds every
sentence by construction; the question is whether the page, read back, does too.

| measure | value |
|---|---:|
| sentences whose boxes hold the whole sentence (whitespace, line-end hyphens, glyphs pdfium cannot name aside) | **{a['held']:.1%}** |
| sentences given any box | {a['boxed']:.1%} |
| extra characters read inside the boxes, mean (when held) | **{a['extra_mean']:.2f}** |
| extra characters, 95th percentile | {a['extra_p95']} |
| stored non-space characters aligned to a pdfium character | {a['aligned']:.1%} |
| first look at a page (pdfium's characters and boxes + alignment), p50 / p95 | {a['first_look_p50']:.1f} / {a['first_look_p95']:.1f} ms |

The first look is what the first citation into a page adds to an answer (`timings["locate"]`); the last 64
pages are kept, so a second citation into the same page costs well under a millisecond.

A glyph pdfium cannot name (it reads a control character: a font without a Unicode map, as TeX's math fonts give
ϵ, ′, ‖) counts as the stored character it stands for, and a hyphen at a line end of what is read back may be
the sentence's own dash or none (`rag.pages.locate.held`). The misses left are pages whose text pypdf and pdfium
read in a different order: drawings and UML diagrams (labels), stacked math (a limit under "max"), rotated
text.

{table}

## OCR pages: what the word boxes cost, and whether they hold the sentence

ALCE pages {', '.join(map(str, OCR_PAGES))} rendered at 300 dpi and read by Tesseract through the loader's own
functions ({o['ocr_cpu']:.1f} CPU s a page). The boxes are packed (`rag/pages/words.py`: quarter points, uint16,
differences, zlib) into `documents.words`.

| measure | value |
|---|---:|
| words per page | {o['words']:.0f} |
| packed word boxes per page | **{o['bytes'] / 1024:.2f} KiB** ({o['per_word']:.1f} bytes a word) |
| the page's stored text, for comparison | {o['text_bytes'] / 1024:.2f} KiB |
| sentences ({o['sentences']}) whose OCR boxes, read back on the original page's text layer, hold the text layer's sentence | {o['held']:.1%} |
| extra characters, mean (when held) | {o['extra_mean']:.2f} |

An OCR sentence is what Tesseract read, so "held" here also needs OCR to have read it without a mistake.

## Drawing a page

Each of the {r['pages']} ALCE pages drawn by `rag.pages.render.render` at zoom 1.5 (108 dpi) with one cited
sentence highlighted, JPEG quality 90, no cache:

| measure | value |
|---|---:|
| a page, p50 / p95 / max (wall) | **{r['p50']:.0f}** / {r['p95']:.0f} / {r['max']:.0f} ms |
| a page, p50 CPU | {r['cpu_p50']:.0f} ms |
| the highlighted region alone (crop, 216 dpi), p50 | {r['crop_p50']:.0f} ms |
| image size, mean | {r['kib']:.0f} KiB |

A page seen before comes from the disk cache (a file read).

## Through the server

What the chat's "page" link costs (rag/server/cite.py), over HTTP on loopback from a fresh server (`rag.server`,
no logins) over ALCE ({len(h['view'])} pages) and a scan of its pages {', '.join(map(str, OCR_PAGES))} (200 dpi,
read by OCR at indexing), one cited sentence a page; the view first, then its image, then the image again.
Load average {load_route:.1f} when it began.

| request | p50 | p95 |
|---|---:|---:|
| GET /cite, the view (the file's hash checked, the page's characters read and aligned: its first look) | **{ms('view')}** ms | {ms('view', 0.95)} ms |
| GET /cite/page, the image drawn (boxes placed again from the kept layout) | **{ms('cold')}** ms | {ms('cold', 0.95)} ms |
| GET /cite/page again, from the disk cache | {ms('warm')} ms | {ms('warm', 0.95)} ms |
| GET /cite, an OCR page (its word boxes stored) | {ms('ocr_view')} ms | {ms('ocr_view', 0.95)} ms |
| GET /cite/page, the scanned page drawn | {ms('ocr_cold')} ms | {ms('ocr_cold', 0.95)} ms |
| GET /cite/page?crop=1, the cited region of the scan | {ms('crop')} ms | {ms('crop', 0.95)} ms |
"""
    common.write_result("pages.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
