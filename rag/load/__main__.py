"""`python -m rag.load README.md`: rewrite the README's formats table from the loader registry."""

import sys
from pathlib import Path

from . import format_table

BEGIN, END = "<!-- formats: made by python -m rag.load README.md -->", "<!-- /formats -->"


def main(path: str) -> None:
    readme = Path(path)
    text = readme.read_text(encoding="utf-8")
    head, begun, rest = text.partition(BEGIN)
    _, ended, tail = rest.partition(END)
    if not begun or not ended:
        sys.exit(f"{path} has no {BEGIN} ... {END} block to fill")
    readme.write_text(f"{head}{BEGIN}\n{format_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "README.md")
