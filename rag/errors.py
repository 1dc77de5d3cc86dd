"""One exception family. Every message says what went wrong and what to do next."""


class RagError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class DocumentError(RagError):
    """One input file (or one record in it) could not be read; the others go on."""

    def __init__(self, path, reason, line: int | None = None, retry: bool = False):
        self.path = str(path)
        self.reason = reason
        self.line = line  # the JSONL record's line, when one record failed
        # reading the unchanged file again may do better (its scanned pages wait for OCR to be installed or
        # turned on): the index records no hash for it, so the next run reads it again
        self.retry = retry
        super().__init__(f"{self.where}: {reason}")

    @property
    def where(self) -> str:
        return self.path if self.line is None else f"{self.path} line {self.line}"


class IndexMismatchError(RagError):
    """The index on disk was built with other settings (model, chunker, format)."""


class IndexFormatError(IndexMismatchError):
    """The index was written by another version of this code."""


class IndexLockedError(RagError):
    """Another process is writing to the index."""


class IndexNotFoundError(RagError):
    """No index where one was expected."""


class LLMError(RagError):
    """The language-model server failed, timed out or answered garbage."""


class AccessError(RagError):
    """Who may do what: a users file that cannot be used, a chat exposed without logins, a refused action."""


class KnowledgeBaseNotFoundError(RagError):
    """No knowledge base by that name, or none the asker may read: the message is the same for both, so a
    refusal never tells that a KB exists."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no knowledge base named {name!r}; `rag kb list` (or GET /v1/kbs) shows the ones you can use")


class ConversationNotFoundError(RagError):
    """No conversation by that id, or none of the asker's: the same message for both."""

    def __init__(self, conversation: str):
        self.conversation = conversation
        super().__init__(f"no conversation {conversation!r} of yours; the chat's side list (or `rag history list`) "
                         "shows them")
