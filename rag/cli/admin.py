"""rag user, rag kb: who may do what, and the knowledge bases."""

from __future__ import annotations

import json
import sys

from ..config import Settings
from ..errors import AccessError, RagError
from .common import EXIT_OK


def cmd_user(args, settings: Settings) -> int:
    from .. import users

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
    from ..config import check_kb_name

    grants = {}
    for item in items:
        kb, _, role = item.partition(":")
        if role not in ("ask", "upload", ""):
            raise AccessError(f"--kb {item}: the role after the colon is ask or upload")
        grants[check_kb_name(kb)] = role or "ask"
    return grants


def _check_kbs_exist(settings: Settings, names) -> None:
    from ..kb import Library

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
    from ..kb import Library

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
    from ..users import read_users

    return [f"{u.name} ({u.role(kb)})" for u in read_users(settings.auth_file).values() if u.role(kb)] or ["nobody"]


def users_forget(settings: Settings, kb: str) -> list[str]:
    from ..users import forget_kb

    return forget_kb(settings.auth_file, kb) if settings.auth_file else []


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise RagError("not confirmed: there is no terminal to ask; pass --yes to confirm")
    if input(question).strip().lower() not in ("y", "yes"):
        raise RagError("nothing removed")


