"""Validation of ids, user ids and uploaded image bytes.

Every path the store builds comes from values that passed these checks; no
client-supplied path is ever trusted.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image

from . import decoding
from .errors import Busy, InvalidInput, NotAnImage, TooLarge

ID_RE = re.compile(r"[0-9a-f]{32}")
ANON_RE = re.compile(r"anon-[0-9a-f]{32}")
MEMBER_RE = re.compile(r"u-[a-z0-9_-]{1,64}")
TAG_MAX_LEN = 64
TAGS_MAX = 64
FIELD_MAX_LEN = 20_000
# Bidirectional controls (LRE..RLO, LRI..PDI, LRM, RLM, ALM): in a file name
# they make "photo\u202egnp.exe" read as "photoexe.png". Names are shown and
# downloaded, never trusted, so these are removed rather than refused.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")

# signature → (ext, mime, Pillow format)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png", "image/png", "PNG"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg", "JPEG"),
)
MIME_BY_EXT = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4", "webm": "video/webm"}
EXT_BY_MIME = {v: k for k, v in MIME_BY_EXT.items()}


@dataclass(frozen=True)
class ImageInfo:
    """What validation learned about an accepted image (``image``: the decoded pixels, if kept, maybe reduced)."""

    ext: str
    mime: str
    width: int
    height: int
    image: Image.Image | None = None


def is_id(value: object) -> bool:
    """True when ``value`` is a record id (32 lowercase hex)."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def is_user_id(value: object) -> bool:
    """True when ``value`` is a guest (anon-<hex32>) or member (u-...) id."""
    return isinstance(value, str) and (
        ANON_RE.fullmatch(value) is not None or MEMBER_RE.fullmatch(value) is not None
    )


def check_id(value: object) -> str:
    """Return ``value`` if it is a record id; raise InvalidInput otherwise."""
    if not is_id(value):
        raise InvalidInput("id must be 32 lowercase hex characters", field="id")
    return value  # type: ignore[return-value]


def check_user_id(value: object, field: str = "owner") -> str:
    """Return ``value`` if it is a user id; raise InvalidInput otherwise."""
    if not is_user_id(value):
        raise InvalidInput(f"{field} must be anon-<32 hex> or u-<a-z0-9_-, 1-64>", field=field)
    return value  # type: ignore[return-value]


def check_text(value: object, field: str, max_len: int = FIELD_MAX_LEN) -> str | None:
    """A free-text field: None stays None; control characters other than tab and newline are refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters", field=field)
    if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 0x7F for c in value):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return value


def check_tags(value: object) -> list[str]:
    """Normalise a tag list: strings, stripped, non-empty, no duplicates, bounded."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list):
        raise InvalidInput("tags must be a list of strings", field="tags")
    tags: list[str] = []
    for raw in value:
        if not isinstance(raw, str):
            raise InvalidInput("tags must be a list of strings", field="tags")
        tag = raw.strip()
        if not tag:
            continue
        check_text(tag, "tags", TAG_MAX_LEN)
        if "\n" in tag or "\t" in tag or "\r" in tag:
            raise InvalidInput("tags must be single-line", field="tags")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        raise InvalidInput(f"at most {TAGS_MAX} tags", field="tags")
    return tags


def check_filename(value: object, keep_folder: bool = False) -> str | None:
    """An original file name, kept for display only: its last path part (with ``keep_folder``, a clean relative path)."""
    if value is None or value == "":
        return None
    name = check_text(value, "original_filename", 255)
    assert name is not None
    # NOTE: control characters are refused anywhere in the name, before the
    # folder part is cut off (a CRLF there must not slip through).
    if any(c in name for c in "\n\r\t"):
        raise InvalidInput("original_filename contains control characters", field="original_filename")
    name = strip_bidi(name)
    if keep_folder:
        # NOTE: a ComfyUI output's name keeps its subfolder ("casv/two_00001_.png");
        # empty, "." and ".." parts are dropped, so it never reads as a path out.
        return "/".join(p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")) or None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name or None


def strip_bidi(text: str) -> str:
    """``text`` without bidirectional control characters (see BIDI_CONTROLS)."""
    return "".join(c for c in text if c not in BIDI_CONTROLS)


def check_no_trailing_data(data: bytes, fmt: str) -> None:
    """Refuse bytes after a PNG's IEND chunk or beyond a WebP's RIFF size (polyglots); raise NotAnImage.

    A truncated file passes here and is refused by the decoder.
    """
    # NOTE: JPEG is left alone: phone cameras store gain maps and MPF images
    # after the first EOI, and a JPEG is only ever served as image/jpeg with
    # nosniff, so trailing bytes cannot be read as a page.
    if fmt == "PNG":
        pos = 8
        while pos + 12 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            chunk = data[pos + 4:pos + 8]
            pos += 12 + length
            if chunk == b"IEND":
                if pos < len(data):
                    raise NotAnImage(f"{len(data) - pos} bytes follow the PNG's end (a polyglot?)")
                return
    elif fmt == "WEBP":
        size = 8 + int.from_bytes(data[4:8], "little")
        if size < len(data):
            raise NotAnImage(f"{len(data) - size} bytes follow the WebP's end (a polyglot?)")


def sniff(data: bytes) -> tuple[str, str, str]:
    """(ext, mime, Pillow format) from the leading bytes; raise NotAnImage otherwise."""
    for sig, ext, mime, fmt in _SIGNATURES:
        if data.startswith(sig):
            return ext, mime, fmt
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp", "WEBP"
    raise NotAnImage("not a PNG, JPEG or WebP image")


def check_image(
    data: bytes, *, max_bytes: int, max_pixels: int, keep: bool = False, decode: bool = True,
    fit: int | None = None,
) -> ImageInfo:
    """Validate uploaded bytes as an accepted, undamaged image within the limits.

    ``decode=False`` (ingest without a thumbnail) skips the full pixel decode
    where a cheaper check is as safe against truncation and bit rot: a PNG is
    trusted after verify() has CRC-checked every chunk up to IEND, a JPEG is
    decoded at 1/8 scale (the whole entropy-coded stream is still read).
    Decoding goes through :mod:`casvault.decoding` (the process's pixel
    budget); with ``fit`` the kept image is reduced to cover a ``fit``×``fit``
    thumbnail and never held at full size.

    Raises TooLarge (bytes or pixels), NotAnImage (signature, format
    mismatch, damaged data).
    """
    if len(data) == 0:
        raise NotAnImage("the file is empty")
    if len(data) > max_bytes:
        raise TooLarge(f"the file is larger than {max_bytes} bytes", limit=max_bytes)
    ext, mime, fmt = sniff(data)
    check_no_trailing_data(data, fmt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise NotAnImage("the image has no pixels")
                if width * height > max_pixels:
                    raise TooLarge(
                        f"the image has {width}x{height} pixels, more than the limit of {max_pixels}",
                        limit=max_pixels,
                    )
                img.verify()
            # NOTE: verify() checks structure and CRCs but not that pixel data
            # decodes; a truncated stream passes it. Loading catches that.
            # With decode=False a PNG skips it: verify() already read every
            # chunk through IEND with its CRC, so truncation and bit rot fail
            # there; only a crafted stream (bad zlib under good CRCs) passes,
            # which no one decodes until a thumbnail run reports it. The
            # decode is ~75% of a no-thumbnail ingest (bench ingest.vs_floor).
            decoded = None
            if decode or keep or fmt != "PNG":
                # NOTE: a full-size image only when kept without ``fit``; a
                # check alone reduces as far as the format allows.
                target = fit if keep else 1
                decoded = decoding.decode_reduced(data, fmt, target)
    except (TooLarge, NotAnImage, Busy):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"the image has more pixels than the limit of {max_pixels}", limit=max_pixels) from None
    except Exception as exc:  # Pillow raises many types for damaged data
        raise NotAnImage(f"damaged or unreadable {ext.upper()} image: {exc.__class__.__name__}") from None
    return ImageInfo(ext=ext, mime=mime, width=width, height=height, image=decoded if keep else None)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_record(record: object, *, max_bytes: int, text: bool = True) -> None:
    """Check a record read from outside (a backup, a sidecar) as ingest checks its fields.

    Ids, owner, digests, size, status, tags, and with ``text`` the file name
    and text fields (a sidecar on disk is checked without them: older
    adoptions kept file names as found); the times are checked when the
    record is decoded, and the mime against the bytes by the caller
    (``check_image``). Raises InvalidInput naming the field.
    """
    get = lambda name: getattr(record, name, None)  # noqa: E731
    if not is_id(get("id")):
        raise InvalidInput("id must be 32 lowercase hex characters", field="id")
    check_user_id(get("owner"))
    for name in ("sha256", "blake3"):
        value = get(name)
        if (value is not None or name == "sha256") and not (isinstance(value, str) and _HEX64.fullmatch(value)):
            raise InvalidInput(f"{name} must be 64 lowercase hex characters", field=name)
    size = get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= max_bytes:
        raise InvalidInput(f"bytes must be between 1 and {max_bytes}", field="bytes")
    if get("status") not in ("active", "trash"):
        raise InvalidInput("status must be active or trash", field="status")
    if get("trashed_at") is not None:
        from .records import check_time  # NOTE: records imports this module

        try:
            check_time(get("trashed_at"), "trashed_at")
        except ValueError as exc:
            raise InvalidInput(str(exc), field="trashed_at") from None
    tags = get("tags")
    if check_tags(tags) != tags:
        raise InvalidInput("tags must be distinct, trimmed, non-empty strings", field="tags")
    if not text:
        return
    name = get("original_filename")
    if name is not None and check_filename(name) != name:
        raise InvalidInput("original_filename must be a bare file name", field="original_filename")
    for dim in ("width", "height"):
        value = get(dim)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InvalidInput(f"{dim} must be a positive integer", field=dim)
    if getattr(record, "kind", None) == "generated":
        for field, limit in (("prompt", FIELD_MAX_LEN), ("negative_prompt", FIELD_MAX_LEN), ("workflow_id", 200),
                             ("aspect_ratio", 20)):
            check_text(get(field), field, limit)
        seed = get("seed")
        if seed is not None and (isinstance(seed, bool) or not -(2**63) <= seed < 2**64):
            raise InvalidInput("seed must be a 64-bit integer", field="seed")
