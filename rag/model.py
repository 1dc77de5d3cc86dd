"""The data model every stage shares: what flows from load to answer.

It imports nothing of ours, so every stage can import it and no cycle can form. All classes are
keyword-only dataclasses: `Hit(chunk_id=3, source=..., ...)`, never a positional list to get wrong.
Offsets are always character offsets into the stored text of one document (a file, a JSONL record
or a PDF page): `text == document_text[start:end]`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(kw_only=True)
class Document:
    """One citable unit of text: a text file, a Word or HTML file, one JSONL record, one PDF page or image,
    one sheet, slide, chapter or mail message."""

    source: str  # path relative to the folder that was indexed
    doc_id: str  # the JSONL record id, else the source
    text: str  # offsets of chunks and citations index into this string
    page: int | None = None  # 1-based PDF page (frame of a multi-page image, sheet, slide, chapter, mbox message)
    title: str = ""
    ocr: bool = False  # the text was read from the page image by OCR, not taken from a text layer
    words: PageWords | None = None  # OCR: where its words stand on the page (stored: no later OCR run needed)
    # (start, end) of each table row in `text` (rag/load/table.py): the chunker keeps a row whole, one sentence
    rows: list[tuple[int, int]] = field(default_factory=list)


CELL_SEPARATOR = " | "  # between the cells of a table row (Document.rows)


@dataclass(kw_only=True)
class PageWords:
    """Where an OCR page's words stand: what lets a citation into it be drawn on the scan."""

    width: float  # the page (or image), in points
    height: float
    # one (left, top, right, bottom) per word of the text, its runs of characters other than space and newline,
    # in order; points from the page's top-left corner
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass(kw_only=True)
class Chunk:
    source: str
    doc_id: str
    page: int | None
    start: int
    end: int
    text: str  # == document text[start:end]
    sentences: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets, like start/end
    title: str = ""

    @property
    def embed_text(self) -> str:
        """What the model sees: the title gives a record's chunks their context."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    @property
    def embed_spans(self) -> list[tuple[int, int]]:
        """The sentences as offsets into embed_text."""
        shift = len(self.title) + 1 - self.start if self.title else -self.start
        return [(a + shift, b + shift) for a, b in self.sentences]


@dataclass(kw_only=True)
class EmbeddedDocument:
    """A document with its chunks and their vectors, made elsewhere (a worker, a cache): see EmbeddedFile."""

    document: Document
    chunks: list[Chunk]  # chunk.text == document.text[chunk.start:chunk.end], one title for all
    vectors: Any  # (len(chunks), dim) float, normalized: what the embedder's encode_with_spans gives
    sentence_vectors: list  # per chunk, (len(chunk.sentences), dim) float, normalized


@dataclass(kw_only=True)
class EmbeddedFile:
    """One file, chunked and embedded: the unit `Index.add_precomputed` takes, in any order.

    The model and chunker settings it was made with must be the index's (its manifest): vectors of
    another model never mix with the index's own.
    """

    path: str  # absolute path: the file's identity in the index (re-adding it replaces its documents)
    source: str  # path relative to the folder that was indexed, as citations show it
    hash: str  # sha256 of the file's bytes (rag.load.file_hash): an unchanged file is skipped on a rerun
    size: int
    documents: list[EmbeddedDocument]
    model: str
    chunk_tokens: int
    overlap_tokens: int
    chunker: int  # rag.chunk.CHUNKER_VERSION


@dataclass(kw_only=True)
class Hit:
    """A retrieved chunk with its score; what the answerers read."""

    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    start: int  # offsets into the document text (the page text for PDFs)
    end: int
    text: str  # == document text[start:end]
    score: float
    sentences: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets
    title: str = ""
    ocr: bool = False  # its document's text was read by OCR
    kb: str = ""  # the knowledge base it came from ("" for an Index outside a Library)
    # one normalized row per sentence, made when the chunk was embedded (the answerer scores with them)
    sentence_vectors: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sentence_vectors"}
        d["sentences"] = [list(s) for s in self.sentences]
        return d


@dataclass(kw_only=True)
class Citation:
    """One cited span. `score`: for an extractive answer, P(this sentence holds the answer), the sentence's
    ranking score calibrated on the tune data (rag/answer/answerability.py); for a generated one, how well the
    span supports its sentence (rag/answer/verify.py, at least its SUPPORT_THRESHOLD)."""

    n: int  # the marker [n] in the answer text
    source: str
    doc_id: str
    page: int | None
    start: int  # offsets into the document text (the page text for PDFs)
    end: int
    text: str  # == document text[start:end], exactly
    score: float
    passage: int = 0  # index into Answer.passages of the passage the span lies in
    ocr: bool = False  # the cited text was read by OCR: quoted exactly as stored, but OCR may misread
    kb: str = ""  # the knowledge base of the cited document
    # where the span stands on its PDF page (or scanned image), one (left, top, right, bottom) rectangle per
    # line in points from the page's top-left corner, as the page is shown; empty where unknown (not a PDF, a
    # file changed since it was indexed, an OCR page indexed before words were kept): rag/pages/locate.py
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    page_width: float = 0.0  # the page's size in points, when boxes are given
    page_height: float = 0.0

    @classmethod
    def in_passage(cls, hit: Hit, *, n: int, passage: int, start: int, end: int, text: str, score: float) -> "Citation":
        """A span of the passage `hit` (Answer.passages[passage]): where it lies is the passage's document."""
        return cls(n=n, source=hit.source, doc_id=hit.doc_id, page=hit.page, start=start, end=end, text=text,
                   score=score, passage=passage, ocr=hit.ocr, kb=hit.kb)


@dataclass(kw_only=True)
class Sentence:
    text: str
    citations: list[int] = field(default_factory=list)  # citation numbers
    supported: bool = True


@dataclass(kw_only=True)
class Dropped:
    """What the verifier took out of a generated answer, and why."""

    kind: str  # "sentence" (a whole sentence removed or flagged) | "marker" (one [n] removed)
    text: str  # the generated sentence
    reason: str
    marker: int | None = None  # the removed [n], for kind "marker"
    markers: list[int] = field(default_factory=list)  # the sentence's markers, for kind "sentence"
    score: float = 0.0  # best support found, for kind "sentence"
    injection: bool = False  # it repeats a passage that is an instruction to the model


ABSTAIN_TEXT = "I can't find that in the documents."  # what an answer that abstains says
# a kept answer's citation into a knowledge base its reader may no longer read, as shown instead of it
# (rag/conversations.py): never quoted
WITHHELD = "withheld: from a knowledge base you may no longer read"
# answers given with a confidence below this are shown as "low confidence": more likely than not, on the tune
# data, the cited sentences do not hold the answer
LOW_CONFIDENCE = 0.5


@dataclass(kw_only=True)
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    mode: str = "extractive"  # extractive | generative
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)  # generated sentences or markers removed
    note: str = ""  # one line about how the answer was made, e.g. why it fell back to extractive
    resolved_question: str = ""  # the question written out against the conversation (what was searched)
    # P(the cited sentences hold the answer), in [0, 1]: a logistic regression over the extractive answer's
    # signals (rag/answer/answerability.py), calibrated on the tune data (bench/results/answerability.md). It
    # answers when confidence >= Settings.min_confidence. A generated answer carries the confidence of the
    # extractive decision made on the same passages; an abstention, that of the answer it withheld (0.0 when
    # no sentence was retrieved at all).
    confidence: float = 0.0

    def to_dict(self) -> dict:
        """Plain JSON-ready data: what the CLI's --json and the chat's ask endpoint return."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["citations"] = [asdict(c) for c in self.citations]
        d["passages"] = [p.to_dict() for p in self.passages]
        d["sentences"] = [asdict(s) for s in self.sentences]
        d["dropped"] = [asdict(x) for x in self.dropped]
        d["timings"] = dict(self.timings)
        return d


@dataclass(kw_only=True)
class IngestReport:
    """What one `Index.add` did."""

    added: list[str] = field(default_factory=list)  # sources (re)indexed
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list = field(default_factory=list)  # DocumentError, each naming its file (and line) and reason
    skipped: list[str] = field(default_factory=list)  # files of a type we do not read
    chunks: int = 0  # chunks written
    embedded: int = 0  # chunks that needed the model (the rest reused a stored vector)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {"added": self.added, "unchanged": self.unchanged, "removed": self.removed,
                "failed": [{"path": e.path, "line": e.line, "reason": e.reason} for e in self.failed],
                "skipped": self.skipped, "chunks": self.chunks, "embedded": self.embedded,
                "seconds": round(self.seconds, 3)}
