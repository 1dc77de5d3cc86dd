"""Issue 14: `rag index --ray` on a real Ray cluster of two nodes on loopback, started once for this
file and stopped after it. Each index built through Ray is compared with a local build of the same
folder: same files, documents, chunks, offsets and failures, vectors within int8 rounding. Kills are
real SIGKILLs of a Ray worker, an actor and a driver process."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CORPUS_FILE, ROOT, rag, rag_killed_at
from rag import Index, RagError, Settings
from rag.cli import build_parser

LOOPBACK = "127.0.0.2"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'ray[data]'): no Ray cluster to test on")


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node with one CPU each, on loopback (127.0.0.2: Ray swaps 127.0.0.1 in an
    address for the machine's network address). The one embedding actor of a run holds one node's CPU
    throughout, so the files are loaded on the other: work always lands on both."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK,
                                                      "include_dashboard": False})
    c.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    c.wait_for_nodes()
    yield c
    import ray

    ray.shutdown()
    c.shutdown()


def make_corpus(folder):
    """The shipped corpus plus small files of every kind, one broken PDF and one bad JSONL record."""
    folder.mkdir()
    shutil.copy(CORPUS_FILE, folder / CORPUS_FILE.name)
    (folder / "otters.txt").write_text("Sea otters hold hands while they sleep. They do not drift apart.\n")
    (folder / "notes.md").write_text("# Kauri\n\nThe kauri is the tallest tree of Northland. Tane Mahuta is one.\n")
    (folder / "records.jsonl").write_text(
        '{"_id": "r1", "title": "Tides", "text": "The moon pulls the sea. Tides follow it twice a day."}\n'
        '{"_id": "r2", "text": "Glaciers carve valleys over thousands of years."}\n'
        '{"_id": "r3", "text": \n'
        '{"_id": "r4", "title": "Bees", "text": "Bees dance to tell the hive where flowers are."}\n')
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is no PDF at all")
    return folder


def contents(index) -> tuple:
    """What an index holds, in its order: files, documents, chunks with offsets and sentences, failures."""
    s = index.store
    files = sorted((path, f["source"], f["hash"]) for path, f in s.files().items())
    documents = [(d["path"], d["source"], d["doc_id"], d["page"], d["title"], d["text"]) for d in s.documents()]
    chunks = [(h.source, h.doc_id, h.page, h.start, h.end, h.text, h.sentences, h.title) for h in s.chunks()]
    return files, documents, chunks, s.failures()


def assert_same_index(got: Index, want: Index, failures=True) -> None:
    a, b = contents(got), contents(want)
    assert a[:3] == b[:3]
    if failures:
        assert a[3] == b[3]
    dim = want.store.manifest()["dim"]
    assert got.store.manifest()["dim"] == dim
    ha, hb = got.store.chunks(), want.store.chunks()
    va, vb = got.store.vectors_of([h.chunk_id for h in ha], dim), want.store.vectors_of([h.chunk_id for h in hb], dim)
    sa, sb = np.vstack([h.sentence_vectors for h in ha]), np.vstack([h.sentence_vectors for h in hb])
    for x, y in ((va, vb), (sa, sb)):
        # both sides stored as int8 with a scale per row (1/127 of the row's largest entry): equal up to
        # one rounding step, plus the last bits a batch of other shape changes in bf16 (which also move
        # the scale), and equal in direction to within 1e-4
        steps = np.abs(x - y) / (np.abs(y).max(axis=1, keepdims=True) / 127)
        assert steps.max() <= 1.5, f"differ by {steps.max():.2f} rounding steps"
        assert np.min(np.sum(x * y, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)) > 1 - 1e-4
    # and the FAISS side answers alike
    query = "How many U.S. presidents has Putin outlasted?"
    assert [(h.source, h.start) for h in got.search(query, k=3)] == [(h.source, h.start) for h in want.search(query, k=3)]


def places(report) -> dict[str, set[str]]:
    """The nodes the report says each stage ran on: {"loaded": {node id, ...}, "embedded": {...}}."""
    return {stage: set(report.cluster[stage]) for stage in ("loaded", "embedded")}


def sent(monkeypatch) -> list[list[str]]:
    """Spy on what the driver hands to the cluster: the paths in each Dataset it makes."""
    import ray.data

    calls, real = [], ray.data.from_items
    monkeypatch.setattr(ray.data, "from_items", lambda items, **kw: calls.append(
        [os.path.basename(pickle.loads(i["job"]).path) for i in items]) or real(items, **kw))
    return calls


@pytest.fixture
def pair(settings, tmp_path, cluster):
    """Settings for a local index and for one built on the cluster, same corpus: one embedding actor,
    four chunks a call (several calls, and other batches than the local run's)."""
    corpus = make_corpus(tmp_path / "docs")
    local = settings.replace(index_dir=tmp_path / "local")
    on_ray = settings.replace(index_dir=tmp_path / "ray", ray_address=cluster.address, ray_workers=1, batch_size=4)
    return corpus, local, on_ray


# -- no cluster needed ----------------------------------------------------------------------------------

def test_without_ray_the_flag_says_how_to_install_it_and_nothing_else_imports_ray(settings, corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the package
    index = Index.open(settings=settings.replace(ray_address="local"))
    with pytest.raises(RagError, match=re.escape("pip install 'ray[data]'")):
        index.add([corpus])
    code = ("import sys, rag, rag.cli, rag.index, rag.ingest, rag.embed\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # only rag.distributed imports it, and only rag index --ray that


def test_the_ray_flag_and_setting():
    assert build_parser().parse_args(["index", "--ray"]).ray_address == "local"
    assert build_parser().parse_args(["index", "docs", "--ray", "auto"]).ray_address == "auto"
    assert Settings.from_env(environ={"RAG_RAY_ADDRESS": "10.0.0.5:6379", "RAG_RAY_WORKERS": "4"}).ray_workers == 4
    with pytest.raises(RagError, match="put paths before --ray"):
        Settings.from_env(environ={}, ray_address="corpus")  # `rag index --ray corpus` read the folder as the address
    with pytest.raises(RagError, match="ray_workers"):
        Settings.from_env(environ={}, ray_workers=-1)


# -- on the cluster ---------------------------------------------------------------------------------------

@needs_ray
def test_an_index_built_on_the_cluster_equals_a_local_build(pair, cluster, monkeypatch):
    corpus, local, on_ray = pair
    want = Index.open(settings=local)
    expected = want.add([corpus])
    to_cluster = sent(monkeypatch)
    stages = []
    got = Index.open(settings=on_ray)
    report = got.add([corpus], progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert report.added == expected.added and report.chunks == expected.chunks == report.embedded
    assert [(e.path, e.line, e.reason) for e in report.failed] == [(e.path, e.line, e.reason) for e in expected.failed]
    assert {os.path.basename(e.path) for e in report.failed} == {"broken.pdf", "records.jsonl"}
    assert_same_index(got, want)
    assert to_cluster == [["broken.pdf", "notes.md", "otters.txt", "putin-diplomacy.txt", "records.jsonl"]]
    # the work ran on both nodes (each row names the node that loaded it and the one that embedded it)
    nodes = {n.node_id for n in cluster.list_all_nodes()}
    ran = places(report)
    assert ran["loaded"] | ran["embedded"] == nodes and len(nodes) == 2
    assert report.cluster["actors"] == 1 and sum(report.cluster["embedded"].values()) == sum(report.cluster["loaded"].values())
    assert ("cluster", 5, 5) in stages and ("embedding", report.embedded, report.embedded) in stages
    assert ("reading", 5, 5) in stages


@needs_ray
def test_a_rerun_sends_only_changed_files_and_keeps_unchanged_chunks(pair, monkeypatch):
    import rag.ingest

    monkeypatch.setattr(rag.ingest, "BATCH_CHUNKS", 2)  # files of several documents are written in parts
    corpus, local, on_ray = pair
    want, got = Index.open(settings=local), Index.open(settings=on_ray)
    want.add([corpus])
    got.add([corpus])
    to_cluster = sent(monkeypatch)
    # unchanged files never reach the cluster; a file that failed has no stored hash, and is tried again
    assert got.add([corpus]).unchanged == 4 and to_cluster == [["broken.pdf"]]
    # two files change, one is new, one is deleted. The shipped text grows at its end: its first chunks
    # stay as they were. The first record is rewritten: the last one keeps its vector, though the file's
    # first part, written before it, removes the file's old version
    with open(corpus / CORPUS_FILE.name, "a") as f:
        f.write("\nA new closing paragraph. It says that talks will go on next spring in Geneva.\n")
    records = corpus / "records.jsonl"
    records.write_text(records.read_text().replace("Tides follow it twice a day", "Tides follow it, twice a day"))
    (corpus / "bees.txt").write_text("A queen bee can lay two thousand eggs in a day.\n")
    (corpus / "otters.txt").unlink()
    expected, report = want.add([corpus]), got.add([corpus])
    assert to_cluster[1:] == [["bees.txt", "broken.pdf", "putin-diplomacy.txt", "records.jsonl"]]
    assert sorted(report.added) == sorted(expected.added) == ["bees.txt", "putin-diplomacy.txt", "records.jsonl"]
    assert report.removed == expected.removed == ["otters.txt"]
    assert report.embedded == expected.embedded < report.chunks  # the unchanged chunks kept their vectors
    assert_same_index(got, want)


@needs_ray
def test_a_worker_and_an_actor_killed_mid_run_are_retried(pair, cluster, tmp_path):
    """Every worker process of the run SIGKILLs itself at its first file load or embedding call, once
    for the whole run; and no worker has what PDFs need (an ImportError, as a missing OCR engine)."""
    import ray

    corpus, local, on_ray = pair
    markers = tmp_path / "killed"
    markers.mkdir()

    def sabotage():
        import os
        import signal

        from rag import distributed, load

        def die_once(stage):
            try:
                os.close(os.open(markers / stage, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os.kill(os.getpid(), signal.SIGKILL)

        def no_ocr(*args):
            raise ImportError("no OCR engine on this worker")

        load_task, embed_call = distributed._load, distributed.Embed.__call__
        distributed._load = lambda row, **kw: die_once("load") or load_task(row, **kw)
        distributed.Embed.__call__ = lambda self, batch: die_once("embed") or embed_call(self, batch)
        load.LOADERS[".pdf"] = no_ocr

    want = Index.open(settings=local)
    want.add([corpus])
    ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": sabotage})  # the run uses this
    try:
        report = Index.open(settings=on_ray).add([corpus])
    finally:
        ray.shutdown()
    assert sorted(p.name for p in markers.iterdir()) == ["embed", "load"]  # both kills happened
    got = Index.open(settings=on_ray)
    assert_same_index(got, want, failures=False)
    (pdf,) = [e for e in report.failed if e.path.endswith("broken.pdf")]
    assert re.fullmatch(r"failed on Ray node [0-9a-f]{56}: ImportError: no OCR engine on this worker", pdf.reason)
    assert [f for f in got.store.failures() if f["path"].endswith("broken.pdf")][0]["reason"] == pdf.reason


@needs_ray
def test_an_embedding_actor_killed_from_outside_mid_run_is_restarted(pair, cluster, tmp_path):
    """The one embedding actor stops inside its first call and says its process id; this test SIGKILLs
    that process, as the kernel's OOM killer or an operator would. Ray restarts the actor (with the
    constructor arguments the driver keeps in the object store for the run) and runs the call again:
    the index is a local build's."""
    import threading

    import ray

    corpus, local, on_ray = pair
    stopped, constructed = tmp_path / "embedding-actor.pid", tmp_path / "constructed.txt"

    def stop_first_call():
        import os
        import threading

        from rag import distributed

        embed_init, embed_call = distributed.Embed.__init__, distributed.Embed.__call__

        def init_noted(self, *args, **kwargs):
            embed_init(self, *args, **kwargs)
            with open(constructed, "a") as f:  # one short line per append: whole lines, whoever writes
                f.write(f"{self.actor} {os.getpid()}\n")

        def first_call_waits(self, batch):
            try:  # the first call of the run, in whichever actor: it claims the stop (the claim stays)
                os.close(os.open(stopped.with_suffix(".claimed"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return embed_call(self, batch)
            stopped.with_suffix(".tmp").write_text(str(os.getpid()))
            os.replace(stopped.with_suffix(".tmp"), stopped)  # the pid is there whole when the file appears
            threading.Event().wait()  # until killed

        distributed.Embed.__init__, distributed.Embed.__call__ = init_noted, first_call_waits

    want = Index.open(settings=local)
    want.add([corpus])
    ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": stop_first_call})
    try:
        outcome = {}
        run = threading.Thread(target=lambda: outcome.update(report=Index.open(settings=on_ray).add([corpus])))
        run.start()
        while not stopped.exists():
            assert run.is_alive(), "the run ended without calling the embedding actor"
            run.join(timeout=0.1)
        pid = int(stopped.read_text())
        assert "MapWorker" in Path(f"/proc/{pid}/cmdline").read_text()  # the embedding actor's process
        os.kill(pid, signal.SIGKILL)
        run.join()
    finally:
        ray.shutdown()
    (first, first_pid), (again, again_pid) = [line.split() for line in constructed.read_text().splitlines()]
    assert first == again and int(first_pid) == pid != int(again_pid)  # the same actor, restarted in a new process
    report = outcome["report"]
    assert report.chunks == report.embedded > 0 and report.cluster["actors"] == 1
    assert_same_index(Index.open(settings=on_ray), want)


@needs_ray
def test_a_driver_killed_mid_run_leaves_the_last_commit_and_a_rerun_finishes(pair, cluster):
    corpus, local, on_ray = pair
    env = {"RAG_INDEX_DIR": str(on_ray.index_dir), "RAG_QUIET": "1"}
    killed = rag_killed_at("""
        import os, signal
        from rag import ingest, store
        ingest.BATCH_CHUNKS = 2  # a commit every file or so
        commits, finish = [], store._Transaction.__exit__
        def commit_then_die(self, *exc):
            finish(self, *exc)
            commits.append(1)
            if len(commits) == 3:  # the schema, then two batches of files
                os.kill(os.getpid(), signal.SIGKILL)
        store._Transaction.__exit__ = commit_then_die
    """, "index", str(corpus), "--ray", cluster.address, env=env)
    assert killed.returncode == -9, killed.stderr
    partial = Index.open(settings=on_ray).status()
    assert 0 < partial["files"] < 4
    rerun = rag("index", str(corpus), "--ray", cluster.address, env=env)  # as a user would, reading its report
    assert rerun.returncode == 1, rerun.stderr  # the broken PDF and JSONL record are reported, the rest indexed
    assert f"indexed {4 - partial['files']} file(s), {partial['files']} unchanged" in rerun.stdout, rerun.stdout
    assert re.search(r"^on the Ray cluster: loaded on [12] node\(s\) \([0-9a-f]{8}: \d+ rows.*\); embedded on [12] "
                     r"node\(s\) \(.*\); by \d+ embedding actor\(s\)$", rerun.stdout, re.M), rerun.stdout
    want = Index.open(settings=local)
    want.add([corpus])
    assert_same_index(Index.open(settings=on_ray), want)

