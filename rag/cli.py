"""`rag`: a thin command line over the library. Errors become one line and a non-zero exit.

Exit codes: 0 success; 1 `rag index` finished but some files could not be indexed (listed);
2 an error stopped the command (its message says what to do); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from .config import MODES, Settings
from .errors import AccessError, RagError
from .model import LOW_CONFIDENCE

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
SETTINGS = {f.name for f in dataclasses.fields(Settings)}  # flags with these names become Settings
UNITS = {"reading": "file", "cluster": "file", "ocr": "page"}  # what each progress stage counts; the rest count chunks


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", dest="index_dir", help="index folder (default: index/, RAG_INDEX_DIR)")
    common.add_argument("--model", help="sentence-transformers model name or path (RAG_MODEL)")
    common.add_argument("--quiet", "-q", action="store_true", default=None, help="no progress bars")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("--k", type=int, help="passages to retrieve (RAG_K, default 5)")
    query.add_argument("--mode", choices=MODES, help="retrieval mode (RAG_MODE)")
    query.add_argument("--corpus", dest="corpus_dir", help="folder indexed on first use (default: corpus/)")
    query.add_argument("--llm-url", help="OpenAI-compatible server for generated answers (RAG_LLM_URL)")
    query.add_argument("--llm-model", help="model name on that server (RAG_LLM_MODEL)")

    parser = argparse.ArgumentParser(prog="rag", description="Question answering over your documents, with exact citations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="index files and folders (default: corpus/)")
    p.add_argument("paths", nargs="*", help="files or folders (default: corpus/)")
    p.add_argument("--password", action="append", dest="pdf_passwords", help="password for encrypted PDFs (repeatable)")
    p.add_argument("--no-prune", dest="prune", action="store_false", default=None,
                   help="keep documents whose files were deleted from an indexed folder")
    p.add_argument("--no-ocr", dest="ocr", action="store_false", default=None,
                   help="report scanned PDF pages and images instead of reading them with Tesseract (RAG_OCR=0)")
    p.add_argument("--rebuild", action="store_true", help="build a fresh index and swap it in (new model or chunking)")
    p.add_argument("--chunk-tokens", type=int, help="chunk size in model tokens (RAG_CHUNK_TOKENS)")
    p.add_argument("--overlap-tokens", type=int, help="sentence overlap between chunks, in tokens")
    p.add_argument("--ray", dest="ray_address", nargs="?", const="local", metavar="ADDRESS",
                   help="load, chunk and embed on a Ray cluster: auto (the one RAY_ADDRESS names), HOST:PORT, "
                        "ray://HOST:PORT, or nothing for one on this machine (RAG_RAY_ADDRESS; needs: pip install 'ray[data]')")
    p.add_argument("--ray-workers", type=int, help="embedding actors on the cluster (RAG_RAY_WORKERS; default: as work queues)")

    sub.add_parser("status", parents=[common], help="what the index holds")

    p = sub.add_parser("search", parents=[common, query], help="ranked passages for a query")
    p.add_argument("query")

    p = sub.add_parser("ask", parents=[common, query], help="answer a question with cited sentences")
    p.add_argument("question")
    p.add_argument("--min-confidence", type=float,
                   help="abstain below this confidence, 0 to 1 (RAG_MIN_CONFIDENCE)")

    p = sub.add_parser("chat", parents=[common, query], help="open the chat window")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs --auth-file)")
    p.add_argument("--auth-file", help="users who must log in (rag user add); needed beyond 127.0.0.1 (RAG_AUTH_FILE)")
    p.add_argument("--no-auth", action="store_true", help="no login even beyond 127.0.0.1")
    p.add_argument("--read-only", action="store_true", default=None, help="no uploads or re-indexing from the page")
    p.add_argument("--max-upload-mb", type=float, help="largest accepted upload, in MB (default 50)")

    users_file = argparse.ArgumentParser(add_help=False)
    users_file.add_argument("--auth-file", help="the users file (RAG_AUTH_FILE)")
    p = sub.add_parser("user", help="who may log in to the chat: add, remove, list")
    users = p.add_subparsers(dest="action", required=True)
    q = users.add_parser("add", parents=[users_file], help="add a user, or set a new password and role")
    q.add_argument("name")
    q.add_argument("--can-upload", action="store_true", help="may also add documents and re-index")
    q.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts) instead of asking")
    q = users.add_parser("remove", parents=[users_file], help="remove a user")
    q.add_argument("name")
    users.add_parser("list", parents=[users_file], help="names and roles (never passwords)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k in SETTINGS}
    try:
        settings = Settings.from_env(**options)
        return COMMANDS[args.command](args, settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: the index keeps its last committed state", file=sys.stderr)
        return EXIT_INTERRUPTED


def _progress(settings: Settings):
    """tqdm bars per stage, or nothing with --quiet."""
    if settings.quiet:
        return None, lambda: None
    from tqdm import tqdm

    bars = {}

    def update(stage, done, total):
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:<9}", unit=UNITS.get(stage, "chunk"),
                                     file=sys.stderr, position=len(bars), dynamic_ncols=True)
        bar.total = max(total, done)
        bar.n = done
        bar.refresh()

    return update, lambda: [bar.close() for bar in bars.values()]


def _quiet_libraries(settings: Settings) -> None:
    if settings.quiet:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def cmd_index(args, settings: Settings) -> int:
    from .index import Index

    _quiet_libraries(settings)
    index = Index.open(settings=settings)
    progress, close = _progress(settings)
    try:
        if args.rebuild:
            report = index.rebuild(args.paths or None, progress)
        else:
            report = index.add(args.paths or None, progress)
    finally:
        close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"indexed {len(report.added)} file(s), {report.unchanged} unchanged, {len(report.removed)} removed; "
              f"{report.chunks} chunks written, {report.embedded} embedded, in {report.seconds:.1f}s")
        if report.skipped:
            print(f"skipped {len(report.skipped)} file(s) of unsupported type")
        if report.failed:
            print(f"{len(report.failed)} file(s) could not be indexed:")
            for e in report.failed:
                print(f"  {e.where}: {e.reason}")
    return EXIT_OK if report.ok else EXIT_SOME_FAILED


def cmd_status(args, settings: Settings) -> int:
    from .index import Index

    status = Index.open(settings=settings, create=False).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    print(f"index      {status['index']}")
    print(f"documents  {status['documents']} in {status['files']} file(s), {status['pages']} PDF page(s)")
    print(f"chunks     {status['chunks']}")
    print(f"model      {status['model']} (dim {status['dim']}), chunks of {status['chunk_tokens']} tokens")
    print(f"vectors    {status['vectors'] or 'none yet'} (float, int8 or both: see docs/ENGINES.md)")
    print(f"size       {status['size_bytes'] / 1e6:.1f} MB on disk")
    if status["failed"]:
        print(f"failed     {len(status['failed'])} file(s):")
        for f in status["failed"]:
            print(f"  {f['path']}: {f['reason']}")
    return EXIT_OK


def _open_for_query(settings: Settings):
    from .index import default_index

    _quiet_libraries(settings)
    return default_index(settings)


def cmd_search(args, settings: Settings) -> int:
    hits = _open_for_query(settings).search(args.query, settings.k, settings.mode)
    if args.json:
        keys = ("doc_id", "source", "page", "start", "end", "score", "text")
        print(json.dumps([{k: getattr(h, k) for k in keys} for h in hits], indent=2, ensure_ascii=False))
        return EXIT_OK
    for rank, h in enumerate(hits, 1):
        page = f" p.{h.page}" if h.page else ""
        print(f"{rank}. {h.source}{page} chars {h.start}-{h.end}  score {h.score:.3f}  [{h.doc_id}]")
        print("   " + " ".join(h.text.split())[:300])
    return EXIT_OK


def cmd_ask(args, settings: Settings) -> int:
    from .answer import ask

    index = _open_for_query(settings)
    streamed = []

    def show(token):  # the model's draft, as it comes; the verified answer follows it
        streamed.append(token)
        print(token, end="", flush=True)

    answer = ask(args.question, index=index, settings=settings,
                 on_token=show if settings.llm_url and not args.json else None)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    if streamed:
        print()
        print("verified:" if answer.mode == "generative" else "extractive answer:")
    print(answer.text)
    print(f"confidence {answer.confidence:.2f}" + (f" (below {LOW_CONFIDENCE:.2f}: low)" if not answer.abstained
                                                   and answer.confidence < LOW_CONFIDENCE else ""))
    if answer.note:
        print(f"({answer.note})")
    for c in answer.citations:
        page = f" p.{c.page}" if c.page else ""
        read = " (OCR)" if c.ocr else ""
        print(f"[{c.n}] {c.source}{page}{read} chars {c.start}-{c.end}: \"{c.text}\"")
    if answer.abstained and answer.passages:
        print("Related passages:")
        for h in answer.passages[:3]:
            page = f" p.{h.page}" if h.page else ""
            print(f"  {h.source}{page} chars {h.start}-{h.end}: \"{' '.join(h.text.split())[:160]}...\"")
    return EXIT_OK


def cmd_chat(args, settings: Settings) -> int:
    from .chat import main as chat_main

    argv = []
    for flag, value in (("--host", args.host), ("--port", args.port), ("--max-upload-mb", args.max_upload_mb)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, on in (("--share", args.share), ("--no-auth", args.no_auth)) if on]
    return chat_main(argv, settings=settings) or EXIT_OK


def cmd_user(args, settings: Settings) -> int:
    from . import users

    path = settings.auth_file
    if path is None:
        raise AccessError("which users file? pass --auth-file FILE or set RAG_AUTH_FILE")
    if args.action == "add":
        users.check_name(args.name)
        replaced = users.add_user(path, args.name, _read_password(args.password_stdin), can_upload=args.can_upload)
        role = "ask and add documents" if args.can_upload else "ask"
        print(f"{'updated' if replaced else 'added'} {args.name} in {path}: may {role}")
    elif args.action == "remove":
        users.remove_user(path, args.name)
        print(f"removed {args.name} from {path} (a chat already running refuses their next login; "
              "restart it to end a session already open)")
    else:
        for user in users.read_users(path).values():
            print(f"{user.name}\t{user.role}")
    return EXIT_OK


def _read_password(from_stdin: bool) -> str:
    """From stdin (one line) for scripts, else asked twice on the terminal, never echoed."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)  # getpass would echo: refuse instead
            password = getpass.getpass("password: ")
            again = getpass.getpass("again: ")
    except (getpass.GetPassWarning, EOFError):
        raise AccessError("no terminal to ask for the password without echo: pipe it in with --password-stdin") from None
    if again != password:
        raise AccessError("the two passwords differ: nothing was changed")
    return password


COMMANDS = {"index": cmd_index, "status": cmd_status, "search": cmd_search, "ask": cmd_ask, "chat": cmd_chat,
            "user": cmd_user}

if __name__ == "__main__":
    sys.exit(main())
