"""Formats: load speed per format, and how well the tables of real PDFs come out as rows (issue 24).

  speed   every loader on files made here (and the real PDFs of bench-data), CPU ms per file, the best of
          ROUNDS interleaved runs; PDFs beside the same loader with table finding turned off (what the
          loader stored before tables were read: pypdf's page text)
  tables  the tables of ALCE.pdf's pages 7 and 9 against a truth typed by hand from the rendered pages:
          cells recovered in their row, and cells stored as "column name: value" under the names a reader
          gives them; beside pypdf's page text (before): the row's values on the line of its row label
  boxes   on ALCE's pages with tables, whether citations' boxes (rag/pages) still hold the prose sentences,
          and hold each row's values

    .venv/bin/python bench/suites/formats.py            # both, writes bench/results/formats.md
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402
from bench.lib.common import DATA, table  # noqa: E402

ALCE = DATA / "alce" / "paper" / "ALCE.pdf"
PDFS = DATA / "pdfs"
ROUNDS = 3
TABLE_PAGES = (2, 7, 8, 9, 14, 15, 16, 17, 18, 19)  # the pages of ALCE.pdf with tables

# Hand-made truth: ALCE's tables as a reader names their columns, the body rows (section labels left out).
SYSTEMS = ["VANILLA (5-psg)", "w/ RERANK", "SUMM (10-psg)", "w/ INTERACT", "SNIPPET (10-psg)", "INLINESEARCH",
           "CLOSEDBOOK", "LLaMA-13B", "Vicuna-13B"]
TRUTH = {
    7: [
        ("Table 4", ["Fluency (MAUVE)", "Correct. (EM Rec.)", "Citation Rec.", "Citation Prec."], list(zip(SYSTEMS, [
            "66.6 40.4 73.6 72.5", "77.0 40.2 84.8 81.6", "70.0 43.3 68.9 61.8", "69.0 39.1 73.4 66.5",
            "69.8 41.4 65.3 57.4", "58.7 32.4 58.3 58.2", "52.7 38.3 26.7 26.7", "68.4 26.9 10.6 15.4",
            "82.6 31.9 51.1 50.1"]))),
        ("Table 6", ["Fluency (MAUVE)", "Correct. (Claim)", "Citation Rec.", "Citation Prec."], list(zip(
            ["VANILLA (5-psg)", "w/ RERANK", "SUMM (10-psg)", "SNIPPET (10-psg)", "w/ INTERACT", "INLINESEARCH",
             "CLOSEDBOOK", "LLaMA-13B", "Vicuna-13B"], [
                "57.2 12.0 51.1 50.0", "56.1 11.4 69.3 67.8", "40.3 12.5 51.5 48.2", "62.9 14.3 50.4 45.0",
                "68.0 13.3 47.8 45.0", "49.7 13.4 45.6 43.7", "32.6 18.6 15.5 15.5", "50.0 3.9 3.1 5.3",
                "58.2 10.0 15.6 19.6"]))),
        ("Table 5", ["Correctness Rec.-5", "Correctness Prec.", "Citation Rec.", "Citation Prec."], list(zip(
            ["VANILLA (5-psg)", "w/ RERANK", "SUMM (10-psg)", "SNIPPET (10-psg)", "w/ INTERACT", "INLINESEARCH",
             "CLOSEDBOOK", "LLaMA-13B", "Vicuna-13B"], [
                "20.8 20.8 20.5 20.9", "22.8 21.4 21.2 21.4", "23.6 21.2 23.6 25.7", "24.5 21.5 22.9 24.9",
                "21.9 23.0 21.9 23.4", "17.2 20.4 14.9 14.9", "32.9 19.8 10.0 10.0", "9.7 9.1 6.7 7.1",
                "14.0 15.9 12.5 13.4"]))),
    ],
    9: [
        ("Table 8", ["Fluency (MAUVE)", "Correct. (EM)", "Citation Rec.", "Citation Prec."], [
            ("DPR (5-psg)", "61.8 36.1 65.0 65.6"), ("GTR (1-psg)", "69.5 38.4 56.0 64.0"),
            ("GTR (3-psg)", "66.6 39.6 72.8 73.9"), ("GTR (5-psg)", "66.6 40.4 73.6 72.5")]),
        ("Table 9", ["Human Rec.", "Human Prec.", "ALCE Rec.", "ALCE Prec."], [
            ("ChatGPT VANILLA", "74.7 76.6 75.3 74.4"), ("w/ RERANK", "79.3 81.9 83.9 80.8"),
            ("Vicuna-13B VANILLA", "51.6 51.5 50.3 50.1")]),
        ("Table 10", ["Human scores Rec.", "Human scores Prec.", "ALCE scores Rec.", "ALCE scores Prec."], [
            ("ChatGPT VANILLA", "50.8 52.4 52.8 50.4"), ("w/ RERANK", "59.7 60.6 63.0 60.6"),
            ("Vicuna-13B VANILLA", "13.4 19.2 13.6 18.1")]),
    ],
}


def squeeze(s: str) -> str:
    return "".join(s.split()).lower()


# --- tables --------------------------------------------------------------------------------------


def table_quality() -> tuple[str, dict]:
    from pypdf import PdfReader

    from rag.load import load_file
    from rag.load.pdf import clean_pdf_text

    docs = {d.page: d for d in load_file(ALCE, ALCE.parent)}
    reader = PdfReader(str(ALCE))
    rows, totals = [], {"cells": 0, "in_row": 0, "named": 0, "before_in_row": 0, "before_named": 0}
    for page, tables in TRUTH.items():
        doc = docs[page]
        lines = [doc.text[a:b] for a, b in doc.rows]
        before = clean_pdf_text(reader.pages[page - 1].extract_text()).splitlines()
        used: set[int] = set()
        for name, columns, body in tables:
            n = in_row = named = b_in_row = b_named = 0
            for key, values in body:
                values = values.split()
                n += len(values)
                line = _row_line(lines, key, values, used)
                cells = line.split(" | ") if line is not None else []
                for column, value in zip(columns, values):
                    in_row += any(c == value or c.endswith(": " + value) for c in cells[1:])
                    named += f"{column}: {value}" in cells
                old = max((x for x in before if squeeze(x).startswith(squeeze(key))),
                          key=lambda x: sum(v in x.split() for v in values), default="")
                words = old.split()
                b_in_row += sum(v in words for v in values)
                b_named += sum(f"{column}: {value}" in old for column, value in zip(columns, values))
            rows.append([f"p. {page}", name, len(body), n, f"{in_row} ({in_row / n:.0%})", f"{named} ({named / n:.0%})",
                         f"{b_in_row} ({b_in_row / n:.0%})", f"{b_named} ({b_named / n:.0%})"])
            for key, value in zip(totals, (n, in_row, named, b_in_row, b_named)):
                totals[key] += value
    c = totals["cells"]
    rows.append(["all", "", sum(len(t[2]) for ts in TRUTH.values() for t in ts), c,
                 f"**{totals['in_row']} ({totals['in_row'] / c:.0%})**", f"**{totals['named']} ({totals['named'] / c:.0%})**",
                 f"{totals['before_in_row']} ({totals['before_in_row'] / c:.0%})",
                 f"{totals['before_named']} ({totals['before_named'] / c:.0%})"])
    found = {p: len(d.rows) for p, d in docs.items() if d.rows}
    text = table(["page", "table", "rows", "cells", "now: in their row", "now: as `name: value`",
                  "before: on the row's line", "before: as `name: value`"], rows)
    return text, {"totals": totals, "rows_per_page": found}


def _row_line(lines: list[str], key: str, values: list[str], used: set) -> str | None:
    """The stored row whose first cell is `key` and that holds most of the values, not taken yet (the tables of a
    page share row labels)."""
    found = [i for i, line in enumerate(lines)
             if i not in used and squeeze(line.split(" | ")[0].split(": ")[-1]) == squeeze(key)]
    if not found:
        return None
    best = max(found, key=lambda i: sum(v in lines[i].replace(":", " ").split() for v in values))
    used.add(best)
    return lines[best]


# --- boxes ---------------------------------------------------------------------------------------


def boxes_on_table_pages() -> str:
    """What rows do to citations' boxes (rag/pages): on ALCE's pages with tables, the prose sentences' boxes
    still hold them, and the row's boxes hold its values (its inserted names have no box of their own)."""
    import pypdfium2 as pdfium

    from rag.chunk import split_sentences
    from rag.load import load_file, pdf_tables
    from rag.pages.align import align
    from rag.pages.locate import held, read_layout, text_boxes, text_in

    pdf = pdfium.PdfDocument(str(ALCE))
    real_place, out = pdf_tables.PageTables.place, []
    try:
        for label, place in (("tables as rows (now)", real_place),
                             ("pypdf's text (before)", lambda self, number, text: (text, []))):
            pdf_tables.PageTables.place = place
            docs = [d for d in load_file(ALCE, ALCE.parent) if d.page in TABLE_PAGES]
            prose = prose_held = rows = values = values_held = 0
            for d in docs:
                page = pdf[d.page - 1]
                layout = read_layout(page)
                mapped = align(d.text, layout.chars)
                for a, b in split_sentences(d.text, d.rows):
                    boxes = text_boxes(layout, mapped, a, b)
                    back = text_in(page, boxes) if boxes else ""
                    if (a, b) in d.rows:
                        cells = [c.split(": ")[-1] for c in d.text[a:b].split(" | ")]
                        rows += 1
                        values += len(cells)
                        values_held += sum(held(c, back)[0] for c in cells)
                    else:
                        prose += 1
                        prose_held += held(d.text[a:b], back)[0]
            out.append([label, f"{prose_held} of {prose} ({prose_held / prose:.1%})", rows,
                        f"{values_held} of {values} ({values_held / values:.1%})" if values else ""])
    finally:
        pdf_tables.PageTables.place = real_place
        pdf.close()
    return table(["ALCE's 10 pages with tables", "sentences outside rows whose boxes hold them", "rows",
                  "row values inside their row's boxes"], out)


# --- speed ---------------------------------------------------------------------------------------


def make_files(folder: Path) -> dict[str, Path]:
    """One file per new format, of an office's everyday size, and a Word file with a table."""
    import docx
    import pptx
    import xlsxwriter
    from pptx.util import Inches

    files = {}
    files["xlsx"] = folder / "staff.xlsx"
    book = xlsxwriter.Workbook(str(files["xlsx"]))
    money, day = book.add_format({"num_format": "#,##0.00"}), book.add_format({"num_format": "yyyy-mm-dd"})
    for s in range(2):
        sheet = book.add_worksheet(f"Sheet {s + 1}")
        sheet.write_row(0, 0, ["Name", "Office", "Salary (EUR)", "Started", "Phone", "Team"])
        for r in range(1, 2001):
            sheet.write(r, 0, f"Person {r}")
            sheet.write(r, 1, ["Antwerp", "Ghent", "Lyon"][r % 3])
            sheet.write_number(r, 2, 40000 + r * 13.5, money)
            sheet.write_datetime(r, 3, dt.datetime(2010, 1, 1) + dt.timedelta(days=r), day)
            sheet.write(r, 4, f"+32 3 555 {r:04d}")
            sheet.write(r, 5, f"Team {r % 17}")
    book.close()
    files["csv"] = folder / "stock.csv"
    files["csv"].write_text("Item;In stock;Supplier;Price\n" + "".join(
        f"Item {i};{i * 3};Supplier {i % 40};{i * 1.25:.2f}\n" for i in range(10000)), encoding="utf-8")
    files["pptx"] = folder / "deck.pptx"
    deck = pptx.Presentation()
    for n in range(30):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {n}: quarterly review"
        slide.placeholders[1].text = "Revenue grew in every region\nCosts stayed flat\nHiring continues"
        t = slide.shapes.add_table(4, 3, Inches(1), Inches(4), Inches(6), Inches(1.2)).table
        for i in range(4):
            for j in range(3):
                t.cell(i, j).text = ["Region", "Q1", "Q2"][j] if i == 0 else f"{i * j + n}"
        slide.notes_slide.notes_text_frame.text = "Mention the new office."
    deck.save(str(files["pptx"]))
    files["epub"] = folder / "book.epub"
    with zipfile.ZipFile(files["epub"], "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                   '<rootfiles><rootfile full-path="content.opf"/></rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(20))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(20))
        z.writestr("content.opf", '<package xmlns="http://www.idpf.org/2007/opf"><metadata xmlns:dc="http://purl.org/'
                   f'dc/elements/1.1/"><dc:title>A book</dc:title></metadata><manifest>{items}</manifest>'
                   f'<spine>{spine}</spine></package>')
        for i in range(20):
            z.writestr(f"c{i}.xhtml", f"<html><body><h1>Chapter {i}</h1>" + "<p>The keeper climbed the stairs "
                       "again, counting each of the hundred steps. The lamp needed oil.</p>" * 60 + "</body></html>")
    files["eml"] = folder / "mail.eml"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "Agenda"
    message.set_content("<html><body>" + "<p>The board meets on Thursday.</p>" * 50 + "</body></html>", subtype="html")
    message.add_attachment("1. Budget\n2. Lenses\n" * 50, filename="agenda.txt")
    files["eml"].write_bytes(bytes(message))
    files["mbox"] = folder / "box.mbox"
    box = b""
    for i in range(200):
        m = EmailMessage()
        m["From"], m["Subject"] = "a@example.org", f"Note {i}"
        m.set_content(f"Message {i}. The harbour office opens at eight.\n" * 5)
        box += b"From a@example.org Tue Mar  3 09:00:00 2026\n" + bytes(m) + b"\n"
    files["mbox"].write_bytes(box)
    files["docx"] = folder / "report.docx"
    d = docx.Document()
    for i in range(50):
        d.add_paragraph(f"Paragraph {i} of the report says what the table below holds.")
    t = d.add_table(rows=200, cols=4)
    for i in range(200):
        for j in range(4):
            t.cell(i, j).text = ["Region", "Revenue", "Staff", "Year"][j] if i == 0 else str(i * (j + 1))
    d.save(str(files["docx"]))
    return files


def cpu_ms(fn) -> float:
    t = time.process_time()
    fn()
    return (time.process_time() - t) * 1000


def speed(folder: Path) -> tuple[str, str]:
    from rag.load import LoadOptions, find_files, load_file
    from rag.load import pdf_tables

    files = make_files(folder)
    options = LoadOptions(ocr=False)
    rows = []
    for kind, path in files.items():
        docs = [d for d in load_file(path, folder, options) if hasattr(d, "text")]
        best = min(cpu_ms(lambda: list(load_file(path, folder, options))) for _ in range(ROUNDS))
        chars = sum(len(d.text) for d in docs)
        rows.append([f"`.{kind}` ({path.stat().st_size / 1e6:.2f} MB)", len(docs), f"{sum(len(d.rows) for d in docs):,}",
                     f"{chars:,}", f"{best:,.0f}", f"{chars / best / 1000:.2f}", f"{os.getloadavg()[0]:.1f}"])

    pdfs = [f for f, _ in find_files([PDFS]).files] + [ALCE]
    real_place = pdf_tables.PageTables.place

    def load_all():
        pages = 0
        for f in pdfs:
            try:
                pages += sum(1 for d in load_file(f, f.parent, options) if hasattr(d, "text"))
            except Exception:  # encrypted without the password, broken on purpose: reported by the loader
                pass
        return pages

    with_tables, without = [], []
    for _ in range(ROUNDS):  # interleaved: the machine's load falls on both alike
        pdf_tables.PageTables.place = real_place
        with_tables.append(cpu_ms(load_all))
        pdf_tables.PageTables.place = lambda self, number, text: (text, [])
        without.append(cpu_ms(load_all))
    pdf_tables.PageTables.place = real_place
    pages = load_all()
    alce_with, alce_without = [], []
    for _ in range(ROUNDS):
        pdf_tables.PageTables.place = real_place
        alce_with.append(cpu_ms(lambda: list(load_file(ALCE, ALCE.parent, options))))
        pdf_tables.PageTables.place = lambda self, number, text: (text, [])
        alce_without.append(cpu_ms(lambda: list(load_file(ALCE, ALCE.parent, options))))
    pdf_tables.PageTables.place = real_place
    formats = table(["file (made here)", "documents", "table rows", "characters", "CPU ms (best of 3)",
                     "M chars per CPU s", "load"], rows)
    pdf_rows = [
        ["ALCE.pdf (23 pages, 18 tables)", f"{min(alce_with):,.0f}", f"{min(alce_without):,.0f}",
         f"{min(alce_with) / 23:.0f}", f"{min(alce_without) / 23:.0f}", f"{min(alce_with) / min(alce_without):.2f}x"],
        [f"pdfs/ + ALCE.pdf ({len(pdfs)} files, {pages} text pages)", f"{min(with_tables):,.0f}", f"{min(without):,.0f}",
         f"{min(with_tables) / pages:.0f}", f"{min(without) / pages:.0f}", f"{min(with_tables) / min(without):.2f}x"],
    ]
    pdf = table(["PDFs (OCR off)", "CPU ms with tables", "CPU ms without (before)", "ms a page with",
                 "ms a page without", "cost of tables"], pdf_rows)
    return formats, pdf


def main() -> int:
    common.require(ALCE, PDFS)
    start_load = os.getloadavg()[0]
    machine = common.machine_info(libraries=("pypdf", "pdfplumber", "openpyxl", "pptx", "docx"))
    with tempfile.TemporaryDirectory() as tmp:
        formats, pdf = speed(Path(tmp))
    quality, facts = table_quality()
    boxes = boxes_on_table_pages()
    end_load = os.getloadavg()[0]
    t = facts["totals"]
    text = f"""# Formats: load speed and tables

{machine}- CPU: {common.cpu_model()} (AVX2, no AVX512); load average {start_load:.1f} at start, {end_load:.1f} at the end: CPU ms are the best of {ROUNDS} runs, the PDF columns interleaved run by run.

## Load speed per format

Loading alone (read, parse, lay out; no chunking or embedding), on files made by the bench:

{formats}

PDFs, the same loader with table finding on and off (off: PageTables.place returns pypdf's page text, what the
loader stored before tables were read), OCR off:

{pdf}

## Tables of real PDFs

ALCE.pdf's tables on pages 7 and 9 (Tables 4, 5, 6, 8, 9, 10: booktabs tables, rules above, below and under the
header, group names over two columns, small caps), against a truth typed by hand from the rendered pages: each body
row's label and values, and the column names a reader gives them ("Citation Rec."). A cell is *in its row* when the
stored row that starts with the row's label holds the value as a cell; *as `name: value`* when the row holds
exactly "Citation Rec.: 73.6". Before: pypdf's page text, with the values counted on the line that starts with the
row's label (it has no names).

{quality}

- Now {t['in_row']} of {t['cells']} cells ({t['in_row'] / t['cells']:.0%}) sit in their row and {t['named']} ({t['named'] / t['cells']:.0%}) carry their full column name; before, {t['before_in_row']} ({t['before_in_row'] / t['cells']:.0%}) were on their row's line and none was named.
- Rows found on each page of ALCE.pdf (all pages): {", ".join(f"p. {p}: {n}" for p, n in sorted(facts['rows_per_page'].items()))}.

## Rows and the boxes of citations

A row's text differs from the page's characters: its column names are repeated from the header cells, and
" | " and ": " are ours; its values are the cells' characters. rag/pages aligns the stored text with pdfium's
characters; on ALCE's pages with tables, a citation's boxes (text_in read back, `held` as bench/suites/pages.py
counts it):

{boxes}
"""
    common.write_result("formats.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
