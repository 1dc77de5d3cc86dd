"""The chat window (Gradio): cited answers you can check in one click.

  render.py   answers, sources and reports as escaped Markdown/HTML
  uploads.py  server-side checks for files added through the page
  access.py   who may ask and who may add: logins, roles, no public chat without them
  throttle.py failed logins from one address slowed down
  app.py      the shared state and the handlers (chat, ask API, upload, re-index)
  page.py     the layout, launch and the command line; static/ holds its CSS and script
"""

from .page import build_app, launch, main, parse_args

__all__ = ["build_app", "launch", "main", "parse_args"]
