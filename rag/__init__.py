"""Offline-first question answering over your documents, every claim cited to its exact source span.

    from rag import ask, Index
    answer = ask("How many U.S. presidents has Putin outlasted?")
    for c in answer.citations:
        print(c.n, c.source, c.page, c.start, c.end, c.text)
"""

from .answer import Answer, Citation, Sentence, ask
from .chunk import Chunk
from .config import Settings
from .errors import (DocumentError, IndexFormatError, IndexLockedError, IndexMismatchError, IndexNotFoundError,
                     LLMError, RagError)
from .index import Index, IngestReport
from .load import Document
from .retrieve import Hit

__all__ = [
    "Answer", "Chunk", "Citation", "Document", "DocumentError", "Hit", "Index", "IndexLockedError",
    "IndexFormatError", "IndexMismatchError", "IndexNotFoundError", "IngestReport", "LLMError", "RagError", "Sentence",
    "Settings", "ask",
]
