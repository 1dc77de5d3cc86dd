"""E-books (.epub): each chapter (a spine item, in reading order) a Document numbered as a page, its
text read by the web-page loader's visible-text rules; the book's title is every chapter's title.

Read with zipfile and lxml from the package's own description (META-INF/container.xml, then the OPF
file's metadata, manifest and spine): no e-book library needed. DRM-protected books cannot be read.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from ..errors import DocumentError
from ..model import Document
from . import html

SUFFIXES = (".epub",)
KIND = "E-books (zipfile, lxml)"
FORMAT = ("each chapter a document numbered as a page, in reading order (the spine), its visible text read as "
          "a web page's; the book's title")
MAX_UNPACKED = 512 * 2**20  # bytes of chapters unpacked at most: a zip bomb is refused, not unpacked
_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf",
       "dc": "http://purl.org/dc/elements/1.1/"}
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html", "application/xml")
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document]:
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as e:
        raise DocumentError(path, f"not an e-book (.epub is a ZIP package: {e})") from None
    with book:
        if "META-INF/encryption.xml" in book.namelist() and _encrypted(book):
            raise DocumentError(path, "a DRM-protected e-book: its chapters are encrypted and cannot be read")
        try:
            title, chapters = _spine(book)
            if sum(book.getinfo(name).file_size for name in chapters if name in book.NameToInfo) > MAX_UNPACKED:
                raise DocumentError(path, f"chapters larger than {MAX_UNPACKED >> 20} MB unpacked; not read")
            pages = [(n, book.read(name)) for n, name in enumerate(chapters, 1) if name in book.NameToInfo]
        except DocumentError:
            raise
        except (KeyError, zipfile.BadZipFile, ValueError, OSError, SyntaxError) as e:  # lxml errors are SyntaxErrors
            raise DocumentError(path, f"not a readable e-book ({type(e).__name__}: {e})") from None
    docs = []
    for number, markup in pages:
        text = _chapter_text(markup)
        if text:
            docs.append(Document(source=source, doc_id=source, text=text, page=number, title=title))
    if not docs:
        raise DocumentError(path, "no text in the e-book's chapters")
    yield from docs


def _spine(book: zipfile.ZipFile) -> tuple[str, list[str]]:
    """(the book's title, the chapters' names inside the package in reading order)."""
    from lxml import etree

    container = etree.fromstring(book.read("META-INF/container.xml"))
    found = container.xpath("//c:rootfile/@full-path", namespaces=_NS)
    if not found:
        raise ValueError("META-INF/container.xml names no package file")
    opf_name = found[0]
    opf = etree.fromstring(book.read(opf_name))
    titles = opf.xpath("//opf:metadata/dc:title/text()", namespaces=_NS)
    items = {item.get("id"): item for item in opf.xpath("//opf:manifest/opf:item", namespaces=_NS)}
    base = posixpath.dirname(opf_name)
    chapters = []
    for ref in opf.xpath("//opf:spine/opf:itemref", namespaces=_NS):
        item = items.get(ref.get("idref"))
        if item is None or item.get("media-type") not in _CHAPTER_TYPES or not item.get("href"):
            continue
        chapters.append(posixpath.normpath(posixpath.join(base, unquote(item.get("href").split("#")[0]))))
    return (" ".join(titles[0].split()) if titles else ""), chapters


def _chapter_text(markup: bytes) -> str:
    from bs4 import BeautifulSoup

    text, _ = html.decode(markup)
    soup = BeautifulSoup(text, "lxml")
    return html.visible_text([soup.body or soup])


def _encrypted(book: zipfile.ZipFile) -> bool:
    """Does META-INF/encryption.xml encrypt content (DRM), not only obfuscate fonts?"""
    from lxml import etree

    listing = etree.fromstring(book.read("META-INF/encryption.xml"))
    methods = listing.xpath("//*[local-name()='EncryptedData']/*[local-name()='EncryptionMethod']/@Algorithm")
    return any(m not in _FONT_OBFUSCATION for m in methods)
