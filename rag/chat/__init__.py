"""The chat window (Gradio): cited answers you can check in one click. rag/server/ mounts it.

  render.py   answers, sources and reports as escaped Markdown/HTML
  uploads.py  server-side checks for files added through the page
  throttle.py failed logins slowed down
  safe_files.py  served files never run as the chat
  app.py      the shared state and the handlers (chat, ask API, upload, re-index), asking rag/access.py
  history.py  the conversations' side list (reopen, rename, delete, export) and the ratings of answers
  page.py     the layout and its wiring; static/ holds its CSS and script
"""

from .app import ChatApp
from .page import build_app

__all__ = ["ChatApp", "build_app"]
