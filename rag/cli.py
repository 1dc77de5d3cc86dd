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


def _kb_settings(args, settings: Settings) -> Settings:
    """The settings of the KB named by --kb (its corpus and index folders), or the default KB's."""
    if not args.kb:
        return settings
    from .kb import Library

    return Library.open(settings).settings_for(args.kb)


def cmd_index(args, settings: Settings) -> int:
    from .index import Index

    _quiet_libraries(settings)
    index = Index.open(settings=_kb_settings(args, settings))
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

    status = Index.open(settings=_kb_settings(args, settings), create=False).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    print(f"index      {status['index']}")
    print(f"documents  {status['documents']} in {status['files']} file(s), {status['pages']} PDF page(s)")
    print(f"chunks     {status['chunks']}")
    print(f"model      {status['model']} (dim {status['dim']}), chunks of {status['chunk_tokens']} tokens")
    print(f"size       {status['size_bytes'] / 1e6:.1f} MB on disk")
    if status["failed"]:
        print(f"failed     {len(status['failed'])} file(s):")
        for f in status["failed"]:
            print(f"  {f['path']}: {f['reason']}")
    return EXIT_OK


def _open_for_query(settings: Settings):
    """The knowledge bases --kb names (settings.kbs), else the default one, as one Selection."""
    from .kb import Library

    _quiet_libraries(settings)
    return Library.open(settings).select(settings.kbs)


def _kb_label(kb: str, selection) -> str:
    """A hit's KB, named when several are searched."""
    return f"{kb}: " if len(selection.names) > 1 else ""


def cmd_search(args, settings: Settings) -> int:
    selection = _open_for_query(settings)
    hits = selection.search(args.query, settings.k, settings.mode)
    if args.json:
        keys = ("kb", "doc_id", "source", "page", "start", "end", "score", "text")
        print(json.dumps([{k: getattr(h, k) for k in keys} for h in hits], indent=2, ensure_ascii=False))
        return EXIT_OK
    for rank, h in enumerate(hits, 1):
        page = f" p.{h.page}" if h.page else ""
        print(f"{rank}. {_kb_label(h.kb, selection)}{h.source}{page} chars {h.start}-{h.end}  score {h.score:.3f}  [{h.doc_id}]")
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
        print(f"[{c.n}] {_kb_label(c.kb, index)}{c.source}{page}{read} chars {c.start}-{c.end}: \"{c.text}\"")
    if answer.abstained and answer.passages:
        print("Related passages:")
        for h in answer.passages[:3]:
            page = f" p.{h.page}" if h.page else ""
            print(f"  {_kb_label(h.kb, index)}{h.source}{page} chars {h.start}-{h.end}: \"{' '.join(h.text.split())[:160]}...\"")
    return EXIT_OK


def cmd_chat(args, settings: Settings) -> int:
    from .server import main as chat_main

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
        kbs = _parse_grants(args.grants or [])
        _check_kbs_exist(settings, list(kbs))
        replaced = users.add_user(path, args.name, _read_password(args.password_stdin), can_upload=args.can_upload,
                                  kbs=kbs)
        print(f"{'updated' if replaced else 'added'} {args.name} in {path}: {_describe(users.read_users(path)[args.name])}")
    elif args.action == "remove":
        users.remove_user(path, args.name)
        print(f"removed {args.name} from {path}: a running server refuses their next request")
    elif args.action in ("grant", "revoke"):
        if args.action == "grant":
            _check_kbs_exist(settings, args.grant_kbs)
            user = users.grant(path, args.name, args.grant_kbs, args.role)
        else:
            user = users.revoke(path, args.name, args.grant_kbs)
        print(f"{args.name} in {path}: {_describe(user)} (a running server applies it at the next request)")
    else:
        for user in users.read_users(path).values():
            print(f"{user.name}\t{user.roles or '-'}")
    return EXIT_OK


def _parse_grants(items: list[str]) -> dict:
    """--kb hr:ask --kb eng:upload as {"hr": "ask", "eng": "upload"} (a bare KB means ask)."""
    from .config import check_kb_name

    grants = {}
    for item in items:
        kb, _, role = item.partition(":")
        if role not in ("ask", "upload", ""):
            raise AccessError(f"--kb {item}: the role after the colon is ask or upload")
        grants[check_kb_name(kb)] = role or "ask"
    return grants


def _check_kbs_exist(settings: Settings, names) -> None:
    from .kb import Library

    known = Library.open(settings).names()
    for name in names:
        if name not in known:
            raise AccessError(f"no knowledge base named {name!r} in {settings.index_dir}: create it first with "
                              f"`rag kb create {name}` (rag kb list shows them)")


def _describe(user) -> str:
    """What a user may do, in words."""
    if not user.grants:
        return "may log in but read no knowledge base"
    parts = []
    for kb, role in sorted(user.grants.items(), key=lambda x: x[0] != "*"):
        where = "every knowledge base" if kb == "*" else kb
        parts.append(f"{where}: {'nothing' if role == 'none' else 'ask and add documents' if role == 'upload' else 'ask'}")
    return "; ".join(parts)


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


def cmd_kb(args, settings: Settings) -> int:
    from .kb import Library

    library = Library.open(settings)
    if args.action == "create":
        kb = library.create(args.name, args.kb_corpus)
        print(f"created the knowledge base {kb.name}: put its documents in {kb.corpus_dir} and run "
              f"`rag index --kb {kb.name}` (or add them in the chat); its index is {kb.index_dir}")
        if settings.auth_file:
            print(f"nobody may read it yet except users whose role covers every KB: `rag user grant NAME --kb {kb.name}`")
    elif args.action == "list":
        rows = [{**library.status(name), "readers": _readers(settings, name)} for name in library.names()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return EXIT_OK
        for r in rows:
            print(f"{r['name']}\t{r['documents']} documents, {r['chunks']} chunks, {r['size_bytes'] / 1e6:.1f} MB\t"
                  f"corpus {r['corpus']}\treaders: {', '.join(r['readers'])}")
    else:
        status = library.status(args.name)
        if not args.yes:
            _confirm(f"remove the knowledge base {args.name} and its index ({status['documents']} documents)? "
                     f"Its corpus folder {status['corpus']} is kept. [y/N] ")
        library.remove(args.name)
        touched = users_forget(settings, args.name)
        print(f"removed the knowledge base {args.name}; its documents stay in {status['corpus']}"
              + (f"; its grants were taken from {', '.join(touched)}" if touched else ""))
    return EXIT_OK


def _readers(settings: Settings, kb: str) -> list[str]:
    """Who may read a KB: everyone without logins, else the users whose grants reach it."""
    if not settings.auth_file:
        return ["everyone (no logins)"]
    from .users import read_users

    return [f"{u.name} ({u.role(kb)})" for u in read_users(settings.auth_file).values() if u.role(kb)] or ["nobody"]


def users_forget(settings: Settings, kb: str) -> list[str]:
    from .users import forget_kb

    return forget_kb(settings.auth_file, kb) if settings.auth_file else []


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise RagError("not confirmed: there is no terminal to ask; pass --yes to confirm")
    if input(question).strip().lower() not in ("y", "yes"):
        raise RagError("nothing removed")


COMMANDS = {"index": cmd_index, "status": cmd_status, "search": cmd_search, "ask": cmd_ask, "serve": cmd_chat, "chat": cmd_chat,
            "user": cmd_user, "kb": cmd_kb}

if __name__ == "__main__":
    sys.exit(main())
