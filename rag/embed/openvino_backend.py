"""OpenVINO: the recommended engine (oneDNN kernels: AVX512_BF16/AMX for bf16, VNNI/AMX for int8).

precision:
  fp32  INFERENCE_PRECISION_HINT f32: vectors as torch's (cos 1.0000), 1.3x per CPU-second.
  bf16  the same IR, matmuls in bf16 (the plugin's default on a CPU with native bf16): 3.6x per CPU-second
        vs SentenceTransformer.encode, nDCG 0.6700 vs 0.6708, cos min 0.99997.
  int8  the NNCF-quantized IR (openvino_int8.py) for documents, fp32 for questions: 3.5-4x, nDCG 0.6716 on an
        AMX CPU, barely faster than bf16 there. On AVX2 without VNNI its matmuls run oneDNN's generic
        gemm_s8u8s32 and it is no faster than fp32 (docs/ENGINES.md).

The IR comes from export.py at first use; warm starts load it in ~1-2 s without importing torch. The compiled
model is cached by OpenVINO (CACHE_DIR, one per precision: see below). Inference releases the GIL.
Threads: INFERENCE_NUM_THREADS, one stream (latency mode): the project calls the model one batch at a time.
"""

from __future__ import annotations

import threading

import numpy as np

from . import export
from .base import Backend

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": None}  # int8: activations where not quantized run in the default


class OpenVINOBackend(Backend):
    def __init__(self, model_path, precision: str = "bf16", threads: int | None = None, calibration=None, **int8):
        super().__init__(model_path, threads)
        if precision not in HINTS:
            raise ValueError(f"openvino backend: precision {precision!r} (fp32, bf16 or int8)")
        import openvino as ov

        self.precision = precision
        self.name = f"openvino-{precision}"
        # a shape it has not run before costs ~10 ms more (kernels are prepared per shape): padded to multiples
        # of 16 tokens, questions and cited sentences of any length reuse a few. Not int8: the quantized model
        # lets padding move the vectors (cosine 0.95 on a short text padded in a batch of its own)
        self.pad_multiple = 1 if precision == "int8" else 16
        if precision == "int8":
            from .openvino_int8 import quantized_ir

            xml = quantized_ir(self.model_path, calibration, **int8)  # subset, smooth_quant, bias_correction
        else:
            xml = export.openvino_ir(self.model_path)
        core = ov.Core()
        # one compiled-model cache per precision: OpenVINO 2026.4's cache key ignores INFERENCE_PRECISION_HINT,
        # and an f32 blob loaded under the bf16 hint crashes (segfault / "double free") on the first long batch
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                  "CACHE_DIR": str(export.cache_dir(self.model_path) / f"ov-compiled-{precision}")}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        if HINTS[precision]:
            config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
        # int8 documents, fp32 questions: the fp32 model is compiled at the first question
        self._fp32 = None if precision == "int8" else self.compiled
        self._fp32_config = {**config, "INFERENCE_PRECISION_HINT": "f32",
                             "CACHE_DIR": str(export.cache_dir(self.model_path) / "ov-compiled-fp32")}
        self._core = core
        self._opening = threading.Lock()
        self._local = threading.local()  # an infer request serves one call at a time: one per thread and model
        self._inputs = {p.get_any_name() for p in self.compiled.inputs}

    def _forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        return self._infer(self.compiled, "request", input_ids, attention_mask, token_type_ids)

    def _query_forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        with self._opening:
            if self._fp32 is None:
                xml = export.openvino_ir(self.model_path)
                self._fp32 = self._core.compile_model(self._core.read_model(str(xml)), "CPU", self._fp32_config)
        return self._infer(self._fp32, "query_request", input_ids, attention_mask, token_type_ids)

    def _infer(self, compiled, slot: str, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        request = getattr(self._local, slot, None)
        if request is None:
            request = compiled.create_infer_request()
            setattr(self._local, slot, request)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        result = request.infer({k: v for k, v in feed.items() if k in self._inputs}, share_inputs=True)
        return result[compiled.output(0)]
