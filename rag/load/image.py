"""Images (PNG, JPEG, TIFF): the text OCR reads in them; one Document per frame of a multi-page TIFF.

A single image is one Document without a page number; a multi-page file gives each frame its 1-based
page number, as PDF pages have. Frames that fail are reported beside the ones that loaded.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError
from ..model import Document
from . import ocr

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
KIND = "Images (Tesseract OCR)"
FORMAT = "the text OCR reads; a multi-page TIFF gives one document per page"


def load(path: Path, source: str, data: bytes, options) -> Iterator[Document | DocumentError]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    why_not = ocr.unavailable(options.ocr, options.ocr_language)
    if why_not:
        raise DocumentError(path, f"an image file, whose text only OCR can read: {why_not}")
    try:
        picture = Image.open(io.BytesIO(data))
        frames = getattr(picture, "n_frames", 1)
    except Image.DecompressionBombError as e:
        raise DocumentError(path, f"image too large to read safely ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DocumentError(path, f"not an image we can read ({type(e).__name__}: {e})") from None
    progress = options.progress or (lambda done, total: None)
    progress(0, frames)
    docs, failures = [], []
    for number, frame in enumerate(ImageSequence.Iterator(picture), 1):
        page = number if frames > 1 else None
        where = f"page {number}: " if frames > 1 else ""
        try:
            frame.load()
            fitted = _fit(frame)
            dpi = _dpi(frame, fitted.width)
            read = None if ocr.is_blank(fitted) else ocr.read_image(fitted, language=options.ocr_language, dpi=dpi)
        except (OSError, ValueError) as e:  # a truncated frame, or tesseract failing on it
            failures.append(f"{where}cannot read it ({e})")
        else:
            if read is not None and read.has_text:
                docs.append(Document(source=source, doc_id=source, text=read.text, page=page, ocr=True,
                                     words=read.placed(fitted.size, dpi)))
        progress(number, frames)
    if not docs:
        raise DocumentError(path, failures[0] if len(failures) == frames else
                            f"OCR found no words in the image{f' ({frames} pages)' if frames > 1 else ''}")
    yield from docs
    if failures:
        yield DocumentError(path, f"{len(failures)} of {frames} pages could not be read, the others loaded "
                                  f"({failures[0]})")


def _fit(frame):
    """Scaled down when larger than a page rendered at MAX_PIXELS: time and memory stay bounded."""
    width, height = frame.size
    if width * height <= ocr.MAX_PIXELS:
        return frame
    scale = math.sqrt(ocr.MAX_PIXELS / (width * height))
    return frame.resize((max(1, int(width * scale)), max(1, int(height * scale))))


def _dpi(frame, width: int) -> int | None:
    """The resolution the file declares (scaled with the image), when plausible; else Tesseract
    estimates it from the size of the letters."""
    try:
        declared = float(frame.info["dpi"][0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return round(declared * width / frame.width) if 70 <= declared <= 1200 else None
