"""Animated images and videos: frame counts, durations, container metadata.

Animated PNG (APNG) and animated WebP are stored as images: Pillow reads
them, the thumbnail is the first frame, and the record carries ``frames``
and ``duration_ms``. MP4 and WebM are recognised by their signature here
and read with PyAV (its wheels bundle FFmpeg), loaded only when a video is
met, so the rest of the core never needs it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, NamedTuple

from PIL import Image

from . import decoding
from .errors import Busy, NotAnImage, TooLarge

__all__ = ["Animation", "VideoInfo", "animation", "check_video", "poster", "sniff_video", "video_metadata"]

_MAX_FRAMES = 100_000  # frames counted for a duration; past it the count stands, the duration is a floor
_MAX_META_CHARS = 64 << 20


class Animation(NamedTuple):
    """How many frames an animated image has, and how long it plays once."""

    frames: int
    duration_ms: int


def animation(data: bytes, fmt: str) -> Animation | None:
    """Frames and duration of an animated PNG or WebP (``fmt`` "PNG" or "WEBP"); None for a still image.

    Raises only Busy (the decode budget): a file Pillow cannot walk through
    is reported as still (validation has already judged its first frame).
    """
    if fmt not in ("PNG", "WEBP"):
        return None
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            frames = int(getattr(img, "n_frames", 1))
            if frames <= 1:
                return None
            total = 0.0
            # NOTE: walking the frames decodes them, one at a time: within the decode budget.
            with decoding.budget().hold(img.size[0] * img.size[1]):
                for index in range(min(frames, _MAX_FRAMES)):
                    img.seek(index)
                    if fmt == "WEBP":
                        img.load()  # NOTE: Pillow's WebP reader sets a frame's duration when it decodes it
                    duration = img.info.get("duration")
                    if isinstance(duration, (int, float)) and duration > 0:
                        total += duration
            return Animation(frames, int(round(total)))
    except Busy:
        raise
    except Exception:  # Pillow raises many types for damaged data
        return None


def sniff_video(data: bytes) -> tuple[str, str] | None:
    """(ext, mime) of an MP4 or WebM file from its leading bytes, else None."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4", "video/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in data[:64]:
        return "webm", "video/webm"
    return None


def video_metadata(data: bytes) -> dict[str, str]:
    """The container's metadata (ComfyUI writes ``prompt`` and ``workflow`` there); {} when unreadable."""
    try:
        import av
    except ImportError:
        return {}
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            meta: dict[str, Any] = dict(container.metadata)
    except Exception:  # PyAV raises FFmpeg's errors under many types
        return {}
    found: dict[str, str] = {}
    budget = _MAX_META_CHARS
    for key, value in meta.items():
        if isinstance(key, str) and isinstance(value, str) and len(value) <= budget:
            found[key] = value
            budget -= len(value)
    return found


@dataclass
class VideoInfo:
    """What validation learned about an accepted video; ``image`` is its poster (the first frame)."""

    ext: str
    mime: str
    width: int
    height: int
    image: Image.Image | None
    animation: Animation


def check_video(data: bytes, *, max_bytes: int, max_pixels: int) -> VideoInfo:
    """Validate an MP4 or WebM file: readable by FFmpeg, a video stream, a first frame within the limits.

    Raises TooLarge (bytes or pixels), NotAnImage (not a video, damaged,
    or PyAV missing).
    """
    if len(data) > max_bytes:
        raise TooLarge(f"the video is larger than {max_bytes} bytes", limit=max_bytes)
    kind = sniff_video(data)
    if kind is None:
        raise NotAnImage("not an MP4 or WebM video")
    try:
        import av
    except ImportError:
        raise NotAnImage("videos need PyAV (pip install av)") from None
    ext, mime = kind
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise NotAnImage(f"the {ext.upper()} file has no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            if width <= 0 or height <= 0:
                raise NotAnImage("the video has no pixels")
            if width * height > max_pixels:
                raise TooLarge(f"the video has {width}x{height} pixels, more than the limit of {max_pixels}",
                               limit=max_pixels)
            first = next(container.decode(stream), None)
            if first is None:
                raise NotAnImage(f"the {ext.upper()} video has no frame")
            image = first.to_image()
            duration_ms = int(round(container.duration / 1000)) if container.duration else 0
            frames = int(stream.frames or 0)
            if frames <= 0 and stream.average_rate:
                # NOTE: WebM does not store a frame count; the rate times the length says it.
                frames = int(round(duration_ms / 1000 * float(stream.average_rate)))
    except (NotAnImage, TooLarge):
        raise
    except Exception as exc:  # PyAV raises FFmpeg's errors under many types
        raise NotAnImage(f"damaged or unreadable {ext.upper()} video: {exc.__class__.__name__}") from None
    return VideoInfo(ext, mime, width, height, image, Animation(max(frames, 1), duration_ms))


def poster(data: bytes) -> Image.Image:
    """The first frame of a video as an image (for its thumbnail); raises NotAnImage."""
    info = check_video(data, max_bytes=len(data), max_pixels=1 << 62)
    assert info.image is not None
    return info.image
