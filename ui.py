"""The chat window (and the HTTP API beside it) over your documents: `python ui.py --help`. The code lives in
rag/server/ and rag/chat/."""

import sys

from rag.server import main

if __name__ == "__main__":
    sys.exit(main())
