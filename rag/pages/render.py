"""The cited page as an image: drawn by pdfium (or the scanned image itself), the cited lines highlighted.

Rendered on demand and kept in a disk cache bounded in bytes (the least recently used go first), keyed by
the file's hash, page, boxes and size: a file changed since it was indexed is refused, never drawn with
the old boxes. `crop=True` gives the highlighted region alone, larger: beside an OCR quote, the pixels it
was read from. bench/results/pages.md measures the time per page.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
from pathlib import Path

from ..errors import RagError

ZOOM = 1.5  # pixels per point of a whole page: 108 dpi, a letter page 918 x 1188
CROP_ZOOM = 3.0  # of a cropped region: 216 dpi, the scan's own detail
CROP_MARGIN = 18  # points around the cited lines in a crop
PAD = 1.5  # points a highlight reaches beyond its characters
FILL, OPACITY, EDGE = (255, 214, 0), 0.38, (232, 140, 0)  # translucent yellow, an orange edge
QUALITY = 90  # JPEG: 4-8 ms and ~300 KB a dense page at ZOOM; PNG took 60 ms and more bytes (anti-aliased text)
MEDIA_TYPE = "image/jpeg"


def render(data: bytes, page: int | None, boxes, *, width: float = 0.0, zoom: float = ZOOM, crop: bool = False,
           password=None) -> bytes:
    """JPEG of `page` (1-based; None for a single image) of a PDF or image file's bytes, `boxes` (points from the
    top-left corner, as Citation.boxes) highlighted; with crop, only the region around them, at CROP_ZOOM.
    `width`: the page's width the boxes are measured in (Citation.page_width), needed for an image; a PDF's
    is its own. Raises RagError saying why it cannot."""
    from PIL import Image, ImageDraw

    region = None
    if crop and boxes:
        region = (min(b[0] for b in boxes) - CROP_MARGIN, min(b[1] for b in boxes) - CROP_MARGIN,
                  max(b[2] for b in boxes) + CROP_MARGIN, max(b[3] for b in boxes) + CROP_MARGIN)
        zoom = CROP_ZOOM
    image, scale, (x0, y0) = _page_image(data, page, zoom, password, width, region)
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    for left, top, right, bottom in boxes or ():  # each line tinted where it is, not the whole page composited
        area = (max(0, round((left - PAD - x0) * scale)), max(0, round((top - PAD - y0) * scale)),
                min(image.width, round((right + PAD - x0) * scale)),
                min(image.height, round((bottom + PAD - y0) * scale)))
        if area[0] >= area[2] or area[1] >= area[3]:
            continue
        part = image.crop(area)
        image.paste(Image.blend(part, Image.new("RGB", part.size, FILL), OPACITY), area[:2])
        draw.rectangle(area, outline=EDGE, width=max(1, round(scale / 1.5)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def _page_image(data: bytes, page: int | None, zoom: float, password, width: float, region):
    """(PIL image, pixels per point, its top-left corner in points) of the page, or of `region` of it (points:
    left, top, right, bottom): pdfium draws a PDF, PIL reads an image (never enlarged past its pixels)."""
    if data[:1024].find(b"%PDF-") >= 0:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(data, password=password)
        except pdfium.PdfiumError as e:
            raise RagError(f"cannot open the PDF to draw its page ({e}); check its password (--password)") from None
        try:
            if not page or not 1 <= page <= len(pdf):
                raise RagError(f"the PDF has no page {page} (it has {len(pdf)})")
            drawn = pdf[page - 1]
            try:
                w, h = drawn.get_size()
                left, top, right, bottom = _clip(region, w, h)
                image = drawn.render(scale=zoom, crop=(left, h - bottom, w - right, top)).to_pil()
                return image, zoom, (left, top)
            finally:
                drawn.close()
        finally:
            pdf.close()
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(data))
        frame = next(f for n, f in enumerate(ImageSequence.Iterator(picture), 1) if n == (page or 1))
        frame.load()
    except StopIteration:
        raise RagError(f"the image has no page {page}") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise RagError(f"cannot draw the image ({type(e).__name__}: {e})") from None
    width = width or frame.width
    scale = min(zoom, frame.width / width)
    left, top, right, bottom = _clip(region, width, frame.height * width / frame.width)
    image = frame.convert("RGB").crop((round(left * frame.width / width), round(top * frame.width / width),
                                       round(right * frame.width / width), round(bottom * frame.width / width)))
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    return image.resize(size) if size != image.size else image, scale, (left, top)


def _clip(region, width: float, height: float) -> tuple[float, float, float, float]:
    """`region` within the page (the whole page when None)."""
    if region is None:
        return 0.0, 0.0, width, height
    left, top, right, bottom = region
    return max(left, 0.0), max(top, 0.0), min(right, width), min(bottom, height)


class PageCache:
    """Rendered pages on disk, at most `max_bytes` of them: the least recently used are deleted first."""

    def __init__(self, directory: Path, max_bytes: int):
        self.dir, self.max_bytes = Path(directory), max_bytes
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "PageCache":
        """Settings.page_cache_dir (default $XDG_CACHE_HOME/rag/pages or ~/.cache/rag/pages), page_cache_mb."""
        default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "pages"
        return cls(settings.page_cache_dir or default, settings.page_cache_mb * 1024 * 1024)

    def get(self, key: dict, make) -> bytes:
        """The cached bytes for `key` (JSON-able), else make() stored; reads never block on a render."""
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest() + ".jpg"
        path = self.dir / name
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used
            return data
        except FileNotFoundError:
            pass
        data = make()
        self.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.dir, suffix=".tmp", delete=False) as f:
            f.write(data)
        os.replace(f.name, path)  # whole or absent: a reader never sees half a file
        self._trim()
        return data

    def _trim(self) -> None:
        with self._lock:
            files = []
            for p in self.dir.glob("*.jpg"):
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
            total = sum(size for _, size, _ in files)
            for _, size, p in sorted(files):
                if total <= self.max_bytes:
                    break
                p.unlink(missing_ok=True)
                total -= size


def page_image(cache: PageCache, path: str, file_hash: str, page: int | None, boxes, *, width: float = 0.0,
               crop: bool = False, zoom: float = ZOOM, passwords=()) -> bytes:
    """The JPEG of a cited page (Store.pages_of gives path and hash) through `cache`. Raises RagError when the
    file is gone or changed since it was indexed (its page may say something else now)."""
    key = {"file": file_hash, "page": page, "boxes": [list(b) for b in boxes], "width": width, "zoom": zoom,
           "crop": crop}

    def make() -> bytes:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise RagError(f"cannot read {path} to draw its page ({e.strerror or e})") from None
        if hashlib.sha256(data).hexdigest() != file_hash:
            raise RagError(f"{path} changed since it was indexed; re-index it (rag index) to see its pages")
        last = None
        for password in (None, *passwords):
            try:
                return render(data, page, boxes, width=width, zoom=zoom, crop=crop, password=password)
            except RagError as e:
                last = e
                if "password" not in str(e):
                    raise
        raise last

    return cache.get(key, make)
