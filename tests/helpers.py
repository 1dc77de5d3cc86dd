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
