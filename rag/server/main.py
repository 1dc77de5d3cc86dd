"""`rag serve` (also `rag chat` and `python ui.py`): the server for the browser and the API, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys

from ..access import Access, check_exposure, no_auth_warning
from ..chat.uploads import MAX_UPLOAD_MB
from ..config import MODES, Settings
from ..errors import RagError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rag serve", description="The chat window and the HTTP API over your documents, "
                                                                 "with cited answers.")
    p.add_argument("--index", default=None, help="index folder of the default knowledge base, where the others are "
                                                 "listed (default: index/, or RAG_INDEX_DIR)")
    p.add_argument("--corpus", default=None, help="the default knowledge base's corpus folder (default: corpus/)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
                   help="port (default 7860, or GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--auth-file", default=None,
                   help="users who must log in (`rag user add`); needed beyond 127.0.0.1 (RAG_AUTH_FILE)")
    p.add_argument("--no-auth", action="store_true", help="no login even beyond 127.0.0.1: anyone who reaches it reads and adds")
    p.add_argument("--read-only", action="store_true", default=None, help="no uploads or re-indexing (RAG_READ_ONLY)")
    p.add_argument("--k", type=int, default=None, help="passages to retrieve (default 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default hybrid)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"largest accepted upload (default {MAX_UPLOAD_MB})")
    return p.parse_args(argv)


def main(argv=None, settings=None) -> int:
    """Serve until interrupted. `settings` (e.g. from `rag serve`) is the base; flags override it."""
    args = parse_args(argv)
    try:
        if args.share:
            raise RagError("--share is gone: the chat and the API are one server now, and gradio's share tunnel needs "
                           "the internet. Put it behind a reverse proxy (README: Sharing the chat with a team)")
        overrides = dict(index_dir=args.index, corpus_dir=args.corpus, k=args.k, mode=args.mode,
                         auth_file=args.auth_file, read_only=args.read_only)
        settings = Settings.from_env(**overrides) if settings is None else settings.replace(**overrides)
        access = Access.from_settings(settings)
        check_exposure(host=args.host, access=access, no_auth=args.no_auth)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.no_auth:
        print(no_auth_warning(args.host), file=sys.stderr)
    if access.users is not None:
        users = access.users.users().values()
        print(f"logins from {settings.auth_file}: {len(users)} user(s)" + (" (read-only: nobody adds documents)"
                                                                          if settings.read_only else ""), file=sys.stderr)
    from .app import Running, build

    app = build(settings, access=access, max_upload_mb=args.max_upload_mb)
    try:
        running = Running(app, args.host, args.port).start()
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"serving {running.url} (the chat; the API under /v1, its reference at /docs); knowledge bases listed "
          f"in {settings.index_dir}; indexing progress is shown on the page", file=sys.stderr, flush=True)
    try:
        running.thread.join()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
        running.stop()
    return 0
