"""Shared fixtures: the real model, loaded once per session; indexes in temporary folders; Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import CHROMIUM, CHROMIUM_ARGS, CORPUS_FILE, ROOT, SHARED, shared_path  # noqa: F401 (older modules import them from here)


@pytest.fixture(scope="session")
def embedder():
    from rag.embed import get_embedder

    return get_embedder()


@pytest.fixture
def settings(tmp_path, embedder):
    from rag import Settings

    return Settings.from_env(environ={}, index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus", quiet=True)


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(CORPUS_FILE, folder / CORPUS_FILE.name)
    return folder


@pytest.fixture(scope="session")
def default_index(tmp_path_factory, embedder):
    """The shipped corpus, indexed once for the tests that only read."""
    from rag import Index, Settings

    folder = tmp_path_factory.mktemp("default")
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    settings = Settings.from_env(environ={}, index_dir=folder / "index", corpus_dir=folder / "corpus", quiet=True)
    index = Index.open(settings=settings)
    report = index.add()
    assert report.ok and report.added == ["putin-diplomacy.txt"]
    return index


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, or skip saying how to install it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make browser, or apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
