"""Excel .xlsx (openpyxl): each visible sheet a Document titled by its name, numbered as pages.

Rows become lines that carry their column names (rag/load/table.py). Values are written as the sheet
shows them: numbers and dates through their cell's number format (`#,##0.00`, `0%`, `yyyy-mm-dd`, ...),
formulas as the value Excel last computed and saved (a formula never computed, as in a file written by a
script, stays empty). Hidden sheets, charts and comments are left out.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from .office import check_package
from .table import Layout

SUFFIXES = (".xlsx", ".xlsm")
KIND = "Excel (openpyxl)"
FORMAT = ("each visible sheet a document (its name the title, numbered as pages); rows as lines carrying "
          "their column names; numbers and dates as the sheet shows them, formulas as their saved values")


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    check_package(path, data, app="Excel", old=".xls", new=".xlsx", what="workbook")
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheets = [(n, ws.title, _rows(ws)) for n, ws in enumerate(book.worksheets, 1) if ws.sheet_state == "visible"]
        book.close()
    except Exception as e:  # openpyxl, zipfile and lxml raise many kinds on broken packages
        raise DocumentError(path, f"not a readable .xlsx file ({type(e).__name__}: {e})") from None
    docs = []
    for number, name, rows in sheets:
        layout = Layout()
        layout.table(rows)
        if layout.parts:
            docs.append(Document(source=source, doc_id=source, text=layout.text, page=number, title=name,
                                 rows=layout.rows))
    if not docs:
        raise DocumentError(path, "no values in the workbook's visible sheets")
    yield from docs


def _rows(ws) -> list[list[str]]:
    rows = []
    for row in ws.iter_rows():
        cells = [shown(c.value, getattr(c, "number_format", "General") or "General") for c in row]
        while cells and not cells[-1]:
            cells.pop()
        rows.append(cells)
    return rows


# --- values as the sheet shows them ------------------------------------------------------------------

_SECTION = re.compile(r'((?:"[^"]*"|\\.|[^;"\\])*)(?:;|$)')
# a number format's parts: "literal", \x, _x (a space as wide as x), *x (fill), [color or $currency], the
# digits pattern, any other character (kept as is)
_PART = re.compile(r'"([^"]*)"|\\(.)|_.|\*.|\[([^\]]*)\]|([0#?][0#?,.]*(?:[Ee][+-][0#]+)?|\.[0#?]+)|(.)', re.S)
_DATE_TOKEN = re.compile(r'"[^"]*"|\\.|yyyy|yy|mmmmm|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|\.0+|.',
                         re.IGNORECASE)


def shown(value, number_format: str = "General") -> str:
    """A cell's value as Excel shows it under `number_format` (the common formats; others as General)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _date(value, number_format)
    if isinstance(value, (int, float)):
        return _number(value, number_format)
    return str(value)


def _sections(number_format: str) -> list[str]:
    return [m.group(1) for m in _SECTION.finditer(number_format)][:4] or [""]


def _general(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}".replace("e+", "E+").replace("e-", "E-")


def _number(value: float, number_format: str) -> str:
    sections = _sections(number_format)
    section = sections[0]
    if value < 0 and len(sections) > 1 and sections[1]:
        section, value = sections[1], -value  # the negative section writes its own sign or brackets
    elif value == 0 and len(sections) > 2 and sections[2]:
        section = sections[2]
    parts = list(_PART.finditer(section))
    pattern = next((m.group(4) for m in parts if m.group(4)), None)
    if section.strip().lower() == "general" or pattern is None:
        return _general(value)
    if any(m.group(5) == "%" for m in parts):
        value *= 100
    mantissa, _, exponent = pattern.upper().partition("E")
    integer, _, fraction = mantissa.partition(".")
    decimals = sum(ch in "0#?" for ch in fraction)
    if exponent:
        head, _, power = f"{value:.{decimals}E}".partition("E")
        number = f"{head}E{int(power):+03d}"
    else:
        rounded = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)  # as Excel rounds
        number = f"{rounded:,f}" if "," in integer else f"{rounded:f}"
        if not integer.strip("#,") and number.lstrip("-").startswith("0."):
            number = number.replace("0.", ".", 1)  # "#.00" shows .5, not 0.5
    out, placed = [], False
    for m in parts:
        quoted, escaped, bracket, digits, other = m.groups()
        if quoted is not None or escaped is not None:
            out.append(quoted if quoted is not None else escaped)
        elif bracket is not None and bracket.startswith("$"):
            out.append(bracket[1:].split("-")[0])  # [$€-407]: the currency symbol
        elif digits is not None and not placed:
            out.append(number)
            placed = True
        elif other is not None:
            out.append(other)
    return "".join(out).strip()


def _date(value, number_format: str) -> str:
    section = re.sub(r"\[[^\]]*\]", "", _sections(number_format)[0])
    if not re.search(r"[ymdhs]", section, re.IGNORECASE):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    tokens = _DATE_TOKEN.findall(section)
    twelve = any(t.lower() in ("am/pm", "a/p") for t in tokens)
    out = []
    for i, token in enumerate(tokens):
        low = token.lower()
        if low.startswith("m") and low in ("m", "mm"):  # minutes after hours or before seconds
            before = next((t.lower() for t in reversed(tokens[:i]) if t[0].isalpha()), "")
            after = next((t.lower() for t in tokens[i + 1:] if t[0].isalpha()), "")
            if before.startswith("h") or after.startswith("s"):
                low = "min" + low
        out.append(_date_part(value, low, token, twelve))
    return "".join(out).strip()


def _date_part(value, low: str, token: str, twelve: bool) -> str:
    date = value if isinstance(value, (dt.datetime, dt.date)) else None
    time = value if isinstance(value, (dt.datetime, dt.time)) else None
    hour = time.hour if time else 0
    parts = {
        "yyyy": lambda: f"{date.year:04d}", "yy": lambda: f"{date.year % 100:02d}",
        "mmmmm": lambda: date.strftime("%B")[0], "mmmm": lambda: date.strftime("%B"),
        "mmm": lambda: date.strftime("%b"), "mm": lambda: f"{date.month:02d}", "m": lambda: str(date.month),
        "dddd": lambda: date.strftime("%A"), "ddd": lambda: date.strftime("%a"),
        "dd": lambda: f"{date.day:02d}", "d": lambda: str(date.day),
        "hh": lambda: f"{(hour % 12 or 12) if twelve else hour:02d}",
        "h": lambda: str((hour % 12 or 12) if twelve else hour),
        "minmm": lambda: f"{time.minute:02d}", "minm": lambda: str(time.minute),
        "ss": lambda: f"{time.second:02d}", "s": lambda: str(time.second),
        "am/pm": lambda: "AM" if hour < 12 else "PM", "a/p": lambda: "A" if hour < 12 else "P",
    }
    if low in parts:
        try:
            return parts[low]()
        except AttributeError:  # a date part of a time, or a time part of a date
            return ""
    if token.startswith('"'):
        return token[1:-1]
    if token.startswith("\\"):
        return token[1:]
    if token.startswith(".") and time is not None:
        return "." + f"{time.microsecond:06d}"[:len(token) - 1]
    return token
