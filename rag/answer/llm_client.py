"""The client for OpenAI-compatible chat servers (Ollama, llama.cpp, vLLM, LM Studio, OpenAI): one
streaming POST with an overall deadline, retries while nothing has streamed, one-line errors.

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
    """POST a streaming chat completion and return the whole reply, calling on_token per delta.

    settings.llm_timeout bounds the whole call: connecting, waiting for the first token, and the
    generation itself (checked after every streamed line). Connection failures and 408/429/5xx
    answers are retried (with a short back-off) while no token has arrived and time is left.
    Raises LLMError with a one-line reason; never prints or logs the API key."""
    import httpx

    url = chat_url(settings.llm_url)
    total = float(settings.llm_timeout)
    if total <= 0:
        raise LLMError(f"llm_timeout must be positive, not {total}")
    deadline = time.monotonic() + total
    headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key}"
    body = {"messages": messages, "stream": True, "max_tokens": int(max_tokens), "temperature": temperature}
    if settings.llm_model:
        body["model"] = settings.llm_model
    secret = settings.llm_api_key

    def fail(reason: str) -> LLMError:
        reason = " ".join(str(reason).split())
        if secret:
            reason = reason.replace(secret, "***")
        return LLMError(f"language model at {_safe(url)}: {reason}")

    attempt, state = 0, {"tokens": 0}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise fail(f"no complete reply within {total:g} s (llm_timeout)")
        timeout = httpx.Timeout(left, connect=min(left, 10.0))
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True) as client:
                with client.stream("POST", url, json=body, headers=headers) as r:
                    if r.status_code >= 400:
                        if r.status_code in _RETRY_STATUS and attempt < retries:
                            raise _Retry(f"HTTP {r.status_code}")
                        detail = _error_detail(r)
                        hint = " (check RAG_LLM_API_KEY)" if r.status_code in (401, 403) else ""
                        raise fail(f"HTTP {r.status_code}{hint}{': ' + detail if detail else ''}")
                    ctype = r.headers.get("content-type", "")
                    if "event-stream" in ctype:
                        return _read_sse(r, on_token, deadline, total, fail, state)
                    return _read_json(r, on_token, fail)
        except _Retry as e:
            last = str(e)
        except httpx.ConnectTimeout:
            raise fail(f"could not connect within {min(total, 10.0):g} s") from None
        except httpx.ConnectError as e:
            if attempt >= retries:
                raise fail(f"cannot connect ({_short(e) or 'connection refused'}); is the server running?") from None
            last = "connect"
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            raise fail(f"no reply within {total:g} s (llm_timeout)") from None
        except httpx.RemoteProtocolError as e:
            if state["tokens"] or attempt >= retries:
                raise fail(f"the connection broke off ({_short(e)})") from None
            last = "protocol"
        except httpx.HTTPError as e:
            raise fail(f"{type(e).__name__}: {_short(e)}") from None
        attempt += 1
        pause = min(0.25 * 2 ** attempt, max(0.0, deadline - time.monotonic()))
        if last and pause > 0:
            time.sleep(pause)


class _Retry(Exception):
    pass


def _safe(url: str) -> str:
    """The URL without user:password@ and query string."""
    return re.sub(r"//[^/@]*@", "//", url).split("?")[0]


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:160]


def _error_detail(r) -> str:
    try:
        r.read()
        data = r.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        return " ".join(str(msg).split())[:200]
    except Exception:
        try:
            return " ".join(r.text.split())[:200]
        except Exception:
            return ""


def _read_sse(r, on_token, deadline, total, fail, state) -> str:
    out: list[str] = []
    saw_data = False
    for line in r.iter_lines():
        if time.monotonic() > deadline:
            raise fail(f"still generating after {total:g} s (llm_timeout)")
        line = line.strip()
        if not line or line.startswith(":") or not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            saw_data = True
            break
        try:
            event = json.loads(payload)
        except ValueError:
            raise fail(f"answered something that is not JSON: {payload[:80]!r}") from None
        if isinstance(event, dict) and event.get("error"):
            err = event["error"]
            raise fail(f"error: {err.get('message', err) if isinstance(err, dict) else err}")
        try:
            choice = event["choices"][0] if event.get("choices") else {}
        except (TypeError, KeyError, AttributeError):
            raise fail(f"answered an event without choices: {payload[:80]!r}") from None
        saw_data = True
        delta = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
        if delta is None and isinstance(choice, dict):
            delta = choice.get("text")  # completion-style servers
        if delta:
            out.append(delta)
            state["tokens"] += 1
            if on_token is not None:
                on_token(delta)
    if not saw_data:
        raise fail("the stream held no data events")
    text = "".join(out)
    if not text.strip():
        raise fail("the reply was empty")
    return text


def _read_json(r, on_token, fail) -> str:
    """A server that ignores stream=true and answers one JSON object."""
    r.read()
    try:
        data = r.json()
        text = data["choices"][0]["message"]["content"]
    except Exception:
        raise fail(f"answered something that is not a chat completion: {r.text[:80]!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise fail("the reply was empty")
    if on_token is not None:
        on_token(text)
    return text
