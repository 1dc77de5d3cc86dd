"""python -m rag.cli"""

import sys

from . import main

sys.exit(main())
