"""The index end to end with the real model, real FAISS and real SQLite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CORPUS_FILE, ROOT, shared_path
from rag import Index, IndexLockedError, IndexMismatchError, ask
from rag import ann
from rag.ann import faiss_path
from rag.store import FORMAT_VERSION, MIGRATIONS


def assert_exact(index: Index):
    chunks = index.store.chunks()
    assert chunks
    for c in chunks:
        text = index.store.document_text(c.source, c.doc_id, c.page)
        assert c.text == text[c.start:c.end], (c.source, c.page, c.start, c.end)
        for a, b in c.sentences:
            assert c.start <= a < b <= c.end
            assert text[a:b].strip() == text[a:b]


def assert_consistent(index: Index):
    """FAISS ids and SQLite rows agree."""
    ids = {c.chunk_id for c in index.store.chunks()}
    faiss_index = index.faiss()
    assert faiss_index.ntotal == len(ids)
    assert set(ann.ids(faiss_index).tolist()) == ids


def test_offsets_exact_for_txt_md_jsonl_and_pdf(settings, corpus, tmp_path):
    (corpus / "notes.md").write_text(
        "# Notes\r\n\r\nShe said “hello” — and left.\r\nIt’s “quoted”, isn’t it? Yes… it is.\r\n", encoding="utf-8",
        newline="")
    (corpus / "records.jsonl").write_text(
        json.dumps({"_id": "r1", "title": "First", "text": "Alpha beta. Gamma “delta” epsilon."}) + "\n"
        + json.dumps({"id": 7, "text": "Zeta eta theta. Iota kappa."}) + "\n", encoding="utf-8")
    shutil.copy(shared_path("bench-data", "alce", "paper", "ALCE.pdf"), corpus / "ALCE.pdf")
    index = Index.open(settings=settings)
    report = index.add([corpus])
    assert report.ok, report.failed
    assert sorted(report.added) == ["ALCE.pdf", "notes.md", "putin-diplomacy.txt", "records.jsonl"]
    assert_exact(index)
    # Text files are stored exactly as on disk, \r\n included, so offsets point into the file itself.
    md = (corpus / "notes.md").read_bytes().decode("utf-8")
    assert index.store.document_text("notes.md", "notes.md", None) == md
    assert index.store.document_text("putin-diplomacy.txt", "putin-diplomacy.txt", None) == CORPUS_FILE.read_text("utf-8")
    docs = {d["doc_id"]: d["title"] for d in index.store.documents("records.jsonl")}
    assert docs == {"r1": "First", "7": ""}
    pages = sorted(d["page"] for d in index.store.documents("ALCE.pdf"))
    assert pages[0] == 1 and len(pages) > 5 and pages == sorted(set(pages))
    from pypdf import PdfReader

    page3 = PdfReader(str(corpus / "ALCE.pdf")).pages[2].extract_text()
    assert index.store.document_text("ALCE.pdf", "ALCE.pdf", 3) == page3
    hits = index.search("Gamma delta epsilon", k=3)
    assert any(h.doc_id == "r1" for h in hits)
    pdf_hits = index.search("citation recall and precision", k=5)
    assert any(h.source == "ALCE.pdf" and h.page for h in pdf_hits)
    assert_consistent(index)


def test_no_chunk_is_cut_by_the_model(settings, corpus, embedder):
    index = Index.open(settings=settings)
    index.add([corpus])
    for c in index.store.chunks():
        assert embedder.count_tokens([c.text])[0] <= embedder.max_tokens


def test_incremental_reindex(settings, corpus):
    other = corpus / "sub" / "other.txt"
    other.parent.mkdir()
    other.write_text("The tallest tree on the island is a kauri. It is older than the village.\n" * 20)
    index = Index.open(settings=settings)
    first = index.add([corpus])
    assert first.embedded > 0 and sorted(first.added) == ["putin-diplomacy.txt", "sub/other.txt"]

    again = index.add([corpus])
    assert again.embedded == 0 and again.added == [] and again.unchanged == 2
    generation = index.store.generation()
    assert generation == index.status()["generation"]

    # Append to one file: only it is re-read, and only its new chunks need the model.
    with open(other, "a") as f:
        f.write("A new paragraph about penguins, which live far from the island.\n")
    changed = index.add([corpus])
    assert changed.added == ["sub/other.txt"] and changed.unchanged == 1
    putin_chunks = len(index.store.chunks("putin-diplomacy.txt"))
    assert 0 < changed.embedded < changed.chunks or changed.embedded == changed.chunks == 1
    assert changed.embedded < putin_chunks + changed.chunks
    assert any("penguins" in h.text for h in index.search("penguins", k=3))

    # A touched but unchanged file is recognised by its content hash.
    (corpus / "putin-diplomacy.txt").write_bytes(CORPUS_FILE.read_bytes())
    assert index.add([corpus]).embedded == 0

    # A deleted file leaves the index (prune is the default), and its vectors leave FAISS.
    other.unlink()
    pruned = index.add([corpus])
    assert pruned.removed == ["sub/other.txt"]
    assert not any("penguins" in h.text for h in index.search("penguins", k=5))
    assert_consistent(index)

    # --no-prune keeps documents whose files are gone.
    (corpus / "putin-diplomacy.txt").unlink()
    kept = index.add([corpus], prune=False)
    assert kept.removed == [] and index.status()["chunks"] == putin_chunks


def test_bad_files_are_reported_and_lose_nothing(settings, corpus):
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 10)
    (corpus / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n")
    (corpus / "bad.jsonl").write_text('{"_id": "ok", "text": "A fine record about otters."}\n{not json\n')
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n")
    (corpus / "sheet.numbers").write_bytes(b"PK\x03\x04")
    index = Index.open(settings=settings)
    report = index.add([corpus])
    failed = {Path(e.path).name: e.reason for e in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "latin1.md", "broken.pdf", "bad.jsonl", "image.png"}
    assert "empty" in failed["empty.txt"] and "binary" in failed["binary.txt"]
    assert "UTF-8" in failed["latin1.md"] and "JSON" in failed["bad.jsonl"]
    assert sorted(report.added) == ["bad.jsonl", "putin-diplomacy.txt"]
    assert [Path(p).name for p in report.skipped] == ["sheet.numbers"]
    assert any(h.doc_id == "ok" for h in index.search("otters", k=3))
    assert {Path(f["path"]).name for f in index.status()["failed"]} == set(failed)
    stored = {Path(f["path"]).name: f["reason"] for f in index.status()["failed"]}
    assert stored["bad.jsonl"].startswith("line 2: invalid JSON")


def test_jsonl_with_no_good_record_is_reported_whole_and_by_line(settings, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "allbad.jsonl").write_text('{"_id": "a"}\n["list"]\n')
    report = Index.open(settings=settings).add([folder])
    assert report.added == []
    assert [(e.line, e.reason.split(" (")[0]) for e in report.failed] == [
        (1, 'a record needs a "text" string'), (2, "a record must be a JSON object, not list"), (None, "no text to index")]


def test_missing_faiss_file_is_rebuilt_from_sqlite(settings, corpus):
    index = Index.open(settings=settings)
    index.add([corpus])
    expected = [h.chunk_id for h in index.search("NATO chiefs", k=3, mode="dense")]
    faiss_path(settings.index_dir, index.store.generation()).unlink()
    reopened = Index.open(settings=settings)
    assert [h.chunk_id for h in reopened.search("NATO chiefs", k=3, mode="dense")] == expected
    assert_consistent(reopened)


def test_second_writer_is_refused_and_readers_keep_answering(settings, corpus, tmp_path):
    index = Index.open(settings=settings)
    index.add([corpus])
    reader = Index.open(settings=settings)
    before = reader.search("NATO chiefs", k=1)[0].chunk_id
    with index.write_lock():
        with pytest.raises(IndexLockedError, match="being written by pid"):
            Index.open(settings=settings).add([corpus])
        assert reader.search("NATO chiefs", k=1)[0].chunk_id == before
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "otters.txt").write_text("Sea otters hold hands while they sleep so they do not drift apart.")
    index.add([extra])
    assert reader.search("Why do sea otters hold hands?", k=1)[0].source == "otters.txt"


def test_other_model_or_chunker_is_refused(settings, corpus):
    Index.open(settings=settings).add([corpus])
    with pytest.raises(IndexMismatchError, match="rebuild"):
        Index.open(settings=settings.replace(model="some/other-model"))
    with pytest.raises(IndexMismatchError, match="chunk_tokens"):
        Index.open(settings=settings.replace(chunk_tokens=100)).add([corpus])


def test_index_of_an_older_format_is_refused_with_the_rebuild_command(settings, corpus):
    index = Index.open(settings=settings)
    index.add([corpus])
    old = min(MIGRATIONS) - 1  # older than the formats migrated in place (tests/test_pages.py)
    with index.store.transaction() as tx:
        index.store.set_manifest(tx, "format_version", old)
    with pytest.raises(IndexMismatchError, match=rf"format {old}, this version reads {FORMAT_VERSION}; "
                                                 r"rebuild it: rag index --rebuild"):
        Index.open(settings=settings)
    # the app's own index (the chat, ask() without an index) is rebuilt from the corpus instead
    answer = ask("How many U.S. presidents has Putin outlasted?", settings=settings)
    assert not answer.abstained and any("five U.S. presidents" in c.text for c in answer.citations)
    assert Index.open(settings=settings).store.manifest()["format_version"] == FORMAT_VERSION


@pytest.fixture(scope="module")
def st_embedder():
    """The sentence-transformers backend: the one that can show its token vectors and switch late chunking off."""
    from rag.embed import make_embedder

    return make_embedder(backend="sentence-transformers")


def test_span_vectors_are_the_mean_of_their_token_vectors(st_embedder):
    import numpy as np

    embedder = st_embedder
    texts = ["Title line\nThe treaty was signed in 1997. NATO chiefs met in Madrid!", "One short sentence."]
    spans = [[(11, 41), (42, 68)], [(0, 19)]]
    vectors, span_vectors = embedder.encode_with_spans(texts, spans)
    assert np.allclose(vectors, embedder.encode(texts), atol=1e-5)
    assert [v.shape for v in span_vectors] == [(2, embedder.dim), (1, embedder.dim)]
    # a span over the whole text: the normalized mean of every token vector but [CLS] and [SEP]
    tokens = embedder.model.encode([texts[1]], output_value="token_embeddings")[0].float().numpy()[1:-1]
    mean = tokens.mean(axis=0)
    assert np.allclose(span_vectors[1][0], mean / np.linalg.norm(mean), atol=1e-5)
    # each sentence's vector is nearer its own text, encoded alone, than the other sentence's
    alone = embedder.encode([texts[0][a:b] for a, b in spans[0]])
    similarity = span_vectors[0] @ alone.T
    assert similarity[0, 0] > similarity[0, 1] and similarity[1, 1] > similarity[1, 0]


@pytest.mark.parametrize("backend", ["default", "sentence-transformers"])
def test_encode_tokens_gives_encodes_vectors_and_each_tokens_span(embedder, st_embedder, backend):
    """What the answerer reads a question and a sentence by, word for word (answerability.coverage)."""
    import numpy as np

    model = embedder if backend == "default" else st_embedder
    texts = ["Where does the grey heron nest?", "The grey heron nests in tall trees near the Ouzel river."]
    vectors, tokens = model.encode_tokens(texts)
    assert np.allclose(vectors, model.encode(texts), atol=1e-5)
    for text, (token_vectors, offsets) in zip(texts, tokens):
        assert len(token_vectors) == len(offsets) > 0 and np.allclose(np.linalg.norm(token_vectors, axis=1), 1, atol=1e-3)
        assert all(0 <= a < b <= len(text) and text[a:b].strip() for a, b in offsets)  # no [CLS], [SEP]
        assert {text[a:b].lower() for a, b in offsets} >= {"grey", "heron"}


def test_without_late_chunking_spans_are_encoded_alone(st_embedder, monkeypatch):
    import numpy as np

    embedder = st_embedder
    assert embedder.late_chunking  # all-MiniLM-L6-v2: mean pooling, a fast tokenizer
    monkeypatch.setattr(embedder, "late_chunking", False)  # what a CLS-pooling model or a slow tokenizer gets
    texts = ["The treaty was signed in 1997. NATO chiefs met in Madrid!", "One short sentence."]
    spans = [[(0, 30), (31, 57)], [(0, 19)]]
    vectors, span_vectors = embedder.encode_with_spans(texts, spans)
    assert np.allclose(vectors, embedder.encode(texts), atol=1e-5)
    for text, text_spans, got in zip(texts, spans, span_vectors):
        assert np.allclose(got, embedder.encode([text[a:b] for a, b in text_spans]), atol=1e-5)


def test_every_chunk_stores_a_vector_per_sentence_and_reuse_keeps_them(settings, corpus):
    import numpy as np

    index = Index.open(settings=settings)
    index.add([corpus])
    before = {}
    for c in index.store.chunks():
        assert c.sentence_vectors.shape == (len(c.sentences), index.embedder.dim)
        assert np.allclose(np.linalg.norm(c.sentence_vectors, axis=1), 1, atol=2e-3)
        before[c.sentences[0][0]] = c.sentence_vectors
    hit = index.search("NATO chiefs", k=1)[0]
    assert hit.sentence_vectors.shape == (len(hit.sentences), index.embedder.dim)
    assert "sentence_vectors" not in hit.to_dict()
    # a line added at the end: the chunks before it keep their vectors, sentence vectors included
    with open(corpus / CORPUS_FILE.name, "a", encoding="utf-8") as f:
        f.write("\nA closing line about the new embassy garden.\n")
    report = index.add([corpus])
    assert 0 < report.embedded < report.chunks
    after = {c.sentences[0][0]: c.sentence_vectors for c in index.store.chunks()}
    assert sum(k in after and np.array_equal(after[k], v) for k, v in before.items()) >= report.chunks - report.embedded


def test_rebuild_swaps_in_a_fresh_index(settings, corpus):
    Index.open(settings=settings).add([corpus])
    changed = settings.replace(chunk_tokens=120, overlap_tokens=20)
    report = Index(settings.index_dir, changed).rebuild([corpus])
    assert report.added == ["putin-diplomacy.txt"]
    reopened = Index.open(settings=changed)
    assert reopened.status()["chunk_tokens"] == 120
    assert_exact(reopened)
    assert_consistent(reopened)


def _many_documents(folder: Path, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    words = CORPUS_FILE.read_text("utf-8").split()
    for i in range(count):
        start = (i * 37) % (len(words) - 120)
        (folder / f"doc{i:04d}.txt").write_text(f"Document {i}. " + " ".join(words[start:start + 120]) + "\n")


STOP_AT_SECOND_EMBEDDING = """
import os, signal, sys
from rag.embed import base
from rag.cli import main
real, calls = base.Backend.encode_with_spans, []
def stop_then_encode(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # reading and chunking are done, the first batch is embedded: stop here
        os.kill(os.getpid(), signal.SIGSTOP)
    return real(self, *args, **kwargs)
base.Backend.encode_with_spans = stop_then_encode
sys.exit(main(sys.argv[1:]))
"""


def wait_until_stopped(proc: subprocess.Popen) -> None:
    """Until the process stops itself (state T in /proc), or fail if it exits first."""
    while True:
        assert proc.poll() is None, f"indexing ended ({proc.returncode}) before it stopped: {proc.stderr.read()}"
        if Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.05)


def test_kill_9_during_indexing_leaves_a_loadable_index(settings, corpus, tmp_path):
    index = Index.open(settings=settings)
    index.add([corpus])
    before = index.status()
    big = tmp_path / "big"
    _many_documents(big, 600)
    env = {**os.environ, "RAG_INDEX_DIR": str(settings.index_dir)}
    proc = subprocess.Popen([sys.executable, "-c", STOP_AT_SECOND_EMBEDDING, "index", str(big)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_stopped(proc)  # mid-run: holding the write lock, between two model calls
    assert (settings.index_dir / ".write.lock").read_text() == f"pid {proc.pid}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = Index.open(settings=settings)
    assert_consistent(after)
    assert_exact(after)
    assert after.status()["chunks"] >= before["chunks"]
    assert after.search("NATO chiefs", k=1)[0].source == "putin-diplomacy.txt"
    assert sqlite3.connect(settings.index_dir / "rag.sqlite").execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The interrupted run resumes: what was committed is not embedded again.
    resumed = after.add([big])
    assert resumed.ok and len(resumed.added) + resumed.unchanged == 600
    assert_consistent(after)


def test_big_file_is_committed_in_parts_and_an_interrupted_run_resumes(settings, tmp_path, monkeypatch, embedder):
    import rag.ingest

    folder = tmp_path / "records"
    folder.mkdir()
    sentences = CORPUS_FILE.read_text("utf-8").split(". ")
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(40):
            f.write(json.dumps({"_id": f"d{i}", "title": f"Record {i}", "text": sentences[i % len(sentences)] + "."}) + "\n")
    monkeypatch.setattr(rag.ingest, "BATCH_CHUNKS", 8)
    real_encode, calls = embedder.encode_with_spans, []

    def encode_then_interrupt(texts, *args, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(texts, *args, **kwargs)

    monkeypatch.setattr(embedder, "encode_with_spans", encode_then_interrupt)
    index = Index.open(settings=settings)
    with pytest.raises(KeyboardInterrupt):
        index.add([folder])
    partial = index.status()
    assert 0 < partial["documents"] < 40  # two parts were committed before the interrupt
    assert_consistent(Index.open(settings=settings))
    monkeypatch.setattr(embedder, "encode_with_spans", real_encode)
    resumed = index.add([folder])
    assert resumed.added == ["corpus.jsonl"] and index.status()["documents"] == 40
    assert resumed.embedded == resumed.chunks - partial["chunks"]  # the committed parts kept their vectors
    assert index.add([folder]).unchanged == 1
    assert_exact(index)
    assert_consistent(index)
