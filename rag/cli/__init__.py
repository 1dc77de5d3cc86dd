"""`rag`: a thin command line over the library. Errors become one line and a non-zero exit.

  documents.py  index, status, search, ask: the documents and questions
  admin.py      user, kb, token: who may do what, the knowledge bases, and the API's tokens
  history.py    history, feedback: the conversations the chat kept, and the ratings of its answers

Exit codes: 0 success; 1 `rag index` finished but some files could not be indexed (listed);
2 an error stopped the command (its message says what to do); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys

from ..config import MODES, Settings
from ..errors import RagError, explain
from .admin import cmd_kb, cmd_token, cmd_user
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from .documents import cmd_ask, cmd_index, cmd_search, cmd_status
from .history import add_parsers as add_history_parsers
from .history import cmd_feedback, cmd_history

SETTINGS = {f.name for f in dataclasses.fields(Settings)}  # flags with these names become Settings


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", dest="index_dir", help="index folder (default: index/, RAG_INDEX_DIR)")
    common.add_argument("--model", help="sentence-transformers model name or path (RAG_MODEL)")
    common.add_argument("--quiet", "-q", action="store_true", default=None, help="no progress bars")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    one_kb = argparse.ArgumentParser(add_help=False)
    one_kb.add_argument("--kb", help="the knowledge base (default: default; rag kb list)")
    many_kbs = argparse.ArgumentParser(add_help=False)
    many_kbs.add_argument("--kb", dest="kbs", action="append",
                          help="knowledge base to search, repeatable: one ranking across them (RAG_KBS; default: default)")

    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("--k", type=int, help="passages to retrieve (RAG_K, default 5)")
    query.add_argument("--mode", choices=MODES, help="retrieval mode (RAG_MODE)")
    query.add_argument("--corpus", dest="corpus_dir", help="folder indexed on first use (default: corpus/)")
    query.add_argument("--llm-url", help="OpenAI-compatible server for generated answers (RAG_LLM_URL)")
    query.add_argument("--llm-model", help="model name on that server (RAG_LLM_MODEL)")

    parser = argparse.ArgumentParser(prog="rag", description="Question answering over your documents, with exact citations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common, one_kb], help="index files and folders (default: the KB's corpus folder)")
    p.add_argument("paths", nargs="*", help="files or folders (default: the KB's corpus folder, corpus/ for default)")
    p.add_argument("--password", action="append", dest="pdf_passwords", help="password for encrypted PDFs (repeatable)")
    p.add_argument("--no-prune", dest="prune", action="store_false", default=None,
                   help="keep documents whose files were deleted from an indexed folder")
    p.add_argument("--no-ocr", dest="ocr", action="store_false", default=None,
                   help="report scanned PDF pages and images instead of reading them with Tesseract (RAG_OCR=0)")
    p.add_argument("--no-pdf-tables", dest="pdf_tables", action="store_false", default=None,
                   help="keep PDF tables as pypdf writes them, not as rows with their column names: about 4x less CPU a "
                        "PDF page (RAG_PDF_TABLES=0); applies to files read from then on")
    p.add_argument("--rebuild", action="store_true", help="build a fresh index and swap it in (new model or chunking)")
    p.add_argument("--chunk-tokens", type=int, help="chunk size in model tokens (RAG_CHUNK_TOKENS)")
    p.add_argument("--overlap-tokens", type=int, help="sentence overlap between chunks, in tokens")
    p.add_argument("--ray", dest="ray_address", nargs="?", const="local", metavar="ADDRESS",
                   help="load, chunk and embed on a Ray cluster: auto (the one RAY_ADDRESS names), HOST:PORT, "
                        "ray://HOST:PORT, or nothing for one on this machine (RAG_RAY_ADDRESS; needs: pip install 'ray[data]')")
    p.add_argument("--ray-workers", type=int, help="embedding actors on the cluster (RAG_RAY_WORKERS; default: as work queues)")

    sub.add_parser("status", parents=[common, one_kb], help="what the index holds")

    p = sub.add_parser("search", parents=[common, query, many_kbs], help="ranked passages for a query")
    p.add_argument("query")

    p = sub.add_parser("ask", parents=[common, query, many_kbs], help="answer a question with cited sentences")
    p.add_argument("question")
    p.add_argument("--min-confidence", type=float,
                   help="abstain below this confidence, 0 to 1 (RAG_MIN_CONFIDENCE)")

    p = sub.add_parser("serve", aliases=["chat"], parents=[common, query],
                       help="the chat window and the HTTP API, on one port (same as python ui.py)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--share", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--auth-file", help="users who must log in (rag user add); needed beyond 127.0.0.1 (RAG_AUTH_FILE)")
    p.add_argument("--no-auth", action="store_true", help="no login even beyond 127.0.0.1")
    p.add_argument("--read-only", action="store_true", default=None, help="no uploads or re-indexing")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload (default 50)")

    users_file = argparse.ArgumentParser(add_help=False)
    users_file.add_argument("--auth-file", help="the users file (RAG_AUTH_FILE)")
    users_file.add_argument("--index", dest="index_dir", help="the default index folder, where the KBs are listed "
                                                               "(default: index/, RAG_INDEX_DIR)")
    p = sub.add_parser("user", help="who may log in to the chat: add, remove, list")
    users = p.add_subparsers(dest="action", required=True)
    q = users.add_parser("add", parents=[users_file], help="add a user, or set a new password and roles")
    q.add_argument("name")
    q.add_argument("--can-upload", action="store_true", help="may also add documents and re-index, in every KB")
    q.add_argument("--kb", dest="grants", action="append", metavar="KB:ROLE",
                   help="a role in one knowledge base (hr:ask, eng:upload), repeatable; then no other KB")
    q.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts) instead of asking")
    q = users.add_parser("remove", parents=[users_file], help="remove a user")
    q.add_argument("name")
    q = users.add_parser("grant", parents=[users_file], help="give a user a role in knowledge bases")
    q.add_argument("name")
    q.add_argument("--kb", dest="grant_kbs", action="append", required=True, help="knowledge base, repeatable")
    q.add_argument("--role", choices=("ask", "upload"), default="ask", help="ask (default) or upload")
    q = users.add_parser("revoke", parents=[users_file], help="take knowledge bases away from a user")
    q.add_argument("name")
    q.add_argument("--kb", dest="grant_kbs", action="append", required=True, help="knowledge base, repeatable")
    users.add_parser("list", parents=[users_file], help="names and roles per knowledge base (never passwords)")

    p = sub.add_parser("kb", help="knowledge bases: create, list, remove")
    kbs = p.add_subparsers(dest="action", required=True)
    q = kbs.add_parser("create", parents=[users_file], help="a new knowledge base with its own corpus folder and index")
    q.add_argument("name")
    q.add_argument("--corpus", dest="kb_corpus", help="its corpus folder (default: INDEX/kbs/NAME/corpus)")
    q = kbs.add_parser("list", parents=[users_file], help="documents, chunks, size on disk and readers of each")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q = kbs.add_parser("remove", parents=[users_file], help="remove a knowledge base and its index (not its corpus)")
    q.add_argument("name")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("token", help="API tokens for scripts and other tools: create, list, revoke")
    tokens = p.add_subparsers(dest="action", required=True)
    q = tokens.add_parser("create", parents=[users_file], help="a new token, printed once (only its hash is kept)")
    q.add_argument("name", help="what the token is for, e.g. open-webui")
    q.add_argument("--user", help="whose rights it carries (needed with logins); it never has more")
    q.add_argument("--kb", dest="token_kbs", action="append", help="only this knowledge base, repeatable (default: "
                                                                  "whatever its user may read)")
    q = tokens.add_parser("list", parents=[users_file], help="names, users, KBs and last use (never the tokens)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q = tokens.add_parser("revoke", parents=[users_file], help="refuse a token from its next request on")
    q.add_argument("name")
    add_history_parsers(sub, users_file)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k in SETTINGS}
    settings = None
    try:
        settings = Settings.from_env(**options)
        return COMMANDS[args.command](args, settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, sqlite3.Error) as e:  # an unwritable folder, a full disk, a damaged database
        print(f"error: {explain(e, settings.index_dir if settings else None)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: the index keeps its last committed state", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_chat(args, settings: Settings) -> int:
    from ..server import main as chat_main

    argv = []
    for flag, value in (("--host", args.host), ("--port", args.port), ("--max-upload-mb", args.max_upload_mb)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, on in (("--share", args.share), ("--no-auth", args.no_auth)) if on]
    return chat_main(argv, settings=settings) or EXIT_OK


COMMANDS = {"index": cmd_index, "status": cmd_status, "search": cmd_search, "ask": cmd_ask, "serve": cmd_chat,
            "chat": cmd_chat, "user": cmd_user, "kb": cmd_kb, "history": cmd_history, "feedback": cmd_feedback,
            "token": cmd_token}

if __name__ == "__main__":
    sys.exit(main())
