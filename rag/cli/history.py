"""rag history, rag feedback: the conversations kept by the chat, and the ratings given to its answers.

Both read library.sqlite in the index folder, as whoever runs the server may. A conversation is shown as its owner
may read it now: with logins that takes the users file (--auth-file, RAG_AUTH_FILE), and a citation into a KB its
owner can no longer read is withheld. Feedback is exported whole: it was given to whoever runs the server.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import Settings
from ..errors import RagError
from .common import EXIT_OK


def add_parsers(sub, users_file) -> None:
    """The `history` and `feedback` commands (users_file: the --auth-file/--index parent parser)."""
    owner = argparse.ArgumentParser(add_help=False)
    who = owner.add_mutually_exclusive_group()
    who.add_argument("--user", help="only this login's conversations")
    who.add_argument("--browser", metavar="ID",
                     help="only this browser's (a server without logins: its page shows the ID)")

    p = sub.add_parser("history", help="the conversations kept by the chat: list, export")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", parents=[users_file, owner], help="id, owner, questions, last use and title of each")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q = actions.add_parser("export", parents=[users_file, owner],
                           help="conversations as Markdown or JSON, each as its owner may read it now")
    q.add_argument("ids", nargs="*", metavar="ID", help="conversations (default: all, or all of --user/--browser)")
    q.add_argument("--format", choices=("markdown", "json"), default="markdown", help="markdown (default) or json")
    q.add_argument("--out", help="write to this file instead of standard output")

    p = sub.add_parser("feedback", help="the ratings given to answers in the chat")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("export", parents=[users_file, owner],
                           help="JSONL, one rated answer a line: an evaluation set "
                                "(bench/suites/answers.py --feedback)")
    q.add_argument("--rating", choices=("up", "down"), help="only thumbs up or only thumbs down")
    q.add_argument("--out", help="write to this file instead of standard output")


def _owner(args) -> str | None:
    return f"user:{args.user}" if args.user else f"browser:{args.browser}" if args.browser else None


def _conversations(settings: Settings):
    from ..access import Access
    from ..conversations import Conversations
    from ..kb import Library

    return Conversations(Library.open(settings), Access.from_settings(settings))


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as e:
        raise RagError(f"cannot write {out} ({e.strerror or e}); choose a file in a folder you can write") from None


def cmd_history(args, settings: Settings) -> int:
    from ..conversations import ANY_OWNER, iso, owner_label

    kept = _conversations(settings)
    owner = _owner(args)
    rows = kept.list(owner or ANY_OWNER)
    if args.action == "list":
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        for r in [] if args.json else rows:
            print(f"{r['id']}\t{owner_label(r['owner'])}\t{r['turns']} question{'' if r['turns'] == 1 else 's'}\t"
                  f"{iso(r['updated'])}\t{r['title']}")
        if not rows and not args.json:
            print("no conversation kept" + (f" for {owner_label(owner)}" if owner else ""), file=sys.stderr)
        return EXIT_OK
    ids = args.ids or [r["id"] for r in rows]
    exported = [kept.export(owner or ANY_OWNER, i, args.format) for i in ids]
    if args.format == "json":
        text = exported[0] if len(args.ids) == 1 else json.dumps([json.loads(x) for x in exported], indent=2,
                                                                  ensure_ascii=False) + "\n"
    else:
        text = "\n".join(exported)
    _write(text, args.out)
    if args.out:
        print(f"wrote {len(ids)} conversation{'' if len(ids) == 1 else 's'} to {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_feedback(args, settings: Settings) -> int:
    records = [r for r in _conversations(settings).feedback(_owner(args))
               if args.rating is None or r["rating"] == args.rating]
    _write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), args.out)
    if args.out:
        print(f"wrote {len(records)} rated answer{'' if len(records) == 1 else 's'} to {args.out}", file=sys.stderr)
    return EXIT_OK
