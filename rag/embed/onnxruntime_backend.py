"""ONNX Runtime: fp32, and int8 for documents on AVX2-only CPUs (the default there: docs/ENGINES.md).

fp32: the ONNX export after ORT's BERT fusions (Attention, SkipLayerNorm, BiasGelu), saved once in the
cache. Vectors identical to torch (cos 1.0000); a 3 s start instead of sentence-transformers' 7+ s.

int8: that model with ORT's dynamic quantization: int8 weights per output channel, 7-bit (reduce_range, so
AVX2's u8*s8 pair sums cannot saturate without VNNI), activations quantized at run time from the ranges of
what each pass holds; the matmuls run in MLAS's integer kernels. One text a pass: the ranges are the text's
own, so a chunk's vector never depends on the chunks beside it or on padding (and one text a pass ran as
fast as batches of 16: docs/ENGINES.md). Only documents go through it (`encode_with_spans`, what `rag index`
calls); questions and the sentences an answer reads (`encode`, `encode_tokens`) go through this runtime's
fp32 model: a question's vector is the fp32 one (and one question costs what fp32 costs anyway). On the AVX2
EPYC a single SciFact question took 8.1 ms p50 here against 18.2 through OpenVINO fp32, whose new shapes cost
a compile each (docs/ENGINES.md).

ORT's run() releases the GIL. Threads: intra_op_num_threads; inter-op 1 (one model call at a time).
"""

from __future__ import annotations

import threading

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


def quantized_onnx(model_path, dim: int):
    """The fused fp32 model with dynamic int8 MatMuls and attention (QAttention), made once in ~5 s."""
    src = optimized_onnx(model_path, dim)

    def make(out):
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(out), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # the fused ops' outputs

    return export.cached(model_path, "model-int8-dynamic-ort.onnx", make)


def _heads(model_path) -> int:
    import json
    from pathlib import Path

    return int(json.loads((Path(model_path) / "config.json").read_text())["num_attention_heads"])


class OnnxRuntimeBackend(Backend):
    def __init__(self, model_path, precision: str = "fp32", threads: int | None = None):
        super().__init__(model_path, threads)
        if precision not in ("fp32", "int8"):
            raise ValueError(f"onnxruntime backend: precision {precision!r} (fp32 or int8)")
        self.precision = precision
        self.name = f"onnxruntime-{precision}"
        self.session = self._session(quantized_onnx(self.model_path, self.dim) if precision == "int8"
                                     else optimized_onnx(self.model_path, self.dim))
        self._query = None if precision == "int8" else self._forward
        self.document_batch = 1 if precision == "int8" else None
        self._opening = threading.Lock()

    def _session(self, path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if self.threads:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        return _run(self.session, input_ids, attention_mask, token_type_ids)

    def _query_forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        with self._opening:  # int8 documents: the fp32 engine is opened at the first question
            if self._query is None:
                self._query = self._fp32_forward()
        return self._query(input_ids, attention_mask, token_type_ids)

    def _fp32_forward(self):
        session = self._session(optimized_onnx(self.model_path, self.dim))
        return lambda *inputs: _run(session, *inputs)


def _run(session, input_ids, attention_mask, token_type_ids) -> np.ndarray:
    names = {i.name for i in session.get_inputs()}
    feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    return session.run(["last_hidden_state"], {k: v for k, v in feed.items() if k in names})[0]
