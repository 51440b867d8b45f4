"""Thumbnails: ``thumb/<id>.webp`` (q80) beside the sidecar, JPEG where WebP is missing."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, features

from . import decoding, media
from .validate import sniff

WEBP = features.check("webp")
THUMB_EXT = "webp" if WEBP else "jpg"
THUMB_MIME = "image/webp" if WEBP else "image/jpeg"
ORIENTATION = 0x0112  # EXIF tag


def make_thumbnail(source: bytes | Image.Image, size: int = 256, quality: int = 80) -> bytes:
    """Encode a thumbnail that fits in ``size``×``size``, keeping the aspect ratio.

    ``source`` is the image's bytes or an already decoded image (ingest
    decodes once for validation, reduced, and reuses it). Raises NotAnImage,
    Busy, or PIL errors for undecodable data (callers validated it already).
    """
    if isinstance(source, (bytes, bytearray, memoryview)) and media.sniff_video(bytes(source[:64])) is not None:
        source = media.poster(bytes(source))  # a video's thumbnail is its first frame
    if isinstance(source, (bytes, bytearray, memoryview)):
        # NOTE: decoded within the process's pixel budget, already reduced (casvault.decoding).
        data = bytes(source)
        img = decoding.decode_reduced(data, sniff(data)[2], size)
    else:
        img = source
    with img:
        # NOTE: draft() lets the JPEG decoder scale by 1/2..1/8 while decoding
        # (a no-op for PNG and WebP). The one full decode is the load() below;
        # everything after it is cheap next to it (bench thumbs.vs_decode).
        img.draft("RGB", (size, size))
        img.load()
        if img.getexif().get(ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        target = "RGBA" if has_alpha and WEBP else "RGB"
        if img.mode != target:
            img = img.convert(target)
        # NOTE: reducing_gap=1.0 box-averages by the largest integer factor
        # (1024 → 256 is one 4×4 reduce, a proper low-pass) and resamples
        # only the remainder; 2.0 ran a bicubic over a 2× larger image for no
        # visible gain at thumbnail size.
        img.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=1.0)
        out = io.BytesIO()
        if WEBP:
            img.save(out, "WEBP", quality=quality, method=0)
        else:
            img.save(out, "JPEG", quality=quality, optimize=False)
        return out.getvalue()


def dominant_color(thumb: bytes) -> str:
    """The average colour of a thumbnail as ``#rrggbb`` (the gallery tints a tile with it while the image loads)."""
    with Image.open(io.BytesIO(thumb)) as img:
        img = img.convert("RGB")
        r, g, b = img.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    return f"#{r:02x}{g:02x}{b:02x}"
