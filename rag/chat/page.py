"""The page: layout and wiring of the chat window, launching it, and its command line.

    python ui.py [--index index/] [--corpus corpus/] [--host 127.0.0.1] [--port 7860] [--share]
                 [--auth-file users.txt | --no-auth] [--read-only]

One page: a multi-turn chat whose answers carry markers [n]; beside it the sources panel, where each
citation shows its file, page and character range and the cited sentence highlighted inside its
passage (click a marker to bring it into view); uploads into the corpus, indexed incrementally;
the index status with a re-index button; settings for k and the retrieval mode. The same answers
are served to scripts by the named API endpoint `ask` (gradio_client: client.predict(q, api_name="/ask")).
Who may ask and who may add is access.py's: logins, roles, and no public chat without them.

No `from __future__ import annotations` here: gradio finds the gr.Request parameter of a handler by
its annotation, which must be the class itself, and gradio is imported only when the page is built.
"""

import argparse
import os
import sys
from pathlib import Path

from ..config import MODES, Settings
from ..errors import AccessError, RagError
from ..load import SUFFIXES
from .access import LOGIN_MESSAGE, Access, check_exposure, no_auth_warning
from .app import MAX_K, ChatApp
from .render import render_panel
from .safe_files import SafeFiles
from .throttle import LoginThrottle
from .uploads import MAX_UPLOAD_MB

STATIC = Path(__file__).resolve().parent / "static"


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def build_app(settings, max_upload_mb: float = MAX_UPLOAD_MB, access: Access | None = None) -> "gr.Blocks":
    """The chat window over settings.index_dir and settings.corpus_dir; start-up indexing begins at launch().

    `access` (default: from settings.auth_file and settings.read_only) decides who sees and may use
    the upload and re-index controls; with --read-only they are not built at all.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no version check, no analytics calls
    import gradio as gr

    app = ChatApp(settings, max_upload_mb=max_upload_mb, access=access)
    gated = app.access.users is not None  # logins: the controls appear per session, for uploaders
    can_add = not app.access.read_only
    with gr.Blocks(title="Ask your documents") as demo:
        demo.rag_app = app  # for launch() and tests
        gr.Markdown("## Ask your documents\nAnswers cite the exact sentences they come from: click a marker [n] to check it.")
        with gr.Row(equal_height=True, elem_id="rag-docbar"):
            status = gr.HTML(app.status_html(), elem_id="rag-status", scale=4)
            if can_add:
                upload_btn = gr.UploadButton(
                    "Add documents",
                    elem_id="rag-upload",
                    file_count="multiple",
                    file_types=list(SUFFIXES),
                    type="filepath",
                    size="sm",
                    scale=0,
                    min_width=150,
                    visible=not gated,
                )
                reindex_btn = gr.Button("Re-index", elem_id="rag-reindex", size="sm", scale=0, min_width=110, visible=not gated)
            if gated:
                logout_btn = gr.Button("Log out", elem_id="rag-logout", link="logout", size="sm", scale=0, min_width=90)
        upload_log = gr.HTML("", elem_id="rag-upload-log")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chatbot = gr.Chatbot(
                    elem_id="rag-chat",
                    label="Chat",
                    height=540,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Ask something your documents answer, e.g. *How many U.S. presidents has Putin outlasted?*",
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        elem_id="rag-question",
                        show_label=False,
                        placeholder="Ask a question and press Enter",
                        scale=5,
                        lines=1,
                        max_lines=4,
                        autofocus=True,
                    )
                    ask_btn = gr.Button("Ask", variant="primary", elem_id="rag-ask", scale=1, min_width=80)
                with gr.Row(equal_height=False):
                    clear_btn = gr.Button("New conversation", size="sm", elem_id="rag-clear", scale=0, min_width=160)
                with gr.Accordion("Settings", open=False):
                    k = gr.Slider(1, MAX_K, value=min(settings.k, MAX_K), step=1, label="Passages to retrieve (k)", elem_id="rag-k")
                    mode = gr.Radio(
                        list(MODES),
                        value=settings.mode,
                        label="Retrieval mode",
                        info="hybrid = meaning (dense) + keywords (BM25)",
                        elem_id="rag-mode",
                    )
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources")
                sources = gr.HTML(render_panel([]), elem_id="rag-sources")
        turns = gr.State([])

        chat_io = dict(
            fn=app.chat,
            inputs=[question, turns, k, mode],
            outputs=[chatbot, sources, turns, question],
            concurrency_limit=4,
            concurrency_id="chat",
            api_visibility="private",
            show_progress="hidden",  # the pending message has its own spinner and words
        )
        question.submit(**chat_io)
        ask_btn.click(**chat_io)
        clear_btn.click(
            lambda: ([], render_panel([]), [], ""),
            outputs=[chatbot, sources, turns, question],
            api_visibility="private",
            queue=False,
        )
        if can_add:
            # the user comes from the login (gr.Request), never from what the browser sends
            def upload(files, request: gr.Request):
                try:
                    yield from app.upload(files, user=request.username)
                except AccessError as e:
                    raise gr.Error(str(e)) from None

            def reindex(request: gr.Request):
                try:
                    yield from app.reindex(user=request.username)
                except AccessError as e:
                    raise gr.Error(str(e)) from None

            index_io = dict(outputs=[upload_log, status], concurrency_limit=1, concurrency_id="index",
                            api_visibility="private", show_progress="hidden")
            upload_btn.upload(upload, inputs=upload_btn, **index_io)
            reindex_btn.click(reindex, **index_io)
        if gated:
            def session(request: gr.Request):
                """Per login: whose session this is, and the adding controls only for uploaders."""
                updates = [gr.update(value=f"Log out {request.username}")]
                if can_add:
                    shown = app.access.may_add(request.username)
                    updates += [gr.update(visible=shown), gr.update(visible=shown)]
                return updates

            controls = [logout_btn] + ([upload_btn, reindex_btn] if can_add else [])
            demo.load(session, outputs=controls, api_visibility="private", queue=False)
        demo.load(app.watch_status, outputs=status, api_visibility="private", concurrency_limit=None, show_progress="hidden")
        gr.api(app.api_ask, api_name="ask", concurrency_limit=4, concurrency_id="chat")
    return demo


def poll_less(demo, free: float = 0.02, progress: float = 0.1) -> None:
    """Let an idle chat sleep. gradio 6's queue looks for new events every 1 ms on Linux (and for progress
    every 10 ms) even with nobody connected: 4-5% of a core, spent waking up (bench/idle_chat.py). Every
    20 ms brings that to about 1%, for at most 20 ms more before an event starts. These are attributes
    of gradio's Queue, not options: without them (another gradio), it polls as it did."""
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free"):
        queue.sleep_when_free, queue.progress_update_sleep_when_free = free, progress


def launch(demo, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True,
           no_auth: bool = False, **kw):
    """Launch with what the page needs: our CSS and script, the corpus served, uploads capped, and
    with a users file, gradio's login in front of everything and password guessing slowed down.

    Raises AccessError rather than publish the chat without logins (see access.check_exposure).
    """
    app: ChatApp = demo.rag_app
    check_exposure(host=host, share=share, access=app.access, no_auth=no_auth)
    from starlette.middleware import Middleware

    middleware = [Middleware(SafeFiles)]
    if app.access.users is not None:
        middleware.append(Middleware(LoginThrottle))
        kw.update(auth=app.access.login, auth_message=LOGIN_MESSAGE)
    kw["app_kwargs"] = {**kw.get("app_kwargs", {}), "middleware": middleware}
    demo.queue(default_concurrency_limit=2)
    poll_less(demo)
    launched = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=[str(app.corpus_dir)],
        max_file_size=app.max_upload_bytes,
        css=_static("chat.css"),
        head=f"<script>\n{_static('chat.js')}</script>",
        prevent_thread_lock=True,
        footer_links=["api", "gradio"],
        enable_monitoring=False,  # gradio's traffic dashboard: nothing this chat needs to expose
        mcp_server=False,  # gradio's MCP server checks no login: it would hand `ask` to anyone
        **kw,
    )
    app.start()  # once listening: a taken port stops the start before any indexing
    if block:
        demo.block_thread()
    return launched


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rag chat", description="The chat window over your documents, with cited answers.")
    p.add_argument("--index", default=None, help="index folder (default: index/, or RAG_INDEX_DIR)")
    p.add_argument("--corpus", default=None, help="corpus folder indexed at start and where uploads go (default: corpus/)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
        help="port (default 7860, or GRADIO_SERVER_PORT)",
    )
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default; needs --auth-file)")
    p.add_argument("--auth-file", default=None,
                   help="users who must log in (`rag user add`); needed beyond 127.0.0.1 (RAG_AUTH_FILE)")
    p.add_argument("--no-auth", action="store_true", help="no login even beyond 127.0.0.1: anyone who reaches it reads and adds")
    p.add_argument("--read-only", action="store_true", default=None, help="no uploads or re-indexing from the page (RAG_READ_ONLY)")
    p.add_argument("--k", type=int, default=None, help="passages to retrieve (default 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default hybrid)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"largest accepted upload (default {MAX_UPLOAD_MB})")
    return p.parse_args(argv)


def main(argv=None, settings=None) -> int:
    """Run the window until interrupted. `settings` (e.g. from `rag chat`) is the base; flags override it."""
    args = parse_args(argv)
    try:
        overrides = dict(index_dir=args.index, corpus_dir=args.corpus, k=args.k, mode=args.mode,
                         auth_file=args.auth_file, read_only=args.read_only)
        settings = Settings.from_env(**overrides) if settings is None else settings.replace(**overrides)
        access = Access.from_settings(settings)
        check_exposure(host=args.host, share=args.share, access=access, no_auth=args.no_auth)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.no_auth:
        print(no_auth_warning(args.host, args.share), file=sys.stderr)
    demo = build_app(settings, max_upload_mb=args.max_upload_mb, access=access)
    try:
        launch(demo, host=args.host, port=args.port, share=args.share, no_auth=args.no_auth, block=False)
    except OSError as e:  # gradio's "Cannot find empty port": the port is taken, or not ours to use
        print(f"error: cannot listen on {args.host}:{args.port} ({e.strerror or 'taken'}): another program uses "
              "it; pick another port with --port N (or GRADIO_SERVER_PORT)", file=sys.stderr)
        return 2
    demo.rag_app.opened.wait()  # quick: opening, not indexing; an index that cannot open stops the start
    if demo.rag_app.index is None:
        demo.close()
        print(f"error: {demo.rag_app.open_error}", file=sys.stderr)
        return 2
    if access.users is not None:
        users = access.users.users().values()
        print(f"logins from {settings.auth_file}: {len(users)} user(s), {sum(u.can_upload for u in users)} may add documents"
              + (" (read-only: none will)" if settings.read_only else ""), file=sys.stderr)
    print(f"index {settings.index_dir} over {settings.corpus_dir}; indexing progress is shown on the page", file=sys.stderr)
    demo.block_thread()
    return 0
