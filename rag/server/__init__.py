"""One HTTP server for the browser and for other tools, with one set of users, knowledge bases and access rules.

  app.py     the FastAPI app: login, files, the API, and the Gradio chat mounted at /; run by uvicorn
  auth.py    who is calling: login sessions, API tokens, or a server without logins (-> rag/access.py)
  files.py   the documents themselves, for the chat's "open" links
  cite.py    the page view of a citation (its page drawn, the cited lines highlighted), for the chat's "page" links
  main.py    `rag serve` / `rag chat` / `python ui.py`: flags, the start-up checks, serving until Ctrl-C
"""

from .app import Server, build
from .main import main, parse_args

__all__ = ["Server", "build", "main", "parse_args"]
