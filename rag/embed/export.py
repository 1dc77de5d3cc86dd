"""Model files for ONNX Runtime and OpenVINO, made at first use from the packaged weights, then cached.

Nothing is downloaded and nothing large ships: the first run exports the model's safetensors to ONNX
(torch.onnx, the TorchScript exporter: no onnxscript needed), OpenVINO converts that ONNX to its IR,
and the quantized variants are derived from those. Each file lands in a cache folder keyed by the
model files and the library versions, written under a lock and renamed into place, so two processes
starting together export once and an interrupted export leaves nothing half-written.

Cache: $RAG_MODEL_CACHE, else $XDG_CACHE_HOME/rag/models, else ~/.cache/rag/models.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

EXPORT_VERSION = 1  # bump when an export changes what it writes
TIMINGS: dict[str, float] = {}  # seconds spent making each artefact in this process (for the benchmark)


def cache_root() -> Path:
    if os.environ.get("RAG_MODEL_CACHE"):
        return Path(os.environ["RAG_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "models"


def model_key(model_path: Path) -> str:
    """Name + a digest of the model files (sizes, mtimes, small files' contents): new weights, new key."""
    h = hashlib.sha1(f"v{EXPORT_VERSION}".encode())
    for p in sorted(Path(model_path).rglob("*")):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt"):
            st = p.stat()
            h.update(f"{p.relative_to(model_path)}:{st.st_size}:{st.st_mtime_ns}".encode())
            if st.st_size < 100_000:
                h.update(p.read_bytes())
    return f"{Path(model_path).name}-{h.hexdigest()[:12]}"


def cache_dir(model_path: Path) -> Path:
    d = cache_root() / model_key(Path(model_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def _locked(directory: Path):
    with open(directory / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(model_path: Path, name: str, make: Callable[[Path], None], extra_suffixes=()) -> Path:
    """cache_dir/name, made by make(tmp_path) once; tmp + rename, under a lock. Also renames tmp siblings
    with extra_suffixes (an OpenVINO .xml has its .bin)."""
    d = cache_dir(model_path)
    target = d / name
    if target.exists():
        return target
    with _locked(d):
        if target.exists():  # another process made it while we waited
            return target
        tmp = d / f"tmp-{os.getpid()}-{name}"
        started = time.perf_counter()
        print(f"preparing the embedding model for this machine: {name} (once; cached in {d})", file=sys.stderr,
              flush=True)
        try:
            with warnings.catch_warnings():  # the exporters' deprecation and tracer notes are not the user's
                warnings.simplefilter("ignore")
                make(tmp)
            for suffix in extra_suffixes:  # siblings first: the main file's presence means "complete"
                os.replace(tmp.with_suffix(suffix), target.with_suffix(suffix))
            os.replace(tmp, target)
        finally:
            for leftover in d.glob(f"tmp-{os.getpid()}-*"):
                leftover.unlink(missing_ok=True)
        TIMINGS[name] = time.perf_counter() - started
        (d / f"{name}.json").write_text(json.dumps({"seconds": TIMINGS[name], "created": time.time()}))
    return target


# -- the exports ------------------------------------------------------------------------------------

def onnx_fp32(model_path: Path) -> Path:
    """The HF model as ONNX: inputs input_ids/attention_mask/token_type_ids (batch, sequence), output
    last_hidden_state (batch, sequence, hidden), both axes dynamic."""

    def make(out: Path):
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager").eval()

        class LastHidden(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        ids = torch.randint(1000, 2000, (2, 16), dtype=torch.int64)
        mask = torch.ones_like(ids)
        mask[1, 10:] = 0
        axes = {0: "batch", 1: "sequence"}
        with torch.inference_mode():
            torch.onnx.export(LastHidden(model), (ids, mask, torch.zeros_like(ids)), str(out), dynamo=False,
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17, do_constant_folding=True,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                            "last_hidden_state": axes})

    return cached(model_path, "model-fp32.onnx", make)


def openvino_ir(model_path: Path, via: str = "onnx") -> Path:
    """OpenVINO IR (xml + bin, weights kept in fp32). via="onnx" converts the ONNX export (what was benchmarked:
    ORT and OpenVINO then run the same graph); via="torch" converts the PyTorch module directly (no onnx package,
    no 90 MB ONNX file; outputs checked equal to torch within 5e-6, speed not benchmarked)."""
    if via == "torch":
        return cached(model_path, "openvino-fp32-torch.xml", lambda out: _ov_from_torch(model_path, out),
                      extra_suffixes=(".bin",))
    onnx_path = onnx_fp32(model_path)

    def make(out: Path):
        import openvino as ov

        ov.save_model(ov.convert_model(str(onnx_path)), str(out), compress_to_fp16=False)  # out.xml + out.bin

    return cached(model_path, "openvino-fp32.xml", make, extra_suffixes=(".bin",))


def _ov_from_torch(model_path: Path, out: Path) -> None:
    import openvino as ov
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    names = ("input_ids", "attention_mask", "token_type_ids")
    converted = ov.convert_model(LastHidden(model), example_input=dict(zip(names, (ids, mask, torch.zeros_like(ids)))),
                                 input=[(n, [-1, -1], ov.Type.i64) for n in names])
    ov.save_model(converted, str(out), compress_to_fp16=False)
