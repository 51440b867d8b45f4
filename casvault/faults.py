"""Fault injection for crash-consistency tests.

``CASVAULT_FAULTS`` names points and what happens there, e.g.
``ingest.after_sidecar=exit`` or ``blob.write=enospc,manifest.append=raise``.
Actions: ``exit`` (``os._exit(137)``, like a kill), ``raise`` (RuntimeError),
``enospc``/``eio`` (OSError with that errno). A ``@N`` suffix fires on the
N-th pass only (``ingest.after_blob=exit@3``). Unset, it costs one dict lookup.
"""

from __future__ import annotations

import errno
import os

_SPEC: dict[str, tuple[str, int]] | None = None
_COUNTS: dict[str, int] = {}
ENV = "CASVAULT_FAULTS"


class InjectedFault(RuntimeError):
    """Raised at a point armed with ``raise``."""


def _load() -> dict[str, tuple[str, int]]:
    spec: dict[str, tuple[str, int]] = {}
    for part in os.environ.get(ENV, "").split(","):
        if "=" not in part:
            continue
        point, action = part.strip().split("=", 1)
        nth = 1
        if "@" in action:
            action, n = action.split("@", 1)
            nth = int(n)
        spec[point] = (action, nth)
    return spec


def reset() -> None:
    """Re-read ``CASVAULT_FAULTS`` (tests change it between runs)."""
    global _SPEC
    _SPEC = None
    _COUNTS.clear()


def point(name: str) -> None:
    """Mark a named step; does nothing unless that point is armed."""
    global _SPEC
    if _SPEC is None:
        _SPEC = _load()
    if not _SPEC or name not in _SPEC:
        return
    action, nth = _SPEC[name]
    _COUNTS[name] = _COUNTS.get(name, 0) + 1
    if _COUNTS[name] != nth:
        return
    if action == "exit":
        os._exit(137)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected at {name})")
    if action == "eio":
        raise OSError(errno.EIO, os.strerror(errno.EIO) + f" (injected at {name})")
    raise InjectedFault(f"injected fault at {name}")
