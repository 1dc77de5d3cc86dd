"""The chat window over your documents: `python ui.py --help`. The code lives in rag/chat/."""

import sys

from rag.chat import main

if __name__ == "__main__":
    sys.exit(main())
