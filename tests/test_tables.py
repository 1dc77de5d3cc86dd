"""Tables, spreadsheets, slides, e-books and mail: files made here, read by the real loaders, indexed with the
real model, answered with citations of the row or sentence that holds the answer (issue 24)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from rag import DocumentError, Index, Settings, ask
from rag.chunk import chunk_document, split_sentences
from rag.cli import main as cli_main
from rag.load import SUFFIXES, find_files, format_table, load_file, skipped_summary
from rag.load.pdf import clean_pdf_text
from rag.load.table import Layout, header_rows, table_lines
from rag.load.xlsx import shown
from rag.model import Document

REPO = Path(__file__).resolve().parents[1]
REGIONS = [["Region", "Revenue 2025 (EUR m)", "Employees"], ["Benelux", "55.9", "418"], ["Nordics", "31.2", "97"],
           ["Iberia", "12.4", "65"]]
STATIONS = [["Station", "Keeper", "Built"], ["Skerry Point", "Ada Morrow", "1874"], ["Gull Rock", "Ben Tarr", "1902"],
            ["Vane Head", "Cora Lind", "1911"]]


# --- files the tests make --------------------------------------------------------------------------


def make_pdf(path: Path, rows, ruled: bool, before: str, after: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, before)
    pdf.ln(4)
    with pdf.table(borders_layout="ALL" if ruled else "NONE", first_row_as_headings=True, text_align="LEFT",
                   col_widths=(40, 60, 40), width=140) as table:
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.ln(4)
    pdf.multi_cell(0, 6, after)
    pdf.output(str(path))


def make_xlsx(path: Path) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    staff = book.add_worksheet("Staff")
    date, money = book.add_format({"num_format": "yyyy-mm-dd"}), book.add_format({"num_format": "#,##0"})
    staff.write_row(0, 0, ["Name", "Office", "Salary (EUR)", "Started"])
    for i, (name, office, salary, started) in enumerate([("Ada Morrow", "Antwerp", 61250, dt.datetime(2019, 4, 1)),
                                                         ("Ben Tarr", "Ghent", 54800, dt.datetime(2021, 9, 15))], 1):
        staff.write(i, 0, name)
        staff.write(i, 1, office)
        staff.write_number(i, 2, salary, money)
        staff.write_datetime(i, 3, started, date)
    budget = book.add_worksheet("Budget")
    budget.write_row(0, 0, ["Item", "Amount (EUR)"])
    budget.write_row(1, 0, ["Lantern glass", 7200])
    budget.write_row(2, 0, ["Paint", 5300])
    budget.write(3, 0, "Total")
    budget.write_formula(3, 1, "=SUM(B2:B3)", money, 12500)  # the value Excel would have saved
    secret = book.add_worksheet("Salaries 2024")
    secret.write(0, 0, "hidden sheet text")
    secret.hide()
    book.close()


def make_pptx(path: Path) -> None:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    deck.core_properties.title = "Search roadmap"
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Roadmap 2026"
    table = slide.shapes.add_table(3, 3, Inches(1), Inches(3), Inches(6), Inches(1.5)).table
    for i, values in enumerate([["Phase", "Quarter", "Owner"], ["Indexing", "Q1", "Dana Holt"],
                                ["Search UI", "Q3", "Emil Sand"]]):
        for j, value in enumerate(values):
            table.cell(i, j).text = value
    box = slide.shapes.add_textbox(Inches(1), Inches(1.5), Inches(6), Inches(1))  # above the table, added after it
    box.text_frame.text = "The offline search ships in three phases."
    slide.notes_slide.notes_text_frame.text = "The Q3 date depends on hiring two engineers."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Risks"
    second.placeholders[1].text = "Hiring is slow\nThe budget is fixed"
    deck.save(str(path))


def make_epub(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml",
                   '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                   'container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-'
                   'package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf",
                   '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata '
                   'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Keeper of Hollin Light</dc:title>'
                   '</metadata><manifest><item id="c2" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/>'
                   '<item id="c1" href="text/chapter1.xhtml" media-type="application/xhtml+xml"/><item id="css" '
                   'href="style.css" media-type="text/css"/></manifest><spine><itemref idref="c1"/><itemref '
                   'idref="c2"/></spine></package>')
        z.writestr("OEBPS/text/chapter1.xhtml",
                   '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>'
                   'One</title><style>p {color: red}</style></head><body><h1>Chapter One</h1><p>The lamp at Hollin '
                   'Light burned whale oil for sixty-two years before the first paraffin burner arrived.</p></body>'
                   '</html>')
        z.writestr("OEBPS/text/chapter 2.xhtml",
                   '<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>Chapter Two</h1><p>Mira Vale kept the '
                   'light alone through the winter storms of 1931.</p><script>scriptsecret()</script></body></html>')


def make_eml(path: Path) -> None:
    message = EmailMessage()
    message["From"] = "Ada Morrow <ada@example.org>"
    message["To"] = "board@example.org"
    message["Date"] = "Tue, 03 Mar 2026 09:00:00 +0100"
    message["Subject"] = "Board meeting agenda"
    message.set_content('<html><body><p>Dear all,</p><p>The board meets on Thursday at 10:00 in the harbour '
                        'office.</p><nav>navsecret</nav></body></html>', subtype="html")
    message.add_attachment("Agenda\n\n1. Budget 2026\n2. Replacement lenses for the Tarn Beacon\n3. Any other "
                           "business\n", filename="agenda.txt")
    message.add_attachment(b"PK\x03\x04not really", maintype="application", subtype="zip", filename="photos.zip")
    path.write_bytes(bytes(message))


def make_csv(path: Path) -> None:
    path.write_text('Item;In stock;Supplier\nFresnel lens;14;Chance Brothers\nMantle;230;"Auer; Welsbach"\n'
                    'Lamp oil (l);1,200;Harbour Stores\n', encoding="utf-8")


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    folder = tmp_path_factory.mktemp("office") / "corpus"
    folder.mkdir()
    make_pdf(folder / "annual-report.pdf", REGIONS, True,
             "Annual report 2025. The regions grew again this year. The table gives revenue and staff by region.",
             "Staff numbers are head counts on 31 December.")
    make_pdf(folder / "stations.pdf", STATIONS, False,
             "Lighthouse register. Each station of the northern coast with its keeper and the year it was built.",
             "The register is kept by the harbour board.")
    make_xlsx(folder / "staff.xlsx")
    make_pptx(folder / "roadmap.pptx")
    make_epub(folder / "keeper.epub")
    make_eml(folder / "meeting.eml")
    make_csv(folder / "stock.csv")
    return folder


@pytest.fixture(scope="module")
def office_index(office, embedder):
    settings = Settings.from_env(environ={}, index_dir=office.parent / "index", corpus_dir=office, quiet=True)
    index = Index.open(settings=settings)
    return index, index.add()


def docs(path: Path) -> list[Document]:
    return [d for d in load_file(path, path.parent) if isinstance(d, Document)]


def rows_of(doc: Document) -> list[str]:
    return [doc.text[a:b] for a, b in doc.rows]


# --- what the loaders store ------------------------------------------------------------------------


@pytest.mark.parametrize("name, rows", [("annual-report.pdf", REGIONS), ("stations.pdf", STATIONS)])
def test_pdf_tables_become_rows_with_their_names_in_place(office, name, rows):
    from pypdf import PdfReader

    [doc] = docs(office / name)
    names = rows[0]
    expected = [" | ".join(f"{n}: {v}" for n, v in zip(names, values)) for values in rows[1:]]
    assert rows_of(doc) == expected and doc.page == 1
    layer = clean_pdf_text(PdfReader(str(office / name)).pages[0].extract_text())
    first, last = doc.rows[0][0], doc.rows[-1][1]
    # the prose around the table is pypdf's text, character for character; the table sits between
    assert layer.startswith(doc.text[:first]) and layer.endswith(doc.text[last:])
    assert doc.text[:first].rstrip().endswith("by region.") or doc.text[:first].rstrip().endswith("was built.")
    assert "\n".join(expected) in doc.text


def test_pdf_tables_off_keeps_pypdfs_text(office, monkeypatch):
    """RAG_PDF_TABLES=0 (rag index --no-pdf-tables): pypdf's page text as it is, no rows."""
    from pypdf import PdfReader

    from rag.ingest import load_options

    monkeypatch.setenv("RAG_PDF_TABLES", "0")
    options = load_options(Settings.from_env(), None)
    [doc] = [d for d in load_file(office / "annual-report.pdf", office, options) if isinstance(d, Document)]
    layer = clean_pdf_text(PdfReader(str(office / "annual-report.pdf")).pages[0].extract_text())
    assert doc.rows == [] and doc.text == layer
    assert "Region: " not in doc.text


def test_xlsx_sheets_values_as_shown_formulas_and_hidden_sheets(office):
    staff, budget = docs(office / "staff.xlsx")
    assert (staff.title, staff.page, budget.title, budget.page) == ("Staff", 1, "Budget", 2)
    assert rows_of(staff) == ["Name: Ada Morrow | Office: Antwerp | Salary (EUR): 61,250 | Started: 2019-04-01",
                              "Name: Ben Tarr | Office: Ghent | Salary (EUR): 54,800 | Started: 2021-09-15"]
    assert rows_of(budget)[-1] == "Item: Total | Amount (EUR): 12,500"  # the formula's saved value
    assert staff.text == "\n".join(rows_of(staff))
    assert "hidden sheet" not in staff.text + budget.text


def test_xlsx_number_formats():
    assert shown(1234.25, "#,##0.0") == "1,234.3"  # rounded as Excel rounds, not to even
    assert shown(0.125, "0.0%") == "12.5%" and shown(-5, "#,##0;(#,##0)") == "(5)"
    assert shown(1234.5, '"$"#,##0.00') == "$1,234.50" and shown(1234.5, "[$€-407] #,##0.00") == "€ 1,234.50"
    assert shown(418, "General") == "418" and shown(0.1 + 0.2, "General") == "0.3"
    assert shown(dt.datetime(2025, 3, 7, 14, 5), "d mmm yyyy h:mm AM/PM") == "7 Mar 2025 2:05 PM"
    assert shown(dt.datetime(2025, 3, 7), "dddd, mmmm d, yyyy") == "Friday, March 7, 2025"
    assert shown(dt.time(9, 30), "hh:mm") == "09:30" and shown(None) == "" and shown(True) == "TRUE"


def test_pptx_slides_reading_order_tables_and_notes(office):
    first, second = docs(office / "roadmap.pptx")
    assert (first.page, second.page, first.title) == (1, 2, "Search roadmap")
    assert first.text.split("\n\n")[:2] == ["Roadmap 2026", "The offline search ships in three phases."]
    assert rows_of(first) == ["Phase: Indexing | Quarter: Q1 | Owner: Dana Holt",
                              "Phase: Search UI | Quarter: Q3 | Owner: Emil Sand"]
    assert first.text.endswith("\n\nNotes: The Q3 date depends on hiring two engineers.")
    assert second.text == "Risks\n\nHiring is slow\nThe budget is fixed"


def test_epub_chapters_in_spine_order_with_the_books_title(office):
    chapters = docs(office / "keeper.epub")
    assert [(c.page, c.title) for c in chapters] == [(1, "The Keeper of Hollin Light"), (2, "The Keeper of Hollin Light")]
    assert chapters[0].text.startswith("Chapter One\n\nThe lamp at Hollin Light burned whale oil")
    assert chapters[1].text == "Chapter Two\n\nMira Vale kept the light alone through the winter storms of 1931."


def test_eml_header_html_body_and_attachments_as_their_own_documents(office):
    items = list(load_file(office / "meeting.eml", office))
    message, agenda, problem = items
    assert message.source == "meeting.eml" and message.title == "Board meeting agenda"
    assert message.text.startswith("From: Ada Morrow <ada@example.org>\nTo: board@example.org\n"
                                   "Date: Tue, 03 Mar 2026 09:00:00 +0100\nSubject: Board meeting agenda\n\nDear all,")
    assert "The board meets on Thursday at 10:00 in the harbour office." in message.text
    assert "navsecret" not in message.text
    assert agenda.source == agenda.doc_id == "meeting.eml/agenda.txt" and "2. Replacement lenses" in agenda.text
    assert isinstance(problem, DocumentError) and problem.path == str(office / "meeting.eml")
    assert "photos.zip not read" in problem.reason


def test_mbox_messages_are_pages_and_their_attachments_documents(tmp_path):
    box = b""
    for n, subject in enumerate(["First note", "Second note"], 1):
        m = EmailMessage()
        m["From"], m["Subject"] = "a@example.org", subject
        m.set_content(f"Message number {n}.\nFrom the archive, unescaped.\n")
        if n == 2:
            m.add_attachment("Quarter,Sales\nQ1,10\nQ2,12\n", filename="sales.csv")
        box += b"From a@example.org Tue Mar  3 09:00:00 2026\n" + bytes(m) + b"\n"
    (tmp_path / "box.mbox").write_bytes(box)
    first, second, sales = load_file(tmp_path / "box.mbox", tmp_path)
    assert [(d.source, d.page, d.title) for d in (first, second)] == [("box.mbox", 1, "First note"),
                                                                     ("box.mbox", 2, "Second note")]
    assert first.text.endswith("Message number 1.\nFrom the archive, unescaped.")
    assert sales.source == "box.mbox/2/sales.csv" and rows_of(sales) == ["Quarter: Q1 | Sales: 10",
                                                                        "Quarter: Q2 | Sales: 12"]


def test_csv_dialect_is_sniffed_and_tsv_cells_may_hold_line_breaks(office, tmp_path):
    [stock] = docs(office / "stock.csv")
    assert rows_of(stock) == ["Item: Fresnel lens | In stock: 14 | Supplier: Chance Brothers",
                              "Item: Mantle | In stock: 230 | Supplier: Auer; Welsbach",
                              "Item: Lamp oil (l) | In stock: 1,200 | Supplier: Harbour Stores"]
    (tmp_path / "codes.tsv").write_text('Code\tMeaning\nA1\t"two\nlines"\n', encoding="utf-8")
    [codes] = docs(tmp_path / "codes.tsv")
    assert codes.text == "Code: A1 | Meaning: two lines"


@pytest.mark.parametrize("name, data, reason", [
    ("old.xlsx", b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "Excel 97-2003"),
    ("bad.xlsx", b"PK\x03\x04" + b"\x00" * 100, "not a readable .xlsx"),
    ("bad.pptx", b"plain text", "not a PowerPoint .pptx"),
    ("bad.epub", b"plain text", "not an e-book"),
    ("bad.mbox", b"Subject: no envelope line\n\nbody\n", "not an mbox"),
    ("latin1.csv", "caf\xe9;1\n".encode("latin-1"), "not valid UTF-8"),
])
def test_broken_files_of_the_new_types_are_reported(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DocumentError) as info:
        list(load_file(tmp_path / name, tmp_path))
    assert info.value.path == str(tmp_path / name) and reason in info.value.reason


# --- rows: one shared layout, kept whole by the chunker --------------------------------------------


def test_table_lines_name_each_value():
    assert table_lines(REGIONS) == ["Region: Benelux | Revenue 2025 (EUR m): 55.9 | Employees: 418",
                                    "Region: Nordics | Revenue 2025 (EUR m): 31.2 | Employees: 97",
                                    "Region: Iberia | Revenue 2025 (EUR m): 12.4 | Employees: 65"]
    assert table_lines([["1", "2"], ["3", "4"]]) == ["1 | 2", "3 | 4"]  # numbers first: no names
    grouped = [["", "Citation", None], ["Model", "Rec.", "Prec."], ["ChatGPT", "", None], ["GPT-4", "73.6", "72.5"]]
    assert table_lines(grouped) == ["ChatGPT", "Model: GPT-4 | Citation Rec.: 73.6 | Citation Prec.: 72.5"]
    assert table_lines([["Staff directory", "", ""], ["Name", "Office", "Phone"], ["Ada", "Antwerp", "0101"]]) == [
        "Staff directory", "Name: Ada | Office: Antwerp | Phone: 0101"]
    assert header_rows([["Year", "2024", "2025"], ["Revenue", "10", "12"]]) == 1  # years name columns


def test_chunks_keep_table_rows_whole(embedder):
    layout = Layout()
    layout.add("The regions are listed below. Every row names its columns.")
    layout.table([["Region", "Note", "Employees"]]
                 + [[f"Region {i}", "Grew. Then it shrank. Mr. Smith left.", str(i * 7)] for i in range(60)])
    layout.add("That is all. Nothing follows the table.")
    doc = Document(source="t.txt", doc_id="t.txt", text=layout.text, rows=layout.rows)
    tokens = embedder.tokens
    chunks = chunk_document(doc, tokens.count_tokens, 64, 16, tokens.max_tokens)
    rows = set(layout.rows)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text == doc.text[c.start:c.end]
        for a, b in c.sentences:  # a sentence inside the table is exactly one row, never part of one
            inside = [r for r in rows if r[0] < b and a < r[1]]
            assert not inside or inside == [(a, b)]
    assert rows <= {s for c in chunks for s in c.sentences}
    assert split_sentences(doc.text, layout.rows)[0] == (0, len("The regions are listed below."))


def test_a_row_longer_than_a_chunk_is_cut_between_cells(embedder):
    layout = Layout()
    layout.table([[f"Column {i}" for i in range(40)], [f"value number {i}" for i in range(40)]])
    doc = Document(source="wide.csv", doc_id="wide.csv", text=layout.text, rows=layout.rows)
    tokens = embedder.tokens
    chunks = chunk_document(doc, tokens.count_tokens, 64, 0, tokens.max_tokens)
    assert len(chunks) > 2 and all(n <= 64 for n in tokens.count_tokens([c.text for c in chunks]))
    for c in chunks:
        assert re.fullmatch(r"Column \d+: value number \d+( \| Column \d+: value number \d+)*", c.text), c.text


def test_rows_are_never_guessed_from_the_text():
    """Text that merely looks like a row (a loader did not mark it) is split as prose always was."""
    text = "Dr. Smith arrived. He left at 5 p.m. on Friday.\nRegion: Benelux | Staff: 418. More text here."
    doc = Document(source="a.txt", doc_id="a.txt", text=text)
    [chunk] = chunk_document(doc, lambda ts: [len(t.split()) for t in ts], 64, 8, 512)
    assert chunk.sentences == split_sentences(text) == split_sentences(text, ())
    assert (48, len(text)) not in chunk.sentences  # the row-like line is not one sentence of its own


# --- answers cite the row --------------------------------------------------------------------------


QUESTIONS = [
    ("How many employees in Benelux?", "annual-report.pdf", "Region: Benelux | Revenue 2025 (EUR m): 55.9 | Employees: 418"),
    ("When was the Gull Rock lighthouse built?", "stations.pdf", "Station: Gull Rock | Keeper: Ben Tarr | Built: 1902"),
    ("When did Ada Morrow start?", "staff.xlsx", "Name: Ada Morrow | Office: Antwerp | Salary (EUR): 61,250 | Started: 2019-04-01"),
    ("What is the total amount of the budget?", "staff.xlsx", "Item: Total | Amount (EUR): 12,500"),
    ("Who owns the Search UI phase?", "roadmap.pptx", "Phase: Search UI | Quarter: Q3 | Owner: Emil Sand"),
    ("What does the Q3 date depend on?", "roadmap.pptx", "Notes: The Q3 date depends on hiring two engineers."),
    ("What did the lamp at Hollin Light burn?", "keeper.epub", "The lamp at Hollin Light burned whale oil"),
    ("When does the board meet?", "meeting.eml", "The board meets on Thursday at 10:00 in the harbour office."),
    ("Which beacon needs replacement lenses?", "meeting.eml/agenda.txt", "2. Replacement lenses for the Tarn Beacon"),
    ("How many Fresnel lenses are in stock?", "stock.csv", "Item: Fresnel lens | In stock: 14 | Supplier: Chance Brothers"),
]


def test_every_office_file_is_indexed(office_index):
    index, report = office_index
    assert sorted(report.added) == ["annual-report.pdf", "keeper.epub", "meeting.eml", "roadmap.pptx", "staff.xlsx",
                                    "stations.pdf", "stock.csv"]
    [problem] = report.failed  # reported beside the message and its agenda, which are indexed
    assert problem.path.endswith("meeting.eml") and "photos.zip not read" in problem.reason
    for c in index.store.chunks():
        assert c.text == index.store.document_text(c.source, c.doc_id, c.page)[c.start:c.end]


@pytest.mark.parametrize("question, source, cited", QUESTIONS)
def test_answers_cite_the_row_or_sentence_that_holds_them(office_index, question, source, cited):
    index, _ = office_index
    answer = ask(question, index=index)
    assert not answer.abstained, (question, answer.note)
    top = answer.citations[0]
    assert top.source == source and cited in top.text, (question, [(c.source, c.text) for c in answer.citations])
    for c in answer.citations:
        assert c.text == index.store.document_text(c.source, c.doc_id, c.page)[c.start:c.end]


# --- nothing skipped in silence --------------------------------------------------------------------


def test_unsupported_files_are_counted_by_type_and_a_named_one_fails(settings, tmp_path, capsys):
    folder = settings.corpus_dir
    folder.mkdir()
    (folder / "notes.txt").write_text("The archive opens at nine.", encoding="utf-8")
    for name in ("deck.key", "sheet.numbers", "other.numbers"):
        (folder / name).write_bytes(b"PK\x03\x04")
    found = find_files([folder])
    assert [f.name for f, _ in found.files] == ["notes.txt"] and len(found.skipped) == 3
    assert skipped_summary(found.skipped) == "skipped 3 files of types .key, .numbers: not supported"
    args = ["--index", str(settings.index_dir), "--quiet"]
    assert cli_main(["index", str(folder), *args]) == 0
    assert "skipped 3 files of types .key, .numbers: not supported" in capsys.readouterr().out
    assert cli_main(["index", str(folder / "deck.key"), *args]) == 1
    out = capsys.readouterr().out
    assert "deck.key: unsupported file type .key; the types read are .txt" in out and ".xlsx" in out


def test_the_readme_formats_table_is_the_registrys():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert format_table() in readme, "run: python -m rag.load README.md"
    assert all(f"`{suffix}`" in format_table() for suffix in SUFFIXES)
