"""The LLM client on the `openai` package against the hand-written httpx client it replaced.

Usage:  .venv/bin/python bench/llm_client.py [--old REV] [--calls N] [--fake-calls N] [--no-server]

1. behaviours: every misbehaving loopback server of tests/test_generate.py (and a few more), each
   answered by three clients: the hand-written httpx client (rag/answer/llm_client.py at git REV),
   the openai client as this project uses it (rag.answer.llm_client), and openai used the stock
   way (OpenAI(timeout=llm_timeout, max_retries=2), iterate the stream, typed errors);
2. per-call latency: on a loopback server that answers at once (client overhead alone) and on a
   real llama.cpp server with SmolLM2-135M (started here unless --no-server), calls interleaved;
3. import time (fresh interpreters, median of 5) and installed size of openai and what it adds.
Writes bench/results/llm_client.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.errors import LLMError  # noqa: E402

KEY = "k-123-secret"
MESSAGES = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}]


# ------------------------------------------------------------------------------ a scripted server
class Fake:
    """Loopback server; each POST takes the next scripted step (see Handler.do_POST)."""

    def __init__(self):
        self.script, self.requests, self.stop = [], [], threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": json.loads(body or b"{}")})
                step = fake.script.pop(0) if fake.script else ("sse", ["Paris", " is", " the", " capital", "."])
                kind = step[0]
                if kind == "status":  # ("status", code[, retry_after])
                    self.send_response(step[1])
                    self.send_header("Content-Type", "application/json")
                    if len(step) > 2:
                        self.send_header("Retry-After", str(step[2]))
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"scripted {step[1]}"}}).encode())
                elif kind == "sse":  # the whole stream in one write: no network waits, client cost alone
                    self.head("text/event-stream")
                    events = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': d}}]})}\n\n"
                              for d in step[1]]
                    self.wfile.write(("".join(events) + "data: [DONE]\n\n").encode())
                elif kind == "json":
                    self.head("application/json")
                    self.wfile.write(json.dumps({"choices": [{"message": {"role": "assistant",
                                                                          "content": step[1]}}]}).encode())
                elif kind == "raw":
                    self.head(step[1])
                    self.wfile.write(step[2].encode())
                elif kind == "hang":
                    fake.stop.wait(30)
                elif kind == "drip":
                    self.head("text/event-stream")
                    for _ in range(150):
                        if fake.stop.wait(0.2):
                            break
                        try:
                            self.event({"choices": [{"index": 0, "delta": {"content": " word"}}]})
                        except OSError:
                            break
                elif kind == "broken":  # two tokens, then the connection drops mid-stream
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.event({"choices": [{"index": 0, "delta": {"content": "Paris"}}]})
                    self.event({"choices": [{"index": 0, "delta": {"content": " is"}}]})
                    self.close_connection = True
                elif kind == "drop":  # closes the connection without any response
                    self.close_connection = True

            def head(self, ctype):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.end_headers()

            def event(self, obj):
                self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ the clients
def old_client(rev: str):
    """stream_chat of rag/answer/llm_client.py at git revision rev (the hand-written httpx client)."""
    src = subprocess.run(["git", "show", f"{rev}:rag/answer/llm_client.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType("rag.answer._llm_client_old")
    mod.__package__ = "rag.answer"
    mod.__file__ = f"<{rev}:rag/answer/llm_client.py>"
    sys.modules[mod.__name__] = mod
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod.stream_chat


def stock_openai(messages, settings, on_token=None, max_tokens=400, retries=2, temperature=0.0):
    """openai used the stock way: its own timeout and retries, its typed errors, nothing added."""
    import openai

    from rag.answer.llm_client import chat_url

    base = chat_url(settings.llm_url)[: -len("/chat/completions")]
    with openai.OpenAI(base_url=base, api_key=settings.llm_api_key or "none", timeout=settings.llm_timeout,
                       max_retries=retries) as client:
        stream = client.chat.completions.create(model=settings.llm_model or "", messages=messages, stream=True,
                                                max_tokens=max_tokens, temperature=temperature)
        out = []
        for chunk in stream:
            d = chunk.choices[0].delta.content if chunk.choices else None
            if d:
                out.append(d)
                if on_token:
                    on_token(d)
        return "".join(out)


# ------------------------------------------------------------------------------------- behaviours
#  name, script, llm_timeout, what the project's tests (or the client's contract) require
SCENARIOS = [
    ("streamed reply", [("sse", ["Paris", " is", " the", " capital", "."])], 20, "the text"),
    ("503, then a reply", [("status", 503), ("sse", ["Paris."])], 20, "retried: the text"),
    ("401", [("status", 401)], 20, "LLMError 'HTTP 401'"),
    ("404", [("status", 404)], 20, "LLMError 'HTTP 404'"),
    ("SSE data not JSON", [("raw", "text/event-stream", "data: <html>oops</html>\n\n")], 20, "LLMError 'not JSON'"),
    ("HTML page", [("raw", "text/html", "<html>hello</html>")], 20, "LLMError 'not a chat completion'"),
    ("only [DONE]", [("raw", "text/event-stream", "data: [DONE]\n\n")], 20, "LLMError 'empty'"),
    ("no data events", [("raw", "text/event-stream", "\n\n")], 20, "LLMError 'no data'"),
    ("error event", [("raw", "text/event-stream", 'data: {"error": {"message": "model not loaded"}}\n\n')], 20,
     "LLMError 'model not loaded'"),
    ("JSON, not SSE", [("json", "Paris is the capital.")], 20, "the text"),
    ("silent server", [("hang",)] * 3, 1.0, "LLMError 'within 1 s' after ~1 s"),
    ("endless stream", [("drip",)], 1.5, "LLMError 'still generating' after ~1.5 s"),
    ("connection refused", "refused", 20, "LLMError 'cannot connect', fast"),
    ("stream breaks off", [("broken",)], 20, "LLMError 'broke off'"),
    ("drop, then a reply", [("drop",), ("sse", ["Paris."])], 20, "retried: the text"),
    ("429 Retry-After 10", [("status", 429, 10), ("sse", ["Paris."])], 2.0, "done within llm_timeout 2 s"),
    ("503 every time", [("status", 503)] * 3, 20, "LLMError 'HTTP 503' after 2 retries"),
]


def run_scenarios(clients: dict) -> list[dict]:
    rows = []
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    for name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name, script, timeout, want in SCENARIOS:
        row = {"scenario": name, "want": want}
        for label, fn in clients.items():
            fake = Fake()
            url = f"http://127.0.0.1:{free_port()}" if script == "refused" else fake.url
            fake.script = [] if script == "refused" else list(script)
            s = Settings(llm_url=url, llm_api_key=KEY, llm_timeout=timeout)
            t0 = time.monotonic()
            try:
                out = "ok: " + repr(fn(MESSAGES, s)[:30])
            except LLMError as e:
                out = f"LLMError: {str(e).split(': ', 1)[1]}"
            except Exception as e:  # noqa: BLE001  (the stock client's own errors)
                out = f"{type(e).__name__}: {' '.join(str(e).split())}"
            took = time.monotonic() - t0
            fake.close()
            leaked = KEY in out
            row[label] = {"out": out[:90], "s": took, "leak": leaked,
                          "requests": 0 if script == "refused" else len(fake.requests)}
            print(f"{name:22s} {label:10s} {took:6.2f}s  {out[:100]}", flush=True)
        rows.append(row)
    for name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(logging.WARNING)
    return rows, KEY in log.getvalue(), len(log.getvalue().splitlines())


# ------------------------------------------------------------------------------------------ timing
def interleaved(clients: dict, settings: Settings, n: int, max_tokens: int) -> dict:
    """n calls per client, in ABBA order; wall time, time to first token, and this process's CPU time
    per call (robust to load on the server: the client's own cost)."""
    rows = {k: [] for k in clients}
    texts = {k: set() for k in clients}
    for fn in clients.values():  # warm-up: imports, the server's prompt cache
        fn(MESSAGES, settings, max_tokens=max_tokens)
    for i in range(n):
        order = list(clients.items())
        for label, fn in (order if i % 2 == 0 else order[::-1]):
            first = []
            t0, c0 = time.perf_counter(), time.process_time()
            text = fn(MESSAGES, settings, max_tokens=max_tokens,
                      on_token=lambda d: first or first.append(time.perf_counter()))
            rows[label].append((time.perf_counter() - t0, first[0] - t0, time.process_time() - c0))
            texts[label].add(text)
    med = statistics.median
    return {k: {"wall": med(r[0] for r in v), "ttft": med(r[1] for r in v), "cpu": med(r[2] for r in v),
                "n": len(v), "texts": texts[k]} for k, v in rows.items()}


def start_llama():
    sys.path.insert(0, str(ROOT / "tests"))
    from llm_server import smollm2_gguf

    model = smollm2_gguf()
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        model = None
    if not model:
        return None, None
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "llm_server.py"), "--model", model, "--host",
                             "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose",
                             "False"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                return None, None
            time.sleep(0.5)
    proc.kill()
    return None, None


def import_time(module: str, after: str = "", runs: int = 5) -> float:
    """Seconds to import module in a fresh interpreter, after importing `after` (what the caller has loaded)."""
    code = f"{after}; import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    vals = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(runs)]
    return statistics.median(vals)


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(names) -> set[str]:
    """The installed distributions that names need, transitively (extras not followed)."""
    import re

    seen, todo = set(), [norm(n) for n in names]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        seen.add(n)
        for r in reqs:
            if "extra ==" not in r:
                todo.append(norm(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]))
    return seen


def dist_size(name: str) -> float:
    d = md.distribution(name)
    return sum((d.locate_file(f).stat().st_size for f in d.files or [] if d.locate_file(f).is_file()), 0) / 1e6


def base_dependencies() -> list[str]:
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[\s<>=!~;\[(]", d, maxsplit=1)[0] for d in deps]


NOTES = """## Reading

- openai used the stock way gets 7 of the 17 servers wrong: it returns an empty reply, without an
  error, for an HTML page, a stream with no data events or only [DONE], and for a server that answers
  one JSON object to stream=true; its timeout bounds each read, not the call, and it retries read
  timeouts, so a silent server takes about three times llm_timeout, an endless stream is never cut
  off, and a Retry-After of up to two minutes is slept through whatever llm_timeout says.
- rag.answer.llm_client closes each gap in a few lines on top of openai: the content type is checked
  before the stream is read, zero events is an error, the client is built with max_retries=0 and
  its own loop retries (each attempt gets only the time that is left), and the deadline is checked
  at every event. The one message it cannot keep apart: openai's reader stops at [DONE] and at the
  end of the body alike, so "only [DONE]" and "no data events" get the same message, which names both.
- Wall times on this shared 2-core machine vary by seconds from call to call; the CPU column is the
  client's own cost. The first call in a process also pays `import openai` (the `streamed reply`
  row: it is the first call the openai client makes in this run).
"""


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="bd0a135", help="git revision holding the hand-written httpx client")
    ap.add_argument("--calls", type=int, default=20, help="calls per client against the real server")
    ap.add_argument("--fake-calls", type=int, default=200, help="calls per client against the loopback server")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--no-server", action="store_true")
    args = ap.parse_args(argv)

    from rag.answer.llm_client import stream_chat

    httpx_client = old_client(args.old)
    clients = {"httpx": httpx_client, "openai": stream_chat, "stock": stock_openai}
    rows, key_in_log, log_lines = run_scenarios(clients)

    fake = Fake()
    fake_t = interleaved({"httpx": httpx_client, "openai": stream_chat},
                         Settings(llm_url=fake.url, llm_api_key=KEY, llm_timeout=20), args.fake_calls, 8)
    fake.close()
    real_t = None
    if not args.no_server:
        proc, url = start_llama()
        if url:
            try:
                real_t = interleaved({"httpx": httpx_client, "openai": stream_chat},
                                     Settings(llm_url=url, llm_timeout=300), args.calls, args.max_tokens)
            finally:
                proc.terminate()
                proc.wait(30)

    contexts = {"a bare interpreter": "pass",
                "`rag ask` (sentence_transformers loaded)": "import sentence_transformers",
                "the chat UI (gradio loaded)": "import gradio"}
    imports = {(m, c): import_time(m, after) for c, after in contexts.items() for m in ("httpx", "openai")}
    base = closure(base_dependencies())
    added = sorted(closure(["openai"]) - base)
    added_httpx = sorted(closure(["httpx"]) - base)

    w = []
    w.append("# LLM client: `openai` package vs the hand-written httpx client\n")
    w.append(f"Measured by `bench/llm_client.py` on {time.strftime('%Y-%m-%d')}, openai {md.version('openai')}, "
             f"httpx {md.version('httpx')}, Python {sys.version.split()[0]}, {os.cpu_count()} cores shared with "
             "other work (absolute times are noisy; the calls are interleaved so both clients see the same load). "
             f"The hand-written client is `rag/answer/llm_client.py` at {args.old}.\n")
    w.append("## Behaviours\n")
    w.append("Loopback servers that misbehave on purpose (those of tests/test_generate.py and four more). "
             "*stock* is openai used the plain way: `OpenAI(timeout=llm_timeout, max_retries=2)`, iterate the "
             "stream, its typed errors. Seconds in brackets.\n")
    w.append("| server | required | hand-written httpx | openai, as rag uses it | openai, stock |")
    w.append("|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]['out']} ({r[k]['s']:.1f} s{', KEY LEAKED' if r[k]['leak'] else ''})".replace("|", "\\|")
                 for k in ("httpx", "openai", "stock")]
        w.append(f"| {r['scenario']} | {r['want']} | " + " | ".join(cells) + " |")
    w.append(f"\nThe API key appears in no message above; with the openai/httpx loggers at DEBUG "
             f"({log_lines} lines logged) it {'DOES' if key_in_log else 'does not'} appear in the log.\n")
    w.append("## Latency per call\n")
    w.append("Medians; ABBA order. *CPU* is this process's CPU time per call, the client's own cost "
             "whatever the load on the server (for the loopback server it includes the server thread, the same for both).\n")
    w.append("| server | calls per client | httpx: wall / first token / CPU | openai: wall / first token / CPU | "
             "openai - httpx: wall / CPU | same replies |")
    w.append("|---|---|---|---|---|---|")

    def line(name, t):
        a, b = t["httpx"], t["openai"]
        return (f"| {name} | {a['n']} | {a['wall'] * 1e3:.0f} / {a['ttft'] * 1e3:.0f} / {a['cpu'] * 1e3:.1f} ms | "
                f"{b['wall'] * 1e3:.0f} / {b['ttft'] * 1e3:.0f} / {b['cpu'] * 1e3:.1f} ms | "
                f"{(b['wall'] - a['wall']) * 1e3:+.0f} / {(b['cpu'] - a['cpu']) * 1e3:+.1f} ms | "
                f"{'yes' if a['texts'] == b['texts'] else 'no'} |")

    w.append(line("loopback, answers at once (5 deltas)", fake_t))
    if real_t:
        w.append(line(f"llama.cpp SmolLM2-135M, max_tokens={args.max_tokens}", real_t))
    else:
        w.append("| llama.cpp | not measured (no server) | | | | |")
    w.append("\n## Import time and size\n")
    w.append("| | value |")
    w.append("|---|---|")
    for (m, c), t in imports.items():
        w.append(f"| `import {m}` in {c}, median of 5 fresh interpreters | {t * 1e3:.0f} ms |")
    for d in added:
        w.append(f"| installed size of {d} (openai needs it; the base dependencies do not) | {dist_size(d):.2f} MB |")
    w.append(f"| installed size of everything openai adds to the base install | "
             f"{sum(dist_size(d) for d in added):.2f} MB |")
    w.append(f"| installed size of what httpx (the old `llm` extra) adds to the base install | "
             f"{sum(dist_size(d) for d in added_httpx):.2f} MB ({', '.join(added_httpx) or 'nothing: gradio needs httpx'}) |")
    w.append(f"| openai's own dependencies | {', '.join(sorted(closure(['openai']) - {'openai'}))} |")
    w.append("\n" + NOTES)
    out = ROOT / "bench" / "results" / "llm_client.md"
    out.write_text("\n".join(w) + "\n", encoding="utf-8")
    print("\n".join(w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
