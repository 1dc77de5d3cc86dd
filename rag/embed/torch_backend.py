"""PyTorch: the reference (fp32) and bf16 autocast, the fallback that needs nothing beyond torch.

fp32 is exactly what SentenceTransformer computes (BertModel -> mean pooling -> normalize), loaded
through transformers' AutoModel instead of sentence-transformers, whose import alone costs seconds.
bf16 autocast runs the matmuls in bfloat16 (oneDNN uses AVX512_BF16 / AMX where the CPU has them:
1.6-1.9x here); on a CPU without native bf16 it is emulated and slower than fp32, so the factory
only picks it when the CPU reports bf16 support.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .base import Backend


class TorchBackend(Backend):
    def __init__(self, model_path, precision: str = "fp32", threads: int | None = None, device: str = "cpu"):
        super().__init__(model_path, threads)
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"torch backend: precision {precision!r} (fp32 or bf16)")
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.precision = precision
        self.name = f"torch-{precision}"
        self.device = device
        self.model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True).eval().to(device)

    def _autocast(self):
        if self.precision == "bf16":
            return self.torch.autocast(self.device.split(":")[0], dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        t = self.torch
        with t.inference_mode(), self._autocast():
            out = self.model(input_ids=t.from_numpy(input_ids).to(self.device),
                             attention_mask=t.from_numpy(attention_mask).to(self.device),
                             token_type_ids=t.from_numpy(token_type_ids).to(self.device))
        return out.last_hidden_state.float().cpu().numpy()
