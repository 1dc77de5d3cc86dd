"""Stage 5, retrieve: dense (FAISS), keyword (SQLite FTS5 BM25) and their fusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Hit:
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sentences"] = [list(s) for s in self.sentences]
        return d
