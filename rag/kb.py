"""Knowledge bases: named collections, each its own corpus folder and index, listed and opened by one Library.

The layer above `Index`. The KB `default` is the configured `corpus_dir` and `index_dir` (what every earlier
version wrote: it opens as it is, nothing re-embedded). Others are registered in `library.sqlite` in that same index
folder; a new KB's index goes to `<index_dir>/kbs/NAME/index` and, unless another folder is given, its corpus to
`<index_dir>/kbs/NAME/corpus`. Each KB has one writer at a time (its index's lock) and readers never wait.

    library = Library.open(settings)
    library.create("hr", corpus_dir="/srv/hr")
    hits = library.select(["hr", "eng"]).search("parental leave")   # one ranking; hit.kb names each one's KB

Who may read or add to a KB is not decided here but in rag/access.py, which every route calls.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import retrieve
from .config import Settings, check_kb_name
from .errors import KnowledgeBaseNotFoundError, RagError
from .index import Index
from .ingest import absolute
from .model import Hit
from .store import LibraryStore

DEFAULT_KB = "default"


@dataclass(frozen=True, kw_only=True)
class KnowledgeBase:
    name: str
    corpus_dir: Path
    index_dir: Path


class Library:
    """The knowledge bases of one installation (one `index_dir`). Cheap to make: KB indexes are opened once per
    process and shared (see `open_index`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = Path(settings.index_dir)
        self.store = LibraryStore(self.root)

    @classmethod
    def open(cls, settings: Settings | None = None) -> "Library":
        return cls(settings or Settings.from_env())

    # -- the list ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every KB, `default` first, then by name."""
        return [DEFAULT_KB] + [n for n in self.store.kbs() if n != DEFAULT_KB]

    def get(self, name: str) -> KnowledgeBase:
        if name == DEFAULT_KB:
            return KnowledgeBase(name=name, corpus_dir=Path(self.settings.corpus_dir), index_dir=self.root)
        row = self.store.kbs().get(name)
        if row is None:
            raise KnowledgeBaseNotFoundError(name)
        return KnowledgeBase(name=name, corpus_dir=self._path(row["corpus"]), index_dir=self._path(row["index_dir"]))

    def _path(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def create(self, name: str, corpus_dir=None) -> KnowledgeBase:
        """Register a KB; its folders are made now. A corpus folder given is used where it is (absolute)."""
        check_kb_name(name)
        if name in self.names():
            raise RagError(f"a knowledge base named {name!r} exists already (rag kb list)")
        home = Path("kbs") / name
        corpus = absolute(Path(corpus_dir)) if corpus_dir else str(home / "corpus")
        taken = {str(absolute(self.get(n).corpus_dir)): n for n in self.names()}
        if str(absolute(self._path(corpus))) in taken:
            raise RagError(f"{corpus} is already the corpus of the knowledge base {taken[str(absolute(self._path(corpus)))]!r}: "
                           "give each KB its own folder")
        for folder in (self._path(corpus), self._path(str(home / "index"))):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RagError(f"cannot make {folder} ({e.strerror or e}); choose a folder you can write") from None
        self.store.add_kb(name, corpus, str(home / "index"))
        return self.get(name)

    def remove(self, name: str) -> KnowledgeBase:
        """Unregister a KB and delete its index. Its corpus folder, the documents themselves, is left alone."""
        if name == DEFAULT_KB:
            raise RagError("the default knowledge base cannot be removed (it is the corpus and index folders "
                           "the settings name)")
        kb = self.get(name)
        with open_index(self.settings_for(kb), kb=name, build=False).write_lock():
            forget_index(kb.index_dir)
            self.store.remove_kb(name)
            shutil.rmtree(kb.index_dir, ignore_errors=True)
        return kb

    # -- opening -----------------------------------------------------------------------------------

    def settings_for(self, kb: KnowledgeBase | str) -> Settings:
        kb = self.get(kb) if isinstance(kb, str) else kb
        return self.settings.replace(index_dir=kb.index_dir, corpus_dir=kb.corpus_dir)

    def index(self, name: str, build: bool = True) -> Index:
        """The KB's open index. With build, an empty index is first filled from the KB's corpus folder."""
        return open_index(self.settings_for(name), kb=name, build=build)

    def select(self, names=None, build: bool = True) -> "Selection":
        """Several KBs to search as one (names in the order given, each once); none: settings.kbs, else default.
        With build, an empty one is first filled from its corpus (a server builds its KBs itself: build=False)."""
        names = list(dict.fromkeys([names] if isinstance(names, str) else names or self.settings.kbs or [DEFAULT_KB]))
        return Selection({n: self.index(n, build=build) for n in names}, self.settings)

    def status(self, name: str) -> dict:
        """{"name", "corpus", "index", "files", "documents", "pages", "chunks", "size_bytes"}."""
        kb = self.get(name)
        index = open_index(self.settings_for(kb), kb=name, build=False)
        status = index.status()
        keys = ("files", "documents", "pages", "chunks", "size_bytes")
        return {"name": name, "corpus": str(kb.corpus_dir), "index": str(kb.index_dir),
                **{k: status[k] for k in keys}}


class Selection:
    """One or more KBs searched as one: one ranking across them, every hit naming its KB. What `ask` reads.

    All must have been built with one model (their vectors are compared with one question vector)."""

    def __init__(self, indexes: dict[str, Index], settings: Settings):
        if not indexes:
            raise RagError("no knowledge base to search")
        self.indexes = indexes
        self.settings = settings
        first = next(iter(indexes.values()))
        models = {i.store.manifest().get("model") for i in indexes.values()}
        if len(models) > 1:
            raise RagError(f"the knowledge bases {', '.join(indexes)} were built with different models "
                           f"({', '.join(sorted(map(str, models)))}) and cannot be searched together: ask them one by one")
        self.embedder_index = first

    @property
    def names(self) -> list[str]:
        return list(self.indexes)

    @property
    def embedder(self):
        return self.embedder_index.embedder

    def embed_question(self, question: str):
        return self.embedder_index.embed_question(question)

    def store_of(self, kb: str):
        """The store of one of its KBs: where a hit's chunk id (hit.kb, hit.chunk_id) belongs."""
        return self.indexes[kb].store

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               query_vector: np.ndarray | None = None, settings: Settings | None = None) -> list[Hit]:
        """The top-k chunks across the KBs (see Index.search; settings for k, mode and fusion)."""
        s = settings or self.settings
        mode = mode or s.mode
        if query_vector is None and mode != "bm25":
            query_vector = self.embed_question(query)[0]
        shards = [index.shard(mode) for index in self.indexes.values()]
        return retrieve.search(shards=shards, query=query, query_vector=query_vector, k=k or s.k, mode=mode,
                               fusion=s.fusion, alpha=s.alpha, candidates=s.candidates, max_df=s.keyword_max_df)


_open: dict = {}  # key -> (Index, the lock its first build holds)
_open_lock = threading.Lock()


def open_index(settings: Settings, kb: str = "", build: bool = True) -> Index:
    """The index at settings.index_dir, opened once per process (per folder and the settings its files depend on);
    with build, filled from settings.corpus_dir when empty (or written by an older version)."""
    key = (absolute(Path(settings.index_dir)), settings.model, settings.embed_backend, settings.embed_precision,
           settings.chunk_tokens, settings.overlap_tokens)
    with _open_lock:
        if key not in _open:
            _open[key] = (Index.open(settings.index_dir, settings, upgrade=True, kb=kb), threading.Lock())
        index, building = _open[key]
    if build and index.store.counts()["chunks"] == 0:
        with building:  # one build; other callers wait for it rather than fail on the write lock
            if index.store.counts()["chunks"] == 0:
                report = index.add([settings.corpus_dir])
                if not report.added and not report.unchanged:
                    named = kb and kb != DEFAULT_KB
                    raise RagError(f"nothing to answer from: no document could be indexed in {settings.corpus_dir}"
                                   + (f" (the knowledge base {kb!r}); add files there and run rag index --kb {kb}"
                                      if named else ""))
    return index


def forget_index(index_dir: Path) -> None:
    """Close and drop the open index of this folder (it is being deleted)."""
    folder = absolute(Path(index_dir))
    with _open_lock:
        for key in [k for k in _open if k[0] == folder]:
            _open.pop(key)[0].close()


def default_index(settings: Settings | None = None) -> Index:
    """The default KB's index (settings.index_dir), built from settings.corpus_dir when empty."""
    return Library.open(settings).index(DEFAULT_KB)
