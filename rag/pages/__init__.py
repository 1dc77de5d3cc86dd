"""Citations on their page: where a cited span stands on its PDF page (or scan), the page drawn with it
highlighted, and the page view around it.

`locate.py` gives a citation its boxes (text pages: the stored text aligned with pdfium's characters,
`align.py`; OCR pages: the word boxes kept at indexing time, `words.py`); `render.py` draws the page
with the boxes highlighted, cached on disk; `view.py` writes the HTML of the page view and its links, which
rag/server/cite.py serves.
"""
