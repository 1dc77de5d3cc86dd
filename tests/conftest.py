"""Shared fixtures: the real model, loaded once per session; indexes in temporary folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS_FILE = ROOT / "corpus" / "putin-diplomacy.txt"


def shared_path(*parts) -> Path:
    """A file under ../shared, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared bench data (../shared beside the repo)")
    return path


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
