"""Embedding backends: each gives what sentence-transformers gives (within its precision), `auto` picks
and falls back, and an index refuses vectors of another kind.

The reference is the sentence-transformers backend on the packaged all-MiniLM-L6-v2. The fast backends
export the model at first use into a cache (RAG_MODEL_CACHE, else ~/.cache/rag/models): the first run
pays the export once.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

from conftest import CORPUS_FILE
from rag import Index, RagError
from rag import embed
from rag.chunk import split_sentences
from rag.embed import make_embedder

# minimum cosine to the fp32 reference, (chunk, span). Measured minima on 11,609 SciFact chunks and their
# sentences: fp32 1.0000 / 1.0000, bf16 0.9999+ / 0.9999, OpenVINO int8 0.984 / 0.975
TOLERANCE = {"fp32": (0.9999, 0.999), "bf16": (0.999, 0.99), "int8": (0.97, 0.93)}
CASES = [(name, p) for name in embed.ORDER for p in embed.PRECISIONS[name]]
# /proc/cpuinfo flags of the machines measured in docs/ENGINES.md (abridged to what decides)
XEON_SPR = frozenset("avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile".split())
EPYC_ZEN3 = frozenset("sse4_2 avx fma f16c avx2 bmi2 vaes vpclmulqdq sha_ni".split())  # this AVX2-only machine
ICELAKE = frozenset("avx2 avx512f avx512bw avx512_vnni".split())
ALDERLAKE = frozenset("avx2 avx_vnni".split())


def installed(name):
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def reference():
    return make_embedder(backend="sentence-transformers")


def sample():
    """Texts of many lengths and scripts, with their sentence spans."""
    prose = CORPUS_FILE.read_text(encoding="utf-8")
    paragraphs = [p for p in prose.split("\n") if p.strip()]
    texts = paragraphs[:12] + [
        "Title of a record\nA first sentence.  Then a second one, after two spaces.",
        "  leading and trailing whitespace  ",
        "Zürich, Ångström, naïve café — “quotes” and ’apostrophes’; 東京 is Tokyo; emoji 🙂 too.",
        "x" * 3000,  # one huge 'word'
        " ".join(paragraphs) * 2,  # far over max_seq_length: truncated alike
        "a",
    ]
    return texts, [split_sentences(t) or [(0, len(t))] for t in texts]


def cosines(a, b):
    return (np.asarray(a) * np.asarray(b)).sum(axis=1)


@pytest.mark.parametrize("name,precision", CASES)
def test_backend_matches_sentence_transformers(reference, name, precision):
    if not installed(name):
        pytest.skip(f"{name} is not installed")
    if precision == "int8" and not installed("nncf"):
        pytest.skip("int8 needs nncf: pip install 'rag[int8]'")
    backend = make_embedder(backend=name, precision=precision)
    texts, spans = sample()
    chunk_tol, span_tol = TOLERANCE[precision]
    assert backend.name == f"{name}-{precision}" and backend.precision == precision
    assert backend.dim == reference.dim and backend.max_tokens == reference.max_tokens
    sentences = [t[a:b] for t, s in zip(texts, spans) for a, b in s]
    assert backend.count_tokens(texts + sentences) == reference.count_tokens(texts + sentences)

    got = backend.encode(texts, batch_size=4)  # several batches of mixed lengths: order survives sorting
    assert got.dtype == np.float32 and got.shape == (len(texts), reference.dim)
    # questions (encode, encode_tokens) are embedded in float even where documents are int8
    question_tol = TOLERANCE["fp32" if precision == "int8" else precision][0]
    assert cosines(got, reference.encode(texts)).min() >= question_tol
    assert cosines(backend.encode_tokens(texts[:3])[0], got[:3]).min() >= 0.9999

    want_v, want_s = reference.encode_with_spans(texts, spans, 4)
    got_v, got_s = backend.encode_with_spans(texts, spans, 4)
    assert cosines(got_v, want_v).min() >= chunk_tol
    if precision != "int8":
        assert cosines(got_v, got).min() >= 0.9999  # one forward pass: the same chunk vector as encode()
    assert [s.shape for s in got_s] == [s.shape for s in want_s]
    assert np.concatenate([cosines(g, w) for g, w in zip(got_s, want_s)]).min() >= span_tol
    assert all(np.allclose(np.linalg.norm(s, axis=1), 1, atol=1e-4) for s in got_s)
    empty_v, empty_s = backend.encode_with_spans([], [], 4)
    assert empty_v.shape == (0, reference.dim) and empty_s == [] and backend.encode([]).shape == (0, reference.dim)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_text_alone_and_in_a_batch_gets_the_same_vector(precision):
    """Dynamic padding must not leak into a text's vector; nor, for int8 documents, the ranges of its batch."""
    backend = make_embedder(backend="onnxruntime", precision=precision)
    texts, spans = sample()
    alone = np.vstack([backend.encode_with_spans([t], [s], 4)[0] for t, s in zip(texts[:6], spans[:6])])
    together = backend.encode_with_spans(texts, spans, 64)[0][:6]
    assert cosines(together, alone).min() > 0.99999


def test_auto_takes_the_first_backend_that_starts_and_says_why_it_skipped_one(monkeypatch, caplog):
    real_make = embed._make
    monkeypatch.setattr(embed, "cpu_flags", lambda: XEON_SPR)  # plan: openvino bf16, torch bf16, onnxruntime fp32

    def broken_openvino(backend, precision, path, model):
        if backend == "openvino":
            raise RuntimeError("export failed on purpose")
        return real_make(backend, precision, path, model)

    monkeypatch.setattr(embed, "_make", broken_openvino)
    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        chosen = embed.make_embedder(backend="auto", precision="auto")
    assert chosen.name == "torch-bf16"
    assert "openvino unavailable" in caplog.text and "export failed on purpose" in caplog.text
    monkeypatch.setattr(embed, "_installed", lambda module: module == "sentence_transformers")
    assert embed.make_embedder(backend="auto").name == "sentence-transformers-fp32"  # nothing faster installed


def test_a_named_backend_that_cannot_run_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(embed, "_installed", lambda module: module != "openvino")
    with pytest.raises(RagError, match=r"openvino backend is not installed: pip install openvino"):
        embed.make_embedder(backend="openvino")
    with pytest.raises(RagError, match="no int8 precision"):
        embed.make_embedder(backend="torch", precision="int8")
    with pytest.raises(RagError, match="embed_precision must be one of"):
        from rag import Settings

        Settings.from_env(environ={"RAG_EMBED_PRECISION": "fp8"})


@pytest.mark.parametrize("flags,kind,first", [
    (XEON_SPR, "bf16", ("openvino", "bf16")),
    (EPYC_ZEN3, "avx2", embed.PLANS["avx2"][0]),
    (ICELAKE, "vnni", ("openvino", "fp32")),
    (ALDERLAKE, "vnni", ("openvino", "fp32")),
    (frozenset({"sse4_2"}), "other", ("openvino", "fp32")),
])
def test_auto_chooses_per_kind_of_cpu(monkeypatch, flags, kind, first):
    assert embed.cpu_kind(flags) == kind
    assert embed.plan(kind)[0] == first
    monkeypatch.setattr(embed, "cpu_flags", lambda: flags)
    assert embed._precision(first[0], "auto") == first[1]
    assert embed._precision("torch", "auto") == ("bf16" if kind == "bf16" else "fp32")  # bf16 only where native
    assert [b for b, _ in embed.plan(kind, "int8")] == (["onnxruntime", "openvino"] if kind == "avx2"
                                                         else ["openvino", "onnxruntime"])


def test_auto_runs_the_plan_of_this_cpu(monkeypatch):
    """Fed the AVX2-only flags, auto builds the AVX2 plan's engine; fed a Xeon's, the bf16 one's first."""
    for flags, kind in ((EPYC_ZEN3, "avx2"), (XEON_SPR, "bf16")):
        monkeypatch.setattr(embed, "cpu_flags", lambda: flags)
        backend, precision = next((b, p) for b, p in embed.PLANS[kind] if installed(b))
        made = embed.make_embedder(backend="auto", precision="auto")
        assert made.name == f"{backend}-{precision}"


def test_an_index_written_from_two_kinds_of_cpu_holds_both_and_answers_from_both(settings, corpus, tmp_path):
    """An AVX2 machine writes int8 document vectors, a bf16/fp32 one float vectors: one index takes both,
    records both, and a question (always embedded in float) finds the chunks each one wrote."""
    if not installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    avx2 = settings.replace(embed_backend="onnxruntime", embed_precision="int8")
    index = Index.open(settings=avx2)
    index.add([corpus])
    assert index.status()["vectors"] == "int8" and index.status()["embedder"] == "onnxruntime-int8"
    other = tmp_path / "more"
    other.mkdir()
    (other / "herons.md").write_text("# Herons\n\nThe grey heron nests in tall trees near the Ouzel river.\n", encoding="utf-8")
    xeon = Index.open(settings=settings.replace(embed_backend="openvino", embed_precision="fp32"))
    report = xeon.add([other])
    assert report.ok and report.embedded == 1
    for reader in (xeon, Index.open(settings=avx2)):
        assert reader.status()["vectors"] == "float+int8"
        assert reader.search("Where does the grey heron nest?", k=1, mode="dense")[0].source == "herons.md"
        assert "NATO chiefs" in reader.search("How many NATO chiefs has Putin outlasted?", k=1, mode="dense")[0].text


def test_the_default_embedder_serves_several_threads_at_once(embedder):
    """The chat answers several users at once: concurrent questions get their own, right vectors."""
    from concurrent.futures import ThreadPoolExecutor

    texts, _ = sample()
    alone = embedder.encode(texts[:8])
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: embedder.encode([t])[0], texts[:8] * 3))
    assert cosines(np.vstack(together), np.vstack([alone] * 3)).min() > 0.9999
