"""Stage 6b, generate: an answer written by an OpenAI-compatible chat server, every citation verified.

The model sees the retrieved passages numbered [1]..[k] as data and is asked to cite [n] after each
sentence. Nothing it writes is trusted: `verify` checks each sentence against the span it cites.
Failures of the server raise LLMError with a one-line reason; `ask` then answers extractively.
"""

from __future__ import annotations

import time

from ..config import Settings
from ..errors import LLMError
from ..model import ABSTAIN_TEXT, Answer, Hit
from .llm_client import stream_chat
from .prompt import build_messages
from .reply import is_abstention, reply_sentences
from .verify import verify, verify_parsed

class _VerifiedStream:
    """on_token adapter: passes on only verified text, a sentence at a time, as the reply streams.

    A sentence is complete once the next one has begun; the completed prefix is verified (vectors
    are cached, so each pass costs little) and the new part of its shown text is handed on."""

    def __init__(self, hits, embedder, keep_unsupported, on_token):
        self.hits, self.embedder, self.keep, self.on_token = hits, embedder, keep_unsupported, on_token
        self.raw, self.done, self.emitted = "", 0, ""

    def feed(self, delta: str) -> None:
        self.raw += delta
        complete = reply_sentences(self.raw)[:-1]
        if len(complete) > self.done:
            self.done = len(complete)
            self.emit(verify_parsed(complete, self.hits, self.embedder, self.keep).text)

    def emit(self, shown: str) -> None:
        if shown.startswith(self.emitted) and len(shown) > len(self.emitted):
            self.on_token(shown[len(self.emitted):])
            self.emitted = shown


def generate_answer(question: str, hits: list[Hit], settings: Settings, embedder, on_token=None, history=None,
                    *, keep_unsupported: bool | None = None, verified_stream: bool | None = None,
                    max_tokens: int = 400) -> Answer:
    """Ask the chat server at settings.llm_url, then verify every sentence and citation of its reply.

    on_token receives text deltas as they arrive: by default the raw model tokens (fast, but they
    include sentences verification will remove: show Answer.text once it returns); with
    verified_stream (None reads settings.verified_stream, default False) only verified sentences, one
    at a time, with their final [n] markers. keep_unsupported (None reads settings.keep_unsupported,
    default False): unsupported sentences are removed from the shown text, or kept and flagged;
    either way they are listed in Answer.dropped with the reason.
    Raises LLMError when the server is down, too slow (settings.llm_timeout) or answers garbage."""
    verified_stream = settings.verified_stream if verified_stream is None else verified_stream
    keep_unsupported = settings.keep_unsupported if keep_unsupported is None else keep_unsupported
    if not settings.llm_url:
        raise LLMError("no language model configured (set RAG_LLM_URL or --llm-url)")
    timings: dict[str, float] = {}
    if not hits:
        return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, timings=timings, mode="generative",
                      note="no passages were retrieved, so the language model was not asked")
    t0 = time.perf_counter()
    streamer = _VerifiedStream(hits, embedder, keep_unsupported, on_token) if verified_stream and on_token else None
    raw = stream_chat(build_messages(question, hits, history), settings, streamer.feed if streamer else on_token,
                      max_tokens=max_tokens)
    timings["generate"] = time.perf_counter() - t0
    answer = answer_from_reply(question, raw, hits, embedder, keep_unsupported)
    answer.timings = {**timings, **answer.timings}
    if streamer:
        streamer.emit(answer.text)
    return answer


def answer_from_reply(question: str, raw: str, hits: list[Hit], embedder, keep_unsupported: bool = False) -> Answer:
    """The Answer for a model reply: abstention recognized, every sentence and citation verified."""
    t1 = time.perf_counter()
    if is_abstention(raw):
        return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, passages=list(hits),
                      timings={"verify": time.perf_counter() - t1}, mode="generative",
                      note="the language model found no answer in the passages")
    result = verify(raw, hits, embedder, keep_unsupported)
    kept = [s for s in result.sentences if s.supported]
    dropped = result.dropped
    n_dropped = sum(1 for d in dropped if d.kind == "sentence")
    notes = []
    if n_dropped:
        verb = "flagged" if keep_unsupported else "removed"
        notes.append(f"{n_dropped} generated sentence{'s' * (n_dropped != 1)} not supported by the passages "
                     f"{'was' if n_dropped == 1 else 'were'} {verb}")
    n_markers = sum(1 for d in dropped if d.kind == "marker")
    if n_markers:
        notes.append(f"{n_markers} citation marker{'s' * (n_markers != 1)} corrected")
    if any(d.injection for d in dropped):
        notes.append("a passage holds instructions to the model; they were ignored")
    abstained = not kept
    text = result.text if result.text and not (abstained and not keep_unsupported) else ABSTAIN_TEXT
    return Answer(question=question, text=text, abstained=abstained, citations=result.citations, passages=list(hits),
                  timings={"verify": time.perf_counter() - t1}, mode="generative", sentences=result.sentences,
                  dropped=dropped, note="; ".join(notes))
