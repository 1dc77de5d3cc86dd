"""E-mail (the standard email package): a .eml message, or each message of a .mbox mailbox numbered as a page.

A message is a Document: From, To, Date and Subject as a header block (each line kept whole, as a
table row is), then its plain-text body (else
its HTML body's visible text, read as a web page). Each attachment is read by the loader of its own
type as documents of their own, named after the message: `mail.eml/agenda.txt`, or
`box.mbox/3/agenda.txt` for the third message of a mailbox. A text attachment is taken in the charset
its part declares. Attachments of a type no loader reads are reported, beside the rest.
"""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from . import html
from .table import Layout

SUFFIXES = (".eml", ".mbox")
KIND = "E-mail (email)"
FORMAT = ("From, To, Date and Subject, then the plain or HTML body; each attachment read by its own loader as "
          "a document named `mail.eml/agenda.txt`; a .mbox gives each message as a page")
HEADERS = ("From", "To", "Date", "Subject")
MAX_DEPTH = 4  # messages attached to messages, read this deep
# what starts each message of an mbox: a "From " line at the start or after a blank line (a body line that
# starts with "From " follows a line of text, or is written ">From " by the mailbox's writer)
_FROM_LINE = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\r\n\r\n))From .*\n?")
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)  # mboxrd's escaping of body lines


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document | DocumentError]:
    if path.suffix.lower() != ".mbox":
        yield from _message(path, source, data, options, None, source, 0)
        return
    starts = list(_FROM_LINE.finditer(data))
    if not starts or starts[0].start() != 0:
        raise DocumentError(path, "not an mbox mailbox (it does not start with a \"From \" line)")
    for n, (m, following) in enumerate(zip(starts, starts[1:] + [None]), 1):
        raw = _QUOTED_FROM.sub(rb"\1", data[m.end():following.start() if following else len(data)])
        yield from _message(path, source, raw, options, n, f"{source}/{n}", 0)


def _message(path: Path, source: str, raw: bytes, options, page, name: str, depth: int):
    """The message's Document, then its attachments' documents and problems."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        head = [f"{h}: {' '.join(str(message[h]).split())}" for h in HEADERS if message[h] is not None]
        body = _body(message)
    except Exception as e:  # the email package raises many kinds on malformed headers and parts
        where = f"message {page}" if page else "the message"
        raise DocumentError(path, f"cannot read {where} ({type(e).__name__}: {e})") from None
    if not head and not body:
        raise DocumentError(path, "not an e-mail message (no From, To, Date or Subject header, no body)")
    layout = Layout()
    for line in head:  # each header line is one sentence of its own, kept whole like a table row
        layout.add(line, "\n", row=True)
    if body:
        layout.add(body)
    subject = " ".join(str(message["Subject"] or "").split())
    yield Document(source=source, doc_id=source, text=layout.text, page=page, title=subject, rows=layout.rows)
    yield from _attachments(path, message, options, name, depth)


def _body(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if part.get_content_subtype() == "html":
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(content, "lxml")
        return html.visible_text([soup.body or soup])
    return content.strip()


def _attachments(path: Path, message, options, name: str, depth: int) -> Iterator[Document | DocumentError]:
    from . import LOADERS

    unread, seen = [], set()
    for part in message.iter_attachments():
        filename = _filename(part, seen)
        suffix = PurePosixPath(filename).suffix.lower()
        nested = part.get_content_type() == "message/rfc822" or suffix == ".eml"
        if nested and depth >= MAX_DEPTH:
            unread.append(f"{filename} (messages nested more than {MAX_DEPTH} deep)")
            continue
        if not nested and suffix not in LOADERS:
            unread.append(filename)
            continue
        source = f"{name}/{filename}"
        try:
            if nested:
                raw = part.get_content().as_bytes() if part.get_content_type() == "message/rfc822" else _payload(path, part)
                items = list(_message(path, source, raw, options, None, source, depth + 1))
            else:
                items = list(LOADERS[suffix](Path(filename), source, _payload(path, part), options))
        except DocumentError as e:
            items = [e]
        except Exception as e:  # a part the email package cannot decode (an unknown charset, say)
            items = [DocumentError(path, f"cannot decode it ({type(e).__name__}: {e})")]
        for item in items:
            yield DocumentError(path, f"attachment {filename}: {item.reason}", line=item.line) \
                if isinstance(item, DocumentError) else item
    if unread:
        yield DocumentError(path, f"attachment{'s' if len(unread) > 1 else ''} {', '.join(unread)} not read: "
                                  "not a type we read; the message and its other attachments are indexed")


def _payload(path: Path, part) -> bytes:
    """The attachment's bytes; a text part re-encoded from the charset it declares to UTF-8."""
    data = part.get_content().encode("utf-8") if part.get_content_maintype() == "text" else part.get_payload(decode=True)
    if not data or not data.strip():
        raise DocumentError(path, "empty file")
    return data


def _filename(part, seen: set) -> str:
    """The attachment's own name (no folders), unique within its message."""
    raw = part.get_filename() or ""
    base = PurePosixPath(raw.replace("\\", "/")).name.strip() or (
        "message.eml" if part.get_content_type() == "message/rfc822" else "attachment")
    stem, suffix, n, unique = PurePosixPath(base).stem, PurePosixPath(base).suffix, 1, base
    while unique in seen:
        n += 1
        unique = f"{stem} ({n}){suffix}"
    seen.add(unique)
    return unique
