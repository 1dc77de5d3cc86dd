"""What the commands share: exit codes, progress bars, quiet libraries."""

from __future__ import annotations

import os
import sys

from ..config import Settings

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
UNITS = {"reading": "file", "cluster": "file", "ocr": "page"}  # what each progress stage counts; the rest count chunks


def progress_bars(settings: Settings):
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


def quiet_libraries(settings: Settings) -> None:
    if settings.quiet:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


