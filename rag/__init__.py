"""Offline-first question answering over your documents, every claim cited to its exact source span.

    from rag import ask, Index
    answer = ask("How many U.S. presidents has Putin outlasted?")
    for c in answer.citations:
        print(c.n, c.source, c.page, c.start, c.end, c.text)

The stages, in the order a document meets them: load -> chunk -> embed -> store (+ ann) -> retrieve
-> answer. `model` holds the data they pass along, `index` ties them together, `kb` keeps several indexes
as knowledge bases, `access` decides who may read and add to which; `cli` and `chat` are thin layers over
`Library`, `Index` and `ask`.
"""

from .answer import ask
from .config import Settings
from .errors import (AccessError, DocumentError, IndexFormatError, IndexLockedError, IndexMismatchError,
                     IndexNotFoundError, KnowledgeBaseNotFoundError, LLMError, RagError)
from .index import Index
from .kb import DEFAULT_KB, KnowledgeBase, Library, Selection, default_index
from .model import (Answer, Chunk, Citation, Document, Dropped, EmbeddedDocument, EmbeddedFile, Hit, IngestReport,
                    Sentence)

__all__ = [
    "DEFAULT_KB", "AccessError", "Answer", "Chunk", "Citation", "Document", "DocumentError", "Dropped",
    "EmbeddedDocument", "EmbeddedFile", "Hit", "Index", "IndexFormatError", "IndexLockedError", "IndexMismatchError",
    "IndexNotFoundError", "IngestReport", "KnowledgeBase", "KnowledgeBaseNotFoundError", "LLMError", "Library",
    "RagError", "Selection", "Sentence", "Settings", "ask", "default_index",
]
