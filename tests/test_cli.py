"""The real `rag` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CORPUS_FILE, ROOT


def rag(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture
def workdir(tmp_path):
    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    return tmp_path


def test_index_status_search_ask(workdir):
    env = {"RAG_INDEX_DIR": str(workdir / "idx"), "RAG_CORPUS_DIR": str(workdir / "corpus")}
    (workdir / "corpus" / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    first = rag("index", "--quiet", str(workdir / "corpus"), env=env)
    assert first.returncode == 1, first.stderr  # one file failed: documented exit code 1
    assert "broken.pdf" in first.stdout and "indexed 1 file(s)" in first.stdout

    (workdir / "corpus" / "broken.pdf").unlink()
    again = rag("index", "--quiet", "--json", str(workdir / "corpus"), env=env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["embedded"] == 0 and report["unchanged"] == 1 and report["failed"] == []

    status = json.loads(rag("status", "--json", env=env).stdout)
    assert status["documents"] == 1 and status["chunks"] > 0 and status["model"] == "all-MiniLM-L6-v2"
    assert status["size_bytes"] > 0 and status["failed"] == []

    hits = json.loads(rag("search", "NATO chiefs", "--k", "2", "--json", env=env).stdout)
    text = CORPUS_FILE.read_text("utf-8")
    assert len(hits) == 2
    assert set(hits[0]) == {"kb", "doc_id", "source", "page", "start", "end", "score", "text"}
    assert all(text[h["start"]:h["end"]] == h["text"] for h in hits)

    human = rag("ask", "How many U.S. presidents has Putin outlasted?", env=env)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert "[1]" in lines[0]
    cited = [line for line in lines if line.startswith("[1] putin-diplomacy.txt chars ")]
    assert cited and "five U.S. presidents" in cited[0]
    confidence = float(lines[1].removeprefix("confidence ").split()[0])
    assert lines[1].startswith("confidence ") and 0 < confidence <= 1
    # an LLM server that is down: the extractive answer, printed once, and why
    down = rag("ask", "How many U.S. presidents has Putin outlasted?", "--llm-url", "http://127.0.0.1:9/v1", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("five U.S. presidents") == 2  # the answer line and its citation line
    assert "(answered extractively: the language model failed" in down.stdout
    answer = json.loads(rag("ask", "How many U.S. presidents has Putin outlasted?", "--json", env=env).stdout)
    for c in answer["citations"]:
        assert text[c["start"]:c["end"]] == c["text"]
    assert answer["confidence"] == pytest.approx(confidence, abs=0.005) and not answer["abstained"]
    # the threshold from the flag and from the environment
    strict = json.loads(rag("ask", "How many U.S. presidents has Putin outlasted?", "--json", "--min-confidence",
                            str(min(1.0, confidence + 0.01)), env=env).stdout)
    assert strict["abstained"] and strict["citations"] == [] and strict["confidence"] == answer["confidence"]
    assert json.loads(rag("ask", "How many U.S. presidents has Putin outlasted?", "--json",
                          env={**env, "RAG_MIN_CONFIDENCE": "1"}).stdout)["abstained"]


def test_ask_builds_the_default_index_on_first_use(workdir):
    result = rag("ask", "How many NATO chiefs has Putin outlasted?", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "index" / "rag.sqlite").exists()
    assert any("six NATO chiefs" in c["text"] for c in json.loads(result.stdout)["citations"])


def test_errors_are_one_line_and_exit_2(tmp_path):
    missing = rag("status", "--index", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "rag index" in missing.stderr
    bad_env = rag("status", env={"RAG_K": "many"})
    assert bad_env.returncode == 2 and "RAG_K" in bad_env.stderr
    nothing = rag("index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "idx"), "--quiet")
    assert nothing.returncode == 1 and "no such file or folder" in nothing.stdout
