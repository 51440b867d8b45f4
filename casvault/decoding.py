"""Decoding images within a per-process pixel budget, at reduced size where the format allows.

A decoded image costs up to 4 bytes a pixel: an 8000×8000 RGBA PNG of
250 KB is 256 MB once decoded, and Pillow's RGBA reduce (the thumbnail)
used to make a second, premultiplied copy of the same size. Three rules keep
a process's memory bounded whatever the uploads:

- **The budget** (:class:`PixelBudget`, CASVAULT_DECODE_BUDGET_PIXELS per
  process): every decode holds the pixels it will keep in memory; a decode
  that does not fit waits for others to finish, and after DECODE_WAIT
  seconds gives up with :class:`~casvault.errors.Busy` (HTTP 503 with
  Retry-After). One decode bigger than the whole budget runs alone.
- **PNG in strips**: a big (STRIP_FROM_PIXELS), 8-bit, non-interlaced PNG is
  inflated here a strip of rows at a time and each strip is handed to
  Pillow's own PNG row decoder (filters undone exactly as in a full load),
  converted and reduced, then dropped. Every pixel is still decoded, so
  damaged data is still refused, but only a strip (about STRIP_BYTES) and
  the reduced image are ever held.
- **Everything else at reduced size**: JPEG decodes at 1/2..1/8 scale
  (``draft``); other images are decoded whole (within the budget) and
  reduced strip by strip, never as a second full-size copy.
"""

from __future__ import annotations

import io
import math
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from typing import Any, Iterator

from PIL import Image

from .errors import Busy, NotAnImage

DEFAULT_BUDGET_PIXELS = 64_000_000
DECODE_WAIT = 10.0  # seconds a decode waits for room before answering Busy
RETRY_AFTER = 5  # seconds a client is told to wait after Busy
STRIP_BYTES = 2 * 1024 * 1024  # filtered PNG bytes inflated per strip
STRIP_FROM_PIXELS = 4_000_000  # PNGs from this size up are decoded in strips (16 MB as RGBA)
STRIP_MAX_PIXELS = 4_000_000  # a strip never holds more (else the image is decoded whole, in the budget)

# PNG colour type → Pillow mode at bit depth 8 (raw rows in the mode's own layout)
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
_PNG_CHANNELS = {"L": 1, "RGB": 3, "P": 1, "LA": 2, "RGBA": 4}


class PixelBudget:
    """A counting semaphore in pixels: how many may be decoded at once in this process."""

    def __init__(self, pixels: int) -> None:
        self.capacity = pixels
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, wait: float = DECODE_WAIT) -> Iterator[None]:
        """Hold ``pixels`` of the budget while the block runs.

        Raises Busy when they do not fit within ``wait`` seconds.
        """
        with self._cond:
            # NOTE: a decode bigger than the whole budget may still run, alone.
            want = max(1, min(pixels, self.capacity))
            deadline = time.monotonic() + wait
            while self.used + want > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy(
                        f"{self.used} of {self.capacity} pixels are being decoded; {want} more do not fit",
                        retry_after=RETRY_AFTER,
                    )
                self._cond.wait(left)
            self.used += want
        try:
            yield
        finally:
            with self._cond:
                self.used -= want
                self._cond.notify_all()


_budget = PixelBudget(DEFAULT_BUDGET_PIXELS)


def configure(pixels: int) -> None:
    """Set this process's budget (CASVAULT_DECODE_BUDGET_PIXELS); decodes running now keep their share."""
    with _budget._cond:
        _budget.capacity = pixels
        _budget._cond.notify_all()


def budget() -> PixelBudget:
    """This process's budget."""
    return _budget


def reduce_factor(width: int, height: int, fit: int) -> int:
    """The integer factor that shrinks width×height to still cover a ``fit``×``fit`` thumbnail."""
    scale = min(fit / width, fit / height, 1.0)
    tw, th = max(1, round(width * scale)), max(1, round(height * scale))
    return max(1, min(width // tw, height // th))


def has_alpha(img: Image.Image) -> bool:
    """True when the image has an alpha channel or a transparent colour."""
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB", "1", "I;16") and "transparency" in img.info
    )


def decode_reduced(data: bytes, fmt: str, fit: int | None) -> Image.Image:
    """Decode every pixel of ``data`` (a ``fmt`` image that passed the header checks) within the budget.

    With ``fit``, the result is RGB or RGBA, reduced by an integer factor so
    that it still covers a ``fit``×``fit`` box (the thumbnail's); without, it
    is the full image in its own mode. The EXIF block is kept in ``info``.
    Raises Busy; Pillow's errors (ValueError, OSError, ...) for damaged data.
    """
    src = Image.open(io.BytesIO(data), formats=[fmt])
    # NOTE: below STRIP_FROM_PIXELS a whole decode costs little memory and
    # is faster (zlib runs once); strips pay off on the big ones. An extreme
    # shape (a strip would be most of the image) is decoded whole.
    if fit is not None and fmt == "PNG" and src.size[0] * src.size[1] >= STRIP_FROM_PIXELS and _strippable(data):
        factor = reduce_factor(*src.size, fit)
        if src.size[0] * _strip_rows(src.size[0] * 4, factor) <= STRIP_MAX_PIXELS:
            return _png_in_strips(data, src, factor)
    if fit is not None:
        src.draft(src.mode, (fit, fit))  # NOTE: JPEG only: decodes at 1/2..1/8 scale; a no-op otherwise
    width, height = src.size
    with _budget.hold(width * height):
        src.load()
        if fit is None:
            return src
        return _reduce_in_strips(src, reduce_factor(width, height, fit))


def _strippable(data: bytes) -> bool:
    """True for an 8-bit, non-interlaced PNG of a colour type Pillow keeps raw."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return False
    depth, color, _comp, _filter, interlace = data[24:29]
    return depth == 8 and color in _PNG_MODES and interlace == 0


def _target_mode(img: Image.Image) -> str:
    return "RGBA" if has_alpha(img) else "RGB"


def _reduce_in_strips(img: Image.Image, factor: int) -> Image.Image:
    """``img`` converted to RGB(A) and reduced by ``factor``, one band of rows at a time (no full copy)."""
    width, height = img.size
    mode = _target_mode(img)
    if img.mode == mode == "RGB":
        out = img.reduce(factor)  # NOTE: no conversion, no premultiplied copy: one pass, no strips needed
        _keep_exif(img, out)
        return out
    out = Image.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    rows = _strip_rows(width * 4, factor)
    # NOTE: tiles, not whole bands, when an extreme shape makes a band of
    # ``rows`` rows big; a tile's width is a multiple of the factor too.
    cols = max(factor, (STRIP_BYTES // (rows * 4)) // factor * factor)
    for top in range(0, height, rows):
        for left in range(0, width, cols):
            tile = img.crop((left, top, min(left + cols, width), min(top + rows, height)))
            if tile.mode != mode:
                tile = tile.convert(mode)
            out.paste(tile.reduce(factor) if factor > 1 else tile, (left // factor, top // factor))
    _keep_exif(img, out)
    return out


def _strip_rows(row_bytes: int, factor: int) -> int:
    """Rows per strip: about STRIP_BYTES, a multiple of ``factor`` (so strips reduce like the whole)."""
    return max(factor, (STRIP_BYTES // max(row_bytes, 1)) // factor * factor)


def _png_in_strips(data: bytes, src: Image.Image, factor: int) -> Image.Image:
    """Decode an 8-bit non-interlaced PNG strip by strip, reducing each; see the module's docstring."""
    width, height = src.size
    raw_mode = _PNG_MODES[data[25]]
    stride = width * _PNG_CHANNELS[raw_mode]
    mode = _target_mode(src)
    rows = _strip_rows(stride + 1, factor)
    out_size = (math.ceil(width / factor), math.ceil(height / factor))
    palette = src.getpalette() if raw_mode == "P" else None
    transparency = src.info.get("transparency")
    with _budget.hold(width * rows * 3 + out_size[0] * out_size[1]):
        out = Image.new(mode, out_size)
        previous: bytes | None = None
        top = 0
        for filtered in _filtered_strips(data, stride + 1, rows, height):
            n = len(filtered) // (stride + 1)
            # NOTE: a strip's first row may be filtered against the row above
            # it; that row goes first, raw (filter type 0), and is cut off by
            # the reduce's box. Pillow undoes the filters as in a full load.
            head = b"\x00" + previous if previous is not None else b""
            skip = 1 if previous is not None else 0
            strip = Image.frombytes(raw_mode, (width, n + skip), zlib.compress(head + filtered, 0), "zip", raw_mode)
            previous = strip.crop((0, n + skip - 1, width, n + skip)).tobytes()
            if palette is not None:
                strip.putpalette(palette)
            if transparency is not None:
                strip.info["transparency"] = transparency
            if strip.mode != mode:
                strip = strip.convert(mode)
            out.paste(strip.reduce(factor, box=(0, skip, width, n + skip)), (0, top // factor))
            top += n
    _keep_exif(src, out)
    return out


def _filtered_strips(data: bytes, row_bytes: int, rows: int, height: int) -> Iterator[bytes]:
    """The PNG's inflated IDAT stream, ``rows`` rows at a time; raises NotAnImage when it ends early."""
    inflater = zlib.decompressobj()
    total = height * row_bytes
    done = 0
    want = min(rows * row_bytes, total)
    pending = bytearray()
    chunks = _idat_chunks(data)
    tail: bytes | memoryview = b""
    while done < total:
        if not tail:
            following = next(chunks, None)
            if following is None:
                # NOTE: input used up: what zlib still holds comes out in bounded pieces.
                before = len(pending)
                _inflate_into(inflater, b"", pending, want)
                if len(pending) == before:
                    raise NotAnImage("the PNG image data ends early (truncated)")
            else:
                tail = following
        if tail:
            tail = _inflate_into(inflater, tail, pending, want)
        if len(pending) == want:
            done += want
            yield bytes(pending)
            pending.clear()
            want = min(rows * row_bytes, total - done)


def _inflate_into(inflater: Any, piece: bytes | memoryview, out: bytearray, want: int) -> bytes | memoryview:
    """Inflate ``piece`` into ``out`` until it holds ``want`` bytes; returns the input left over."""
    try:
        out.extend(inflater.decompress(piece, want - len(out)))
    except zlib.error:
        raise NotAnImage("damaged PNG image data (zlib)") from None
    return inflater.unconsumed_tail


def _idat_chunks(data: bytes) -> Iterator[memoryview]:
    """The payloads of a PNG's IDAT chunks, in order (the chunk CRCs were checked by verify())."""
    view = memoryview(data)
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            yield view[pos + 8:pos + 8 + length]
        elif kind == b"IEND":
            return
        pos += 12 + length


def _keep_exif(src: Image.Image, out: Image.Image) -> None:
    exif = src.info.get("exif")
    if exif:
        out.info["exif"] = exif
