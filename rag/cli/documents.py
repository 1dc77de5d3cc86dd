"""rag index, status, search, ask: the documents and the questions."""

from __future__ import annotations

import json

from ..config import Settings
from ..model import LOW_CONFIDENCE
from .common import EXIT_OK, EXIT_SOME_FAILED, progress_bars, quiet_libraries


def _kb_settings(args, settings: Settings) -> Settings:
    """The settings of the KB named by --kb (its corpus and index folders), or the default KB's."""
    if not args.kb:
        return settings
    from ..kb import Library

    return Library.open(settings).settings_for(args.kb)


def cmd_index(args, settings: Settings) -> int:
    from ..index import Index
    from ..load import skipped_summary

    quiet_libraries(settings)
    index = Index.open(settings=_kb_settings(args, settings))
    progress, close = progress_bars(settings)
    try:
        if args.rebuild:
            report = index.rebuild(args.paths or None, progress)
        else:
            report = index.add(args.paths or None, progress)
    finally:
        close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"indexed {len(report.added)} file(s), {report.unchanged} unchanged, {len(report.removed)} removed; "
              f"{report.chunks} chunks written, {report.embedded} embedded, in {report.seconds:.1f}s")
        if report.cluster:
            print("on the Ray cluster: " + "; ".join(
                f"{stage} on {len(nodes)} node(s) ({', '.join(f'{n[:8]}: {k} rows' for n, k in sorted(nodes.items()))})"
                for stage, nodes in report.cluster.items() if stage != "actors")
                + f"; by {report.cluster['actors']} embedding actor(s)")
        if report.skipped:
            print(skipped_summary(report.skipped))
        if report.failed:
            print(f"{len(report.failed)} file(s) could not be indexed:")
            for e in report.failed:
                print(f"  {e.where}: {e.reason}")
    return EXIT_OK if report.ok else EXIT_SOME_FAILED


def cmd_status(args, settings: Settings) -> int:
    from ..index import Index

    status = Index.open(settings=_kb_settings(args, settings), create=False).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    print(f"index      {status['index']}")
    print(f"documents  {status['documents']} in {status['files']} file(s), {status['pages']} PDF page(s)")
    print(f"chunks     {status['chunks']}")
    print(f"model      {status['model']} (dim {status['dim']}), chunks of {status['chunk_tokens']} tokens")
    print(f"vectors    {status['vectors'] or 'none yet'} (float, int8 or both: see docs/ENGINES.md)")
    print(f"size       {status['size_bytes'] / 1e6:.1f} MB on disk")
    if status["failed"]:
        print(f"failed     {len(status['failed'])} file(s):")
        for f in status["failed"]:
            print(f"  {f['path']}: {f['reason']}")
    return EXIT_OK


def _open_for_query(settings: Settings):
    """The knowledge bases --kb names (settings.kbs), else the default one, as one Selection."""
    from ..kb import Library

    quiet_libraries(settings)
    return Library.open(settings).select(settings.kbs)


def _kb_label(kb: str, selection) -> str:
    """A hit's KB, named when several are searched."""
    return f"{kb}: " if len(selection.names) > 1 else ""


def cmd_search(args, settings: Settings) -> int:
    selection = _open_for_query(settings)
    hits = selection.search(args.query, settings.k, settings.mode)
    if args.json:
        keys = ("kb", "doc_id", "source", "page", "start", "end", "score", "text")
        print(json.dumps([{k: getattr(h, k) for k in keys} for h in hits], indent=2, ensure_ascii=False))
        return EXIT_OK
    for rank, h in enumerate(hits, 1):
        page = f" p.{h.page}" if h.page else ""
        print(f"{rank}. {_kb_label(h.kb, selection)}{h.source}{page} chars {h.start}-{h.end}  score {h.score:.3f}  [{h.doc_id}]")
        print("   " + " ".join(h.text.split())[:300])
    return EXIT_OK


def cmd_ask(args, settings: Settings) -> int:
    from ..answer import ask

    index = _open_for_query(settings)
    streamed = []

    def show(token):  # the model's draft, as it comes; the verified answer follows it
        streamed.append(token)
        print(token, end="", flush=True)

    answer = ask(args.question, index=index, settings=settings,
                 on_token=show if settings.llm_url and not args.json else None)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    if streamed:
        print()
        print("verified:" if answer.mode == "generative" else "extractive answer:")
    print(answer.text)
    print(f"confidence {answer.confidence:.2f}" + (f" (below {LOW_CONFIDENCE:.2f}: low)" if not answer.abstained
                                                   and answer.confidence < LOW_CONFIDENCE else ""))
    if answer.note:
        print(f"({answer.note})")
    for c in answer.citations:
        page = f" p.{c.page}" if c.page else ""
        read = " (OCR)" if c.ocr else ""
        print(f"[{c.n}] {_kb_label(c.kb, index)}{c.source}{page}{read} chars {c.start}-{c.end}: \"{c.text}\"")
    if answer.abstained and answer.passages:
        print("Related passages:")
        for h in answer.passages[:3]:
            page = f" p.{h.page}" if h.page else ""
            print(f"  {_kb_label(h.kb, index)}{h.source}{page} chars {h.start}-{h.end}: \"{' '.join(h.text.split())[:160]}...\"")
    return EXIT_OK


