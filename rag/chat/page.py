"""The page: layout and wiring of the chat window. The server (rag/server/) mounts it beside the API.

One page: a multi-turn chat whose answers carry markers [n], each answer rated with thumbs up or down and an
optional comment; beside it, the side list of the user's conversations to reopen, rename, delete and export
(history.py); above the chat a picker of the knowledge bases to ask
(those the user may read, several at once); beside it the sources panel, where each citation shows its KB, file,
page and character range and the cited sentence highlighted inside its passage (click a marker to bring it into
view); uploads into one chosen KB the user may add to, indexed incrementally; the status of the user's KBs with a
re-index button; settings for k and the retrieval mode. The same answers are served to scripts by the named API
endpoint `ask` (gradio_client: client.predict(q, api_name="/ask")) and by the HTTP API.

Every handler takes gr.Request and hands its username (the login the server resolved) to ChatApp, which asks
rag/access.py what that user may do now. Choices shown per session are only a convenience: the handlers check.

No `from __future__ import annotations` here: gradio finds the gr.Request parameter of a handler by
its annotation, which must be the class itself, and gradio is imported only when the page is built.
"""

import os
from pathlib import Path

from ..config import MODES
from ..errors import RagError
from ..load import SUFFIXES
from .app import MAX_K, ChatApp
from .history import FEEDBACK_OPTIONS, ConversationPanel
from .render import render_panel
from .uploads import accepted_types

STATIC = Path(__file__).resolve().parent / "static"


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def build_app(app: ChatApp) -> "gr.Blocks":
    """The chat window over the app's knowledge bases; start-up indexing begins now."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no version check, no analytics calls
    import gradio as gr

    can_add = not app.access.read_only
    hidden = dict(visible=False)  # shown per session, to those it concerns
    conversations = ConversationPanel(app)
    with gr.Blocks(title="Ask your documents") as demo:
        demo.rag_app = app  # for tests
        with gr.Sidebar(width=280, elem_id="rag-sidebar"):
            conversations.build_sidebar(gr)
        gr.Markdown("## Ask your documents\nAnswers cite the exact sentences they come from: click a marker [n] to check it.")
        with gr.Row(equal_height=True, elem_id="rag-docbar"):
            status = gr.HTML("", elem_id="rag-status", scale=4)
            if can_add:
                target = gr.Dropdown([], label="Add documents to", elem_id="rag-target", allow_custom_value=True,
                                     scale=1, min_width=160, **hidden)
                upload_btn = gr.UploadButton("Add documents", elem_id="rag-upload", file_count="multiple",
                                             file_types=list(SUFFIXES), type="filepath", size="sm", scale=0,
                                             min_width=150, **hidden)
                reindex_btn = gr.Button("Re-index", elem_id="rag-reindex", size="sm", scale=0, min_width=110, **hidden)
            if app.access.logins:
                logout_btn = gr.Button("Log out", elem_id="rag-logout", link="logout", size="sm", scale=0, min_width=90)
        upload_log = gr.HTML("", elem_id="rag-upload-log")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                kbs = gr.Dropdown([], multiselect=True, label="Knowledge bases", elem_id="rag-kbs",
                                  allow_custom_value=True, info="ask one or several at once", **hidden)
                chatbot = gr.Chatbot(
                    elem_id="rag-chat",
                    label="Chat",
                    height=540,
                    latex_delimiters=[],
                    feedback_options=FEEDBACK_OPTIONS,
                    buttons=["copy"],
                    placeholder="Ask something your documents answer, e.g. *How many U.S. presidents has Putin outlasted?*",
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(elem_id="rag-question", show_label=False,
                                          placeholder="Ask a question and press Enter", scale=5, lines=1,
                                          max_lines=4, autofocus=True)
                    ask_btn = gr.Button("Ask", variant="primary", elem_id="rag-ask", scale=1, min_width=80)
                conversations.build_feedback(gr)
                with gr.Row(equal_height=False):
                    clear_btn = gr.Button("New conversation", size="sm", elem_id="rag-clear", scale=0, min_width=160)
                with gr.Accordion("Settings", open=False):
                    k = gr.Slider(1, MAX_K, value=min(app.settings.k, MAX_K), step=1, label="Passages to retrieve (k)",
                                  elem_id="rag-k")
                    mode = gr.Radio(list(MODES), value=app.settings.mode, label="Retrieval mode",
                                    info="hybrid = meaning (dense) + keywords (BM25)", elem_id="rag-mode")
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources")
                sources = gr.HTML(render_panel([]), elem_id="rag-sources")
        turns = gr.State([])
        conversations.wire(gr, demo, chatbot=chatbot, sources=sources, turns=turns, question=question, k=k, mode=mode,
                           kbs=kbs, ask_btn=ask_btn, clear_btn=clear_btn)

        def session(request: gr.Request):
            """Per page load: this user's KBs in the picker, the KBs they may add to, their name on Log out."""
            who = app.who(request.username)
            readable, addable = app.readable(who), app.addable(who)
            updates = [gr.update(choices=readable, value=app.default_kbs(who), visible=len(readable) > 1)]
            if can_add:
                updates += [gr.update(choices=addable, value=addable[0] if addable else None, visible=len(addable) > 1)]
                updates += [gr.update(visible=bool(addable))] * 2
                updates.append(accepted_types(app.max_upload_bytes) if addable else "")  # under the button
            if app.access.logins:
                updates.append(gr.update(value=f"Log out {request.username}"))
            return updates

        controls = [kbs] + ([target, upload_btn, reindex_btn, upload_log] if can_add else []) + (
            [logout_btn] if app.access.logins else [])
        demo.load(session, outputs=controls, api_visibility="private", queue=False)
        if can_add:
            # the user comes from the login (gr.Request), never from what the browser sends
            def upload(files, kb, request: gr.Request):
                try:
                    yield from app.upload(files, kb or "", user=request.username)
                except RagError as e:
                    raise gr.Error(str(e)) from None

            def reindex(kb, request: gr.Request):
                try:
                    yield from app.reindex(kb or "", user=request.username)
                except RagError as e:
                    raise gr.Error(str(e)) from None

            index_io = dict(outputs=[upload_log, status], concurrency_limit=1, concurrency_id="index",
                            api_visibility="private", show_progress="hidden")
            upload_btn.upload(upload, inputs=[upload_btn, target], **index_io)
            reindex_btn.click(reindex, inputs=[target], **index_io)

        def watch_status(request: gr.Request):
            yield from app.watch_status(request.username)

        demo.load(watch_status, outputs=status, api_visibility="private", concurrency_limit=None, show_progress="hidden")

        def api_ask(question: str, k: int = 0, mode: str = "", kbs: list[str] | None = None,
                    request: gr.Request = None) -> dict:
            return app.api_ask(question, k, mode, kbs, user=request.username if request else None)

        gr.api(api_ask, api_name="ask", concurrency_limit=4, concurrency_id="chat")
    app.start()
    return demo
