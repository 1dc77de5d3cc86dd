"""Stage 6, answer: from retrieved passages to an answer whose every sentence cites an exact span.

  ask.py             the entry: conversation -> retrieval -> decision -> answer
  followup.py        elliptical follow-ups written out against the conversation
  extractive.py      the default answerer: cited sentences of the documents, or abstention
  answerability.py   the decision: P(the cited sentences hold the answer), from answerability.json
  generate.py        the optional LLM answerer, built from:
    llm_client.py    the OpenAI-compatible HTTP client
    prompt.py        the messages sent
    reply.py         reading the reply: sentences, markers, abstention
    verify.py        every generated sentence checked against the span it cites
"""

from . import answerability
from .ask import ask
from .extractive import TUNING, Tuning, extract
from .followup import resolve_question

__all__ = ["TUNING", "Tuning", "answerability", "ask", "extract", "resolve_question"]
