"""The client for OpenAI-compatible chat servers (Ollama, llama.cpp, vLLM, LM Studio, OpenAI): one
streaming chat completion through the `openai` package, with an overall deadline, retries while
nothing has streamed, and one-line errors.

What is ours on top of `openai` (measured in bench/results/llm_client.md):
- the deadline: openai's timeout bounds each network read, not the call, and its own retries start
  the clock again and sleep through Retry-After (measured: 4.4 s on a silent server and 10 s on a
  429 for deadlines of 1 and 2 s; an endless stream never stops), so the client is built with
  max_retries=0, this module retries, giving each attempt only the time that is left, and the
  stream is closed once settings.llm_timeout has passed;
- replies openai reads as an empty stream without an error: one JSON object answered to
  stream=true (the content type is checked before the stream is read), an HTML page, a stream with
  no events (zero events is an error here);
- no ambient credentials: the key is passed explicitly, so OPENAI_API_KEY is never sent to the
  configured server, and OPENAI_ORG_ID / OPENAI_PROJECT_ID headers are dropped.

The API key is sent as a Bearer header and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import json
import re
import time
from typing import Callable

from ..config import Settings
from ..errors import LLMError


def chat_url(url: str) -> str:
    """The chat-completions endpoint for a server URL, a .../v1 base URL or the endpoint itself."""
    u = (url or "").strip().rstrip("/")
    if not re.match(r"(?i)^https?://[^/\s]+", u):
        raise LLMError(f"llm_url must start with http:// or https://, not {url!r}")
    if u.endswith("/chat/completions"):
        return u
    if u.endswith("/v1"):
        return u + "/chat/completions"
    return u + "/v1/chat/completions"


_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def stream_chat(messages: list[dict], settings: Settings, on_token: Callable[[str], None] | None = None,
                max_tokens: int = 400, retries: int = 2, temperature: float = 0.0) -> str:
    """Stream a chat completion and return the whole reply, calling on_token per delta.

    settings.llm_timeout bounds the whole call: connecting, waiting for the first token, and the
    generation itself (checked after every streamed event). Connection failures and 408/429/5xx
    answers are retried (with a short back-off) while no token has arrived and time is left.
    Raises LLMError with a one-line reason; never prints or logs the API key."""
    try:
        import openai
    except ImportError:
        raise LLMError("the openai package is not installed (pip install 'rag[llm]')") from None

    url = chat_url(settings.llm_url)
    total = float(settings.llm_timeout)
    if total <= 0:
        raise LLMError(f"llm_timeout must be positive, not {total}")
    deadline = time.monotonic() + total
    secret = settings.llm_api_key

    def fail(reason: str) -> LLMError:
        reason = " ".join(str(reason).split())
        if secret:
            reason = reason.replace(secret, "***")
        return LLMError(f"language model at {_safe(url)}: {reason}")

    # only our key, or no Authorization header at all; no OPENAI_* credentials from the environment
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {secret}" if secret else openai.omit,
               "OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit}
    client = openai.OpenAI(base_url=url[: -len("/chat/completions")], api_key="unused", max_retries=0)
    attempt, state = 0, {"tokens": 0, "streaming": False}
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise fail(f"no complete reply within {total:g} s (llm_timeout)")
            state["streaming"] = False
            try:
                stream = client.chat.completions.create(
                    messages=messages, stream=True, max_tokens=int(max_tokens), temperature=temperature,
                    model=settings.llm_model or openai.omit, extra_headers=headers,
                    timeout=openai.Timeout(left, connect=min(left, 10.0)))
                with stream:
                    if "event-stream" not in stream.response.headers.get("content-type", ""):
                        return _read_json(stream.response, on_token, fail)
                    state["streaming"] = True
                    return _read_stream(stream, on_token, deadline, total, fail, state)
            except openai.APITimeoutError as e:
                if type(e.__cause__).__name__ == "ConnectTimeout":
                    raise fail(f"could not connect within {min(total, 10.0):g} s") from None
                raise fail(f"no reply within {total:g} s (llm_timeout)") from None
            except openai.APIConnectionError as e:
                if state["streaming"] and (state["tokens"] or attempt >= retries):
                    raise fail(f"the connection broke off ({_cause(e)})") from None
                if attempt >= retries:
                    raise fail(f"cannot connect ({_cause(e) or 'connection refused'}); is the server running?") from None
            except openai.APIStatusError as e:
                if e.status_code not in _RETRY_STATUS or attempt >= retries:
                    hint = " (check RAG_LLM_API_KEY)" if e.status_code in (401, 403) else ""
                    detail = _error_detail(e)
                    raise fail(f"HTTP {e.status_code}{hint}{': ' + detail if detail else ''}") from None
            attempt += 1
            pause = min(0.25 * 2 ** attempt, max(0.0, deadline - time.monotonic()))
            if pause > 0:
                time.sleep(pause)
    finally:
        client.close()


def _safe(url: str) -> str:
    """The URL without user:password@ and query string."""
    return re.sub(r"//[^/@]*@", "//", url).split("?")[0]


def _cause(e: Exception) -> str:
    """The one-line reason under an openai connection error (its own message is a bare 'Connection error.')."""
    inner = e.__cause__ or e
    return " ".join(str(inner).split())[:160]


def _error_detail(e) -> str:
    body = e.body
    err = body.get("error", body) if isinstance(body, dict) else body
    msg = err.get("message") if isinstance(err, dict) else err
    if msg is None:
        try:
            msg = e.response.text
        except Exception:
            msg = ""
    return " ".join(str(msg).split())[:200]


def _read_stream(stream, on_token, deadline, total, fail, state) -> str:
    """The deltas of an SSE stream. Connection errors go up to stream_chat, which may retry."""
    import openai

    out: list[str] = []
    events = 0
    try:
        for chunk in stream:
            if time.monotonic() > deadline:
                raise fail(f"still generating after {total:g} s (llm_timeout)")
            events += 1
            if not hasattr(chunk, "model_dump"):  # the event was JSON, but not an object
                raise fail(f"answered an event without choices: {json.dumps(chunk)[:80]!r}")
            choices = getattr(chunk, "choices", None)
            if not choices:
                continue
            choice = choices[0]
            delta = getattr(getattr(choice, "delta", None), "content", None)
            if delta is None:
                delta = getattr(choice, "text", None)  # completion-style servers
            if isinstance(delta, str) and delta:
                out.append(delta)
                state["tokens"] += 1
                if on_token is not None:
                    on_token(delta)
    except json.JSONDecodeError as e:
        raise fail(f"answered something that is not JSON: {e.doc[:80]!r}") from None
    except (openai.APIConnectionError, openai.APIStatusError):
        raise
    except openai.APIError as e:  # an {"error": ...} event in the stream
        raise fail(f"error: {e.message}") from None
    if not events:  # openai's reader ends at [DONE] and at the end of the body alike
        raise fail("the reply was empty: the stream held no data events")
    text = "".join(out)
    if not text.strip():
        raise fail("the reply was empty")
    return text


def _read_json(response, on_token, fail) -> str:
    """A server that ignores stream=true and answers one JSON object."""
    response.read()
    try:
        text = response.json()["choices"][0]["message"]["content"]
    except Exception:
        raise fail(f"answered something that is not a chat completion: {response.text[:80]!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise fail("the reply was empty")
    if on_token is not None:
        on_token(text)
    return text
