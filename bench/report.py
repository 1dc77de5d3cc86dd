"""Gather bench/results/*.md into docs/BENCHMARKS.md, under a header naming the date.

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo: rag and bench.*
from bench.lib import common  # noqa: E402
from bench.lib.common import RESULTS, ROOT  # noqa: E402

OUT = ROOT / "docs" / "BENCHMARKS.md"

EMBED = ("`.venv/bin/python bench/suites/embed.py --limit 1200 --rounds 2 --quality \"auto (the default),"
         "sentence-transformers\"` on a CPU of that kind (it writes embed-KIND.md for the CPU it runs on)")

# result file -> how to reproduce it (files not listed are included too, after these, in name order)
HOW = {
    "ingest.md": "`.venv/bin/python bench/suites/ingest.py` (`--limit N` for the first N docs; `--only pdf,ocr` re-runs "
                 "the PDF and OCR sections alone; `--ray` also through a local Ray cluster, which needs "
                 "`pip install 'ray[data]'`)",
    "embed-avx2.md": EMBED,
    "embed-bf16.md": EMBED,
    "retrieval.md": "`.venv/bin/python bench/suites/retrieval.py` "
                    "(`--chunk-sizes 128,200,256` to re-compare chunk sizes; each size embeds the corpus once)",
    "scale.md": "`.venv/bin/python bench/suites/scale.py` (synthetic collections of 100k, 300k and 1M chunks, cached in "
                "bench/.cache/scale-*; `--sizes` to choose)",
    "scale-add.md": "`.venv/bin/python bench/suites/scale.py --add-only 1000000` (needs the cached million-chunk index that "
                    "`bench/suites/scale.py` builds)",
    "answers.md": "`.venv/bin/python bench/suites/answers.py` (`--no-latency` skips the timing)",
    "answerability.md": "`.venv/bin/python bench/fit/fit_answerability.py` (rewrites rag/answer/answerability.json; "
                        "`--dry-run` only reports)",
    "probe_reading.md": "`.venv/bin/python bench/probes/probe_reading.py` (tune data only, about 5 minutes)",
    "citations.md": "`.venv/bin/python bench/suites/citations.py`",
    "pages.md": "`.venv/bin/python bench/suites/pages.py`",
    "kb.md": "`.venv/bin/python bench/suites/kb.py` (`--questions N` for a quick run)",
    "formats.md": "`.venv/bin/python bench/suites/formats.py` (files of each format made by the bench; the tables of "
                  "ALCE.pdf against a truth typed by hand)",
    "load.md": "`.venv/bin/python bench/suites/load.py` (`--clients`, `--seconds`, `--docs`, `--upload-docs`)",
    "calibration.md": "`.venv/bin/python bench/fit/calibrate_support.py`",
}


def main() -> int:
    files = sorted(RESULTS.glob("*.md"), key=lambda p: (list(HOW).index(p.name) if p.name in HOW else len(HOW), p.name))
    if not files:
        print(f"no results in {RESULTS.relative_to(ROOT)}; run make bench first")
        return 1
    parts = [
        "# Benchmarks\n",
        f"Generated {common.today()} by `bench/report.py` from bench/results/*.md; each section below carries what its own "
        "run recorded (machine, date, load). `make bench` runs every suite of bench/suites and regenerates this "
        "file; bench/README.md maps each figure the README quotes to its script and result file. The SciFact data "
        "(CC BY-NC) is read from ../shared/bench-data and never copied into this repo; built indexes are cached in "
        "bench/.cache/. Measured speed per CPU kind and the engine each one runs: docs/ENGINES.md.\n",
    ]
    for f in files:
        lines = _demote(f.read_text().strip()).splitlines()
        how = f"Reproduce: {HOW.get(f.name, f'see bench/results/{f.name}')}"
        head = 1 if lines and lines[0].startswith("#") else 0
        parts.append(f"<!-- from bench/results/{f.name} -->")
        parts.append("\n".join(lines[:head] + ["", how] + lines[head:]) + "\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(parts))
    print(f"wrote {OUT.relative_to(ROOT)} from {len(files)} result files")
    return 0


def _demote(text: str) -> str:
    """A result file's own top heading (#) becomes ## so the document keeps one title."""
    return "\n".join("#" + line if line.startswith("# ") else line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
