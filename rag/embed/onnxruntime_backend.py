"""ONNX Runtime: the portable fallback (no OpenVINO wheel for the platform, or a non-Intel CPU).

fp32 only: the ONNX export after ORT's BERT fusions (Attention, SkipLayerNorm, BiasGelu), saved once in
the cache. Vectors identical to torch (cos 1.0000). Compute only ~1.07x torch/ST per CPU-second here, but
a 3 s start instead of ST's 7+ s (no torch import), and single queries 2-6x faster. (Its int8, dynamic
per-channel MatMul-only quantization, was measured at nDCG@10 0.6615 vs 0.6708 on SciFact: over the
0.005 budget, so it is not offered.)

ORT's run() releases the GIL. Threads: intra_op_num_threads; inter-op 1 (one model call at a time).
"""

from __future__ import annotations

import numpy as np

from . import export
from .base import Backend


def optimized_onnx(model_path, dim: int):
    """The fp32 export with ORT's transformer fusions applied (the file the fp32 and int8 sessions read)."""
    src = export.onnx_fp32(model_path)

    def make(out):
        from onnxruntime.transformers import optimizer

        heads = _heads(model_path)
        opt = optimizer.optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=dim,
                                       opt_level=1, use_gpu=False)
        opt.save_model_to_file(str(out))

    return export.cached(model_path, "model-fp32-ort.onnx", make)


def _heads(model_path) -> int:
    import json
    from pathlib import Path

    return int(json.loads((Path(model_path) / "config.json").read_text())["num_attention_heads"])


class OnnxRuntimeBackend(Backend):
    def __init__(self, model_path, precision: str = "fp32", threads: int | None = None):
        super().__init__(model_path, threads)
        if precision != "fp32":
            raise ValueError(f"onnxruntime backend: precision {precision!r} (fp32 only)")
        import onnxruntime as ort

        self.precision = precision
        self.name = f"onnxruntime-{precision}"
        path = optimized_onnx(self.model_path, self.dim)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.session.run(["last_hidden_state"], {k: v for k, v in feed.items() if k in self._inputs})[0]
