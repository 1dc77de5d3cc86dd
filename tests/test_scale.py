"""Issue 13 at test size: the vector index changed by difference (exact and IVF), kills during its save,
the bulk path for precomputed chunks and its checks, and the int8 vectors. Real model, FAISS, SQLite
and processes; the IVF path runs small through a low ivf_threshold."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import CORPUS_FILE
from rag import Index, IndexMismatchError, ann
from rag.chunk import CHUNKER_VERSION
from rag.load import file_hash
from rag.model import Chunk, Document, EmbeddedDocument, EmbeddedFile
from rag.store import pack, unpack
from test_hardening import rag, rag_killed_at
from test_index import _many_documents, assert_consistent, assert_exact


def builds(monkeypatch) -> list:
    """Count full builds of the vector index (an incremental add makes none)."""
    calls, real = [], ann.build
    monkeypatch.setattr(ann, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_ivf_index_is_changed_by_difference_and_keeps_sqlite_ids(settings, tmp_path, monkeypatch):
    s = settings.replace(ivf_threshold=40)
    folder = tmp_path / "docs"
    _many_documents(folder, 60)
    (folder / "kauri.txt").write_text("The tallest tree on the island is a kauri.\n")
    index = Index.open(settings=s)
    built = builds(monkeypatch)
    index.add([folder])
    assert ann._ivf(index.faiss()) is not None and len(built) == 1  # past the threshold: IVF, trained once
    assert_consistent(index)
    nlist = ann._ivf(index.faiss()).nlist
    # change one file, delete two, add one: each add changes the index by its difference, no rebuild
    (folder / "doc0003.txt").write_text("Penguins huddle together through the Antarctic winter.\n")
    (folder / "doc0004.txt").unlink()
    (folder / "kauri.txt").unlink()
    (folder / "otters.txt").write_text("Sea otters hold hands while they sleep so they do not drift apart.\n")
    report = index.add([folder])
    assert sorted(report.removed) == ["doc0004.txt", "kauri.txt"]
    assert sorted(report.added) == ["doc0003.txt", "otters.txt"]
    assert len(built) == 1 and ann._ivf(index.faiss()).nlist == nlist
    assert_consistent(index)
    assert_exact(index)
    assert index.search("Why do sea otters hold hands?", k=1, mode="dense")[0].source == "otters.txt"
    # the deleted and changed files' words left the (contentless) keyword index too
    assert index.store.keyword_search(["kauri"], 10) == []
    penguins = index.store.keyword_search(["penguins"], 10)
    assert [index.store.hits([(i, 0)])[0].source for i, _ in penguins] == ["doc0003.txt"]
    # a reader in another process state: the saved file is the last generation, ids agree
    reopened = Index.open(settings=s)
    assert_consistent(reopened)
    assert len(built) == 1
    # shrinking far below the threshold goes back to exact search (one rebuild)
    for p in folder.glob("doc00[1-5]*.txt"):
        p.unlink()
    index.add([folder])
    assert ann._ivf(index.faiss()) is None and len(built) == 2
    assert_consistent(index)


def test_exact_index_is_changed_by_difference(settings, corpus, monkeypatch):
    index = Index.open(settings=settings)
    built = builds(monkeypatch)
    index.add([corpus])
    extra = corpus / "otters.txt"
    extra.write_text("Sea otters hold hands while they sleep so they do not drift apart.\n")
    index.add([corpus])
    assert_consistent(index)
    extra.unlink()
    assert index.add([corpus]).removed == ["otters.txt"]
    assert_consistent(index)
    assert len(built) == 1 and ann._ivf(index.faiss()) is None


@pytest.mark.parametrize("instant", ["inside the save", "after the sync, before the save"])
def test_a_kill_during_an_incremental_ann_save_leaves_a_consistent_index(tmp_path, instant, monkeypatch):
    corpus = tmp_path / "corpus"
    _many_documents(corpus, 50)
    env = {"RAG_INDEX_DIR": str(tmp_path / "idx"), "RAG_CORPUS_DIR": str(corpus), "RAG_QUIET": "1",
           "RAG_IVF_THRESHOLD": "30"}
    assert rag("index", env=env).returncode == 0
    first = sorted((tmp_path / "idx").glob("faiss-*.index"))
    (corpus / "otters.txt").write_text("Sea otters hold hands while they sleep so they do not drift apart.\n")
    (corpus / "doc0007.txt").unlink()
    patch = {
        "inside the save": """
            import os, signal, faiss
            write = faiss.write_index
            def write_then_die(index, path):
                write(index, path)
                os.kill(os.getpid(), signal.SIGKILL)
            faiss.write_index = write_then_die
        """,
        "after the sync, before the save": """
            import os, signal
            from rag import ann
            ann.save = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        """}[instant]
    killed = rag_killed_at(patch, "index", env=env)
    assert killed.returncode == -9
    assert sorted((tmp_path / "idx").glob("faiss-*.index")) == first  # the older generation's file is all there is
    from rag import Settings

    s = Settings.from_env(environ=env)
    built = builds(monkeypatch)
    reader = Index.open(settings=s)
    assert_consistent(reader)  # the older file, synced with SQLite in memory
    assert not built and ann._ivf(reader.faiss()) is not None
    assert reader.search("Why do sea otters hold hands?", k=1, mode="dense")[0].source == "otters.txt"
    assert not [h for h in reader.store.chunks() if h.source == "doc0007.txt"]
    again = rag("index", env=env)
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "idx").glob(".faiss-*.tmp")) == []
    saved = list((tmp_path / "idx").glob("faiss-*.index"))
    assert saved == [ann.faiss_path(tmp_path / "idx", Index.open(settings=s).store.generation())]
    assert_consistent(Index.open(settings=s))


# -- the bulk path ------------------------------------------------------------------------------------

def embedded(embedder, settings, path, text="The treaty was signed in 1997. NATO chiefs met in Madrid. Nobody came.",
             source="treaty.txt") -> EmbeddedFile:
    """A file chunked and embedded outside the index (as a worker would), exactly right."""
    doc = Document(source=source, doc_id=source, text=text)
    a = text.index(". ") + 2  # three sentences: [0, a - 1), [a, b - 1), [b, len)
    b = text.index(". ", a) + 2
    chunks = [Chunk(source=source, doc_id=source, page=None, start=0, end=b - 1, text=text[:b - 1],
                    sentences=[(0, a - 1), (a, b - 1)]),
              Chunk(source=source, doc_id=source, page=None, start=a, end=len(text), text=text[a:],
                    sentences=[(a, b - 1), (b, len(text))])]
    vectors, sentence_vectors = embedder.encode_with_spans([c.embed_text for c in chunks], [c.embed_spans for c in chunks])
    return EmbeddedFile(path=str(path), source=source, hash=file_hash(text.encode()), size=len(text),
                        documents=[EmbeddedDocument(document=doc, chunks=chunks, vectors=vectors,
                                                    sentence_vectors=sentence_vectors)],
                        model=settings.model, chunk_tokens=settings.chunk_tokens,
                        overlap_tokens=settings.overlap_tokens, chunker=CHUNKER_VERSION)


def with_document(file: EmbeddedFile, **changes) -> EmbeddedFile:
    return dataclasses.replace(file, documents=[dataclasses.replace(file.documents[0], **changes)])


def test_precomputed_files_are_checked_and_good_ones_written(settings, corpus, embedder, tmp_path):
    index = Index.open(settings=settings)
    index.add([corpus])
    good = embedded(embedder, settings, tmp_path / "treaty.txt")
    d = good.documents[0]
    chunk0 = d.chunks[0]
    with pytest.raises(IndexMismatchError, match="model 'other/model'.*rag index --rebuild"):
        index.add_precomputed([dataclasses.replace(good, model="other/model")])
    with pytest.raises(IndexMismatchError, match="chunk_tokens 128"):
        index.add_precomputed([dataclasses.replace(good, chunk_tokens=128)])
    bad = {
        "relative path": (dataclasses.replace(good, path="treaty.txt"), "path must be absolute"),
        "offsets": (with_document(good, chunks=[dataclasses.replace(chunk0, start=1), d.chunks[1]]),
                    f"chunk 0 text is not document.text[1:{chunk0.end}]"),
        "sentence outside": (with_document(good, chunks=[dataclasses.replace(chunk0, sentences=[(0, 30), (31, 70)]),
                                                         d.chunks[1]]), f"chunk 0 needs sentences, each inside [0, {chunk0.end})"),
        "shape": (with_document(good, vectors=d.vectors[:1]), "vectors must be a float array of shape (2, 384)"),
        "another kind": (with_document(good, vectors=(d.vectors * 127).astype(np.int8)), "must be a float array"),
        "not normalized": (with_document(good, vectors=d.vectors * 2), "vectors must be normalized"),
        "sentence vectors": (with_document(good, sentence_vectors=[d.sentence_vectors[0][:1], d.sentence_vectors[1]]),
                             "chunk 0 sentence vectors must be a float array of shape (2, 384)"),
        "other document": (with_document(good, chunks=[dataclasses.replace(chunk0, doc_id="x"), d.chunks[1]]),
                           "chunk 0 belongs to"),
    }
    before = index.status()["chunks"]
    for name, (file, reason) in bad.items():
        report = index.add_precomputed([file])
        assert [e.reason for e in report.failed] and reason in report.failed[0].reason, name
        assert report.added == [] and index.status()["chunks"] == before, name
    report = index.add_precomputed([good])
    assert report.ok and report.added == ["treaty.txt"] and report.chunks == 2
    assert_consistent(index)
    assert_exact(index)
    hit = index.search("When was the treaty signed?", k=1)[0]
    assert hit.source == "treaty.txt" and hit.sentences == chunk0.sentences
    assert np.allclose(hit.sentence_vectors, d.sentence_vectors[0], atol=0.01)
    assert index.add_precomputed([good]).unchanged == 1  # a rerun skips what is written


def test_precomputed_files_commit_in_parts_and_a_rerun_finishes(settings, embedder, tmp_path, monkeypatch):
    import rag.ingest

    monkeypatch.setattr(rag.ingest, "BATCH_CHUNKS", 4)
    sentences = CORPUS_FILE.read_text("utf-8").split(". ")[:10]
    files = [embedded(embedder, settings, tmp_path / f"f{i}.txt", source=f"f{i}.txt",
                      text=f"{sentences[i][:24].strip()} {i}. Second sentence of {i}. Third one here, number {i}.")
             for i in range(10)]
    def stream(stop_after=None):  # results arriving in any order, then the worker dies
        for n, f in enumerate(reversed(files)):
            if n == stop_after:
                raise KeyboardInterrupt
            yield f

    index = Index.open(settings=settings)
    with pytest.raises(KeyboardInterrupt):
        index.add_precomputed(stream(stop_after=7))
    written = Index.open(settings=settings).status()
    assert 0 < written["files"] < 10 and written["chunks"] == 2 * written["files"]  # batches of 2 files committed
    assert_consistent(Index.open(settings=settings))
    report = index.add_precomputed(stream())
    assert report.unchanged == written["files"] and len(report.added) == 10 - written["files"]
    assert index.status()["chunks"] == 20
    assert_consistent(index)
    assert_exact(index)


def test_int8_vectors_round_trip_within_tolerance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    blob = pack(x)
    assert len(blob) == 200 * (4 + 384)  # a quarter of float32, plus a scale per row
    y = unpack(blob, 384)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.min(np.sum(x * y, axis=1) / np.linalg.norm(y, axis=1)) > 0.9999
    assert np.max(np.abs(x - y)) <= np.abs(x).max() / 127 / 2 + 1e-7  # half a step of the row's scale
    assert pack(unpack(blob, 384, exact=True)) == blob  # a reused vector is stored unchanged
    assert unpack(pack(np.zeros((1, 384))), 384).tolist() == np.zeros((1, 384)).tolist()
    q = x[:5] @ x[5:].T  # rankings: the largest score error is far below typical score gaps
    assert np.max(np.abs(q - y[:5] @ y[5:].T)) < 2e-3
