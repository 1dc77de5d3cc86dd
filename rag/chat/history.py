"""The page's conversations: every answer kept as it is given, a side list to reopen, rename, delete and export
them, and thumbs up or down with an optional comment on each answer. The logic is rag/conversations.py; this is
the page's part: its components, handlers and wiring, built by page.py.

Whose conversations a request sees comes from the server, never from the page: the login (gr.Request.username),
or without logins the browser's rag-browser cookie (rag/server/auth.py sets it). A browser that sends no cookie
(a script) is answered but nothing is kept.

No `from __future__ import annotations`: gradio finds gr.Request and gr.LikeData parameters by their annotations.
"""

import re
import shutil
import tempfile
from pathlib import Path

from ..conversations import BROWSER_COOKIE, Conversations, browser_id, owner_key, withhold
from ..errors import RagError
from .app import ChatApp
from .render import render_chat, render_panel

FEEDBACK_OPTIONS = ("Like", "Dislike")  # gradio draws these two as thumbs
RATINGS = {"up": "Like", "down": "Dislike"}


class ConversationPanel:
    """Components in three places of the page (the side list, the comment row, the states), one set of handlers."""

    def __init__(self, app: ChatApp):
        self.app = app
        self.kept = Conversations(app.library, app.access)
        self._exports: Path | None = None

    def owner(self, request) -> str | None:
        cookie = request.cookies.get(BROWSER_COOKIE) if request is not None else None
        return owner_key(getattr(request, "username", None), cookie, logins=self.app.access.logins)

    def choices(self, owner: str | None) -> list[tuple[str, str]]:
        return [(c["title"], c["id"]) for c in self.kept.list(owner)]

    def export_files(self, owner: str | None, conversation: str | None) -> list[str]:
        """The conversation as Markdown and JSON files, as its owner may read it now; gradio serves them."""
        row = self.kept.get(owner, conversation)
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))  # mode 0700
        folder = self._exports / row["id"]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        name = re.sub(r"[^A-Za-z0-9]+", "-", row["title"]).strip("-")[:60] or "conversation"
        paths = []
        for fmt, suffix in (("markdown", ".md"), ("json", ".json")):
            path = folder / (name + suffix)
            path.write_text(self.kept.export(owner, row["id"], fmt), encoding="utf-8")
            paths.append(str(path))
        return paths

    def note(self, request) -> str:
        owner = self.owner(request)
        if owner is None:
            return "Conversations are not kept: this browser sends no cookie."
        if self.app.access.logins:
            return f"Kept for {request.username}. Ratings go to whoever runs this server."
        return (f"Kept for this browser (`rag history` knows it as `{browser_id(request.cookies[BROWSER_COOKIE])}`). "
                "Ratings go to whoever runs this server.")

    # ---- components ----
    def build_sidebar(self, gr):
        """The side list and its buttons (inside the page's gr.Sidebar)."""
        gr.Markdown("### Conversations")
        self.history = gr.Radio([], value=None, show_label=False, container=False, elem_id="rag-history")
        self.title = gr.Textbox(show_label=False, placeholder="Title of the open conversation", max_lines=1,
                                elem_id="rag-title")
        with gr.Row():
            self.rename_btn = gr.Button("Rename", size="sm", elem_id="rag-rename", min_width=60)
            self.delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="rag-delete", min_width=60)
            self.export_btn = gr.Button("Export", size="sm", elem_id="rag-export-btn", min_width=60)
        with gr.Row():  # filled and shown by Export, with the conversation as it is then
            self.files = [gr.DownloadButton(f"{label} ⇣", size="sm", visible=False, elem_id=f"rag-export-{kind}",
                                            min_width=60) for label, kind in (("Markdown", "md"), ("JSON", "json"))]
        self.owner_note = gr.Markdown("", elem_id="rag-owner")

    def build_feedback(self, gr):
        """The comment row, shown when an answer is rated (under the question box)."""
        with gr.Row(equal_height=True, visible=False, elem_id="rag-feedback") as self.feedback_row:
            self.comment = gr.Textbox(show_label=False, scale=5, max_lines=4, elem_id="rag-comment",
                                      placeholder="What was wrong (or right) with this answer? (optional)")
            self.send_btn = gr.Button("Send", scale=0, min_width=80, elem_id="rag-comment-send")
        self.conversation = gr.State(None)
        self.rated = gr.State(None)  # the turn number of the answer last rated

    # ---- handlers and wiring ----
    def wire(self, gr, demo, *, chatbot, sources, turns, question, k, mode, kbs, ask_btn, clear_btn):
        app, kept = self.app, self.kept
        listing = lambda owner, value: gr.update(choices=self.choices(owner), value=value)  # noqa: E731
        hidden = gr.update(visible=False)
        quiet = dict(api_visibility="private", show_progress="hidden")  # quick: no dimmed components meanwhile

        def chat(question, turns, k, mode, kbs, conversation, request: gr.Request):
            owner, who = self.owner(request), app.who(request.username)
            asked = app.chosen(who, kbs)
            may_read = kept.may_read(who)  # the earlier answers of this page, as the user may read them now
            turns = [{**t, "answer": withhold(t["answer"], may_read)} if t.get("answer") else t for t in turns or []]
            for shown, panel, done, box in app.chat(question, turns, k, mode, kbs, user=request.username):
                last = done[-1] if done else {}
                if owner is None or not last.get("answer") or "n" in last:
                    yield shown, panel, done, box, gr.skip(), gr.skip(), gr.skip()
                    continue
                conversation, n = kept.add(owner, conversation, last["question"], asked, last["answer"])
                done = done[:-1] + [{**last, "n": n}]
                yield (shown, panel, done, box, conversation, listing(owner, conversation),
                       kept.get(owner, conversation)["title"])

        chat_io = dict(fn=chat, inputs=[question, turns, k, mode, kbs, self.conversation],
                       outputs=[chatbot, sources, turns, question, self.conversation, self.history, self.title],
                       concurrency_limit=4, concurrency_id="chat", api_visibility="private",
                       show_progress="hidden")  # the pending message has its own spinner and words
        question.submit(**chat_io)
        ask_btn.click(**chat_io)

        opened = [chatbot, sources, turns, self.conversation, self.history, self.title, *self.files, self.feedback_row]

        def clear(request: gr.Request):
            return [], render_panel([]), [], None, listing(self.owner(request), None), "", hidden, hidden, hidden, ""

        clear_btn.click(clear, outputs=opened + [question], api_visibility="private", queue=False)
        chatbot.clear(clear, outputs=opened + [question], api_visibility="private", queue=False)  # its own bin icon

        def reopen(conversation, request: gr.Request):
            owner = self.owner(request)
            try:
                row, stored = kept.get(owner, conversation), kept.turns(owner, conversation)
            except RagError as e:
                raise gr.Error(str(e)) from None
            state = [{"question": t["question"], "answer": t["answer"], "n": t["n"]} for t in stored]
            rated = [RATINGS.get((t["feedback"] or {}).get("rating")) for t in stored]
            return (gr.update(value=render_chat(state), feedback_value=rated), render_panel(state, app.file_url),
                    state, row["id"], gr.skip(), row["title"], hidden, hidden, hidden)

        self.history.input(reopen, inputs=[self.history], outputs=opened, **quiet)

        def rename(conversation, title, request: gr.Request):
            owner = self.owner(request)
            try:
                row = kept.rename(owner, conversation, title)
            except RagError as e:
                raise gr.Error(str(e)) from None
            return listing(owner, row["id"]), row["title"]

        rename_io = dict(fn=rename, inputs=[self.conversation, self.title], outputs=[self.history, self.title], **quiet)
        self.rename_btn.click(**rename_io)
        self.title.submit(**rename_io)

        def delete(conversation, request: gr.Request):
            if not conversation:  # nothing open, or the browser's confirmation said no
                return [gr.skip()] * len(opened)
            owner = self.owner(request)
            try:
                kept.delete(owner, conversation)
            except RagError as e:
                raise gr.Error(str(e)) from None
            return [], render_panel([]), [], None, listing(owner, None), "", hidden, hidden, hidden

        self.delete_btn.click(delete, inputs=[self.conversation], outputs=opened, **quiet,
                              js="(c) => c && confirm('Delete this conversation? Its ratings stay.') ? c : null")

        def export(conversation, request: gr.Request):
            try:
                paths = self.export_files(self.owner(request), conversation)
                return [gr.update(value=path, visible=True) for path in paths]
            except RagError as e:
                raise gr.Error(str(e)) from None

        self.export_btn.click(export, inputs=[self.conversation], outputs=self.files, **quiet)

        def rate(turns, conversation, data: gr.LikeData, request: gr.Request):
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            turn = (turns or [])[index // 2] if 0 <= index // 2 < len(turns or []) else {}
            if "n" not in turn:
                raise gr.Error("only answers that are kept can be rated: ask again once the answer is complete")
            liked = data.liked if isinstance(data.liked, bool) else None
            try:
                kept.rate(self.owner(request), conversation, turn["n"], liked)
            except RagError as e:
                raise gr.Error(str(e)) from None
            if liked is None:
                return hidden, gr.skip(), None
            prompt = "What was right with this answer? (optional)" if liked else "What was wrong? (optional)"
            return gr.update(visible=True), gr.update(value="", placeholder=prompt), turn["n"]

        chatbot.like(rate, inputs=[turns, self.conversation], outputs=[self.feedback_row, self.comment, self.rated],
                     **quiet)

        def send(conversation, rated, comment, request: gr.Request):
            try:
                if rated is None or not kept.comment(self.owner(request), conversation, rated, comment):
                    raise RagError("rate the answer first (thumbs up or down), then say why")
            except RagError as e:
                raise gr.Error(str(e)) from None
            gr.Info("Thank you: your rating and comment are kept.")
            return hidden, ""

        send_io = dict(fn=send, inputs=[self.conversation, self.rated, self.comment],
                       outputs=[self.feedback_row, self.comment], **quiet)
        self.send_btn.click(**send_io)
        self.comment.submit(**send_io)

        def load(request: gr.Request):
            return listing(self.owner(request), None), self.note(request)

        demo.load(load, outputs=[self.history, self.owner_note], api_visibility="private", queue=False)
