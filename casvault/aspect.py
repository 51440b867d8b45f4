"""The aspect ratio of an image, derived from its width and height.

One rule, used by ingest (when the caller sent no ``aspect_ratio``) and by
reindex (to fill records stored before the rule existed):

1. ``W:H`` reduced to lowest terms, when both terms are small (at most
   :data:`SMALL`): 1024x1024 is ``1:1``, 1920x1080 ``16:9``, 832x1248 ``2:3``.
   A reduced ratio that is a common ratio under another name takes that
   name: 1344x576 (7:3) is ``21:9``, 1280x800 (8:5) is ``16:10``.
2. Else the nearest common ratio (:data:`COMMON`) within 1 %: 1366x768 is
   ``16:9``, 2048x1365 is ``3:2``.
3. Else ``W:H`` reduced: 2560x1080 is ``64:27``.
"""

from __future__ import annotations

from math import gcd

__all__ = ["COMMON", "SMALL", "TOLERANCE", "aspect_ratio"]

SMALL = 32  # the largest term of a reduced ratio that is still read as a ratio (13:19, 21:32)
TOLERANCE = 0.01  # how far (relative) a size may be from a common ratio to take its name

_LANDSCAPE = ("1:1", "5:4", "4:3", "3:2", "16:10", "5:3", "16:9", "2:1", "21:9", "32:9")
# Common ratios, landscape and portrait, with the value each stands for.
COMMON: dict[str, float] = {}
for _name in _LANDSCAPE:
    _w, _h = (int(part) for part in _name.split(":"))
    COMMON[_name] = _w / _h
    COMMON[f"{_h}:{_w}"] = _h / _w


def _reduced(width: int, height: int) -> tuple[int, int]:
    divisor = gcd(width, height)
    return width // divisor, height // divisor


# "7:3" -> "21:9", "8:5" -> "16:10": common names whose terms are not the lowest.
_ALIASES = {"%d:%d" % _reduced(*map(int, name.split(":"))): name for name in COMMON}


def aspect_ratio(width: object, height: object) -> str | None:
    """The aspect ratio of a ``width`` x ``height`` image by the rule above; None without a usable size."""
    if not isinstance(width, int) or not isinstance(height, int) or isinstance(width, bool) or isinstance(height, bool):
        return None
    if width <= 0 or height <= 0:
        return None
    w, h = _reduced(width, height)
    name = f"{w}:{h}"
    if name in _ALIASES:
        return _ALIASES[name]
    if max(w, h) <= SMALL:
        return name
    value = width / height
    nearest = min(COMMON, key=lambda common: abs(COMMON[common] - value) / COMMON[common])
    if abs(COMMON[nearest] - value) / COMMON[nearest] <= TOLERANCE:
        return nearest
    return name
