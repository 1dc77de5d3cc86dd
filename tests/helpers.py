"""What several test modules share: a real server on a free loopback port, and waiting for it."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def serve(settings, **kw):
    """The real server (rag.server) over `settings`, in this process, on a port the system picks; yields the
    running server (its .url, and .app.state.rag for the Library, Access and ChatApp). Start-up indexing runs in
    the background: wait on server.app.state.rag.chat.started where a test needs it."""
    from rag.server.app import Running, build

    app = build(settings, **kw)
    running = Running(app, "127.0.0.1", 0).start()
    running.app = app
    try:
        yield running
    finally:
        running.stop()


def gradio_event(http, elem_id: str, event: str, data: list, session_hash: str = "tests") -> tuple[bool, object]:
    """Fire a page event over HTTP exactly as the browser does (gradio's queue protocol), with `http` an httpx
    Client on the server's URL carrying the caller's cookies; return (success, the last output or the error).
    The event is the component's (by elem_id), or for "load", the page load that fills that component."""
    import json

    config = http.get("config").json()
    target = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    if event == "load":
        fn_index = next(d["id"] for d in config["dependencies"]
                        if any(t[1] == "load" for t in d["targets"]) and target in d["outputs"])
    else:
        fn_index = next(d["id"] for d in config["dependencies"] if [target, event] in [list(t) for t in d["targets"]])
    joined = http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "trigger_id": target,
                                                       "session_hash": session_hash, "event_data": None})
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}, timeout=600) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return bool(message.get("success")), output.get("data", output.get("error"))
    raise AssertionError(f"the event {elem_id}.{event} never completed")


def gradio_upload(http, paths) -> list[dict]:
    """Upload files to gradio's cache as the browser's upload button does; return them as the event's value."""
    from pathlib import Path

    files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
    uploaded = http.post("gradio_api/upload", files=files)
    uploaded.raise_for_status()
    return [{"path": path, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}}
            for path, p in zip(uploaded.json(), paths)]


def login(url: str, name: str, password: str):
    """An httpx Client logged in through POST /login (asserting that it worked)."""
    import httpx

    http = httpx.Client(base_url=url, timeout=120)
    response = http.post("login", data={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return http
