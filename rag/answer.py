"""Stage 6, answer: compose an answer from cited sentence spans, or abstain."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .retrieve import Hit


@dataclass
class Citation:
    n: int  # the marker [n] in the answer text
    source: str
    doc_id: str
    page: int | None
    start: int  # offsets into the document text (the page text for PDFs)
    end: int
    text: str  # == document text[start:end], exactly
    score: float
    passage: int = 0  # index into Answer.passages of the passage the span lies in


@dataclass
class Sentence:
    text: str
    citations: list[int] = field(default_factory=list)  # citation numbers
    supported: bool = True


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    mode: str = "extractive"  # extractive | generative
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # generated sentences removed, with the reason
    note: str = ""  # one line about how the answer was made, e.g. why it fell back to extractive
    resolved_question: str = ""  # the question after folding in the conversation history

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passages"] = [p.to_dict() for p in self.passages]
        return d
