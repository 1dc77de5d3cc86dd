"""`ask`: the one function behind the CLI, the chat and scripts. Resolve the question against the
conversation, embed it once, retrieve, decide whether the passages answer (answerability.py), then answer:
generated and verified when an LLM server is configured and answers, extractive otherwise."""

from __future__ import annotations

import time

from ..config import Settings
from ..errors import LLMError, RagError
from ..index import Index
from ..kb import Library, Selection
from ..model import Answer
from ..pages.locate import locate
from .extractive import TUNING, Tuning, extract
from .followup import resolve_question


def ask(question: str, index: Index | Selection | None = None, history=None, settings: Settings | None = None,
        on_token=None, k: int | None = None, mode: str | None = None, tuning: Tuning | None = None,
        kb: str | list[str] | None = None) -> Answer:
    """Answer from the documents, every sentence cited to an exact span, or abstain.

    What is searched: `index` (an Index, or a Selection of knowledge bases), else the knowledge bases named by
    `kb` ("hr", or ["hr", "eng"]: one ranking across them; every citation names its KB), else the default KB
    (settings.index_dir, built from settings.corpus_dir on first use). `settings` (default: the environment's, or
    the index's own) decides everything about the query: k, mode, fusion, min_confidence and the LLM; `k` and
    `mode` override it. `history` is the conversation so far as {"role", "content"} dicts; hand back each
    answer's resolved_question as the user's turn to keep chains of follow-ups resolved. `on_token` receives the
    LLM's text as it streams (generative answers only).
    """
    if not question or not question.strip():
        raise RagError("the question is empty; ask something about your documents")
    if index is None:
        settings = settings or Settings.from_env()
        index = Library.open(settings).select(kb)
    elif kb is not None:
        raise RagError("pass either index= or kb=, not both")
    settings = settings or index.settings
    timings: dict[str, float] = {}
    t = time.perf_counter()
    resolved = resolve_question(question, history)
    query_vector, question_tokens = index.embed_question(resolved)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    hits = index.search(resolved, k, mode, query_vector=query_vector, settings=settings)
    timings["search"] = time.perf_counter() - t
    t = time.perf_counter()
    # the decision is made on the passages, whoever writes the answer
    answer = extract(question, resolved, hits, query_vector[0], tuning or TUNING, min_confidence=settings.min_confidence,
                     embedder=index.embedder, question_tokens=question_tokens)
    timings["compose"] = time.perf_counter() - t
    if settings.llm_url and hits:
        if answer.abstained:  # asking a model to answer what the passages do not say invites it to make it up
            answer.note = (f"the language model was not asked: the passages do not answer confidently enough "
                           f"(confidence {answer.confidence:.2f} < {settings.min_confidence:.2f})")
        else:
            from .generate import generate_answer

            t = time.perf_counter()
            try:
                generated = generate_answer(question, hits, settings, index.embedder, on_token=on_token,
                                            history=history)
                generated.confidence = answer.confidence
                answer = generated
            except LLMError as e:
                answer.note = f"answered extractively: the language model failed ({e})"
            timings["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    locate(answer, index.store_of, settings.pdf_passwords)  # the citations' boxes on their PDF pages and scans
    timings["locate"] = time.perf_counter() - t
    answer.timings = {**timings, "total": sum(timings.values())}
    answer.resolved_question = resolved
    return answer
