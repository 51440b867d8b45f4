"""The errors the core raises.

One base class, :class:`CasvaultError`; each subclass carries a stable
``code`` (used in JSON error bodies and CLI messages) and the values that
explain it. The web and CLI layers translate them; the core never knows
about HTTP statuses or exit codes.
"""

from __future__ import annotations

from typing import Any


class CasvaultError(Exception):
    """Base class of every error the core raises on purpose."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(CasvaultError):
    """A field, id or argument is malformed."""

    code = "bad_request"


class NotAnImage(CasvaultError):
    """The bytes are not an accepted image (PNG, JPEG, WebP) or are damaged."""

    code = "unsupported_media_type"


class TooLarge(CasvaultError):
    """The upload exceeds the byte or pixel limit."""

    code = "too_large"


class NotFound(CasvaultError):
    """No such record for this owner (another owner's id is also 'not found')."""

    code = "not_found"


class Conflict(CasvaultError):
    """The operation does not fit the record's current state."""

    code = "conflict"


class QuotaExceeded(CasvaultError):
    """The owner's byte or count limit would be exceeded."""

    code = "quota_exceeded"


class StorageFull(CasvaultError):
    """The disk is full (ENOSPC/EDQUOT); nothing was stored."""

    code = "storage_full"


class StorageError(CasvaultError):
    """An I/O error stopped a write; nothing was acknowledged."""

    code = "storage_error"


class IntegrityError(CasvaultError):
    """Stored bytes do not match their digest; the blob was quarantined."""

    code = "integrity_error"

    def __init__(self, message: str, *, expected: str, got: str, **details: Any) -> None:
        super().__init__(message, expected=expected, got=got, **details)
        self.expected = expected
        self.got = got


class ManifestCorrupt(CasvaultError):
    """A manifest has a bad line before its end."""

    code = "manifest_corrupt"


class LockBusy(CasvaultError):
    """Another process holds a lock this operation needs."""

    code = "lock_busy"


class Busy(CasvaultError):
    """This process is decoding as many pixels as its budget allows; retry after ``retry_after`` seconds."""

    code = "busy"


class ConfigError(CasvaultError):
    """The configuration is missing or invalid."""

    code = "config_error"


class UpstreamError(CasvaultError):
    """A service casvault talks to (e.g. ComfyUI) failed or answered nonsense."""

    code = "upstream_error"


class UnsafeFile(CasvaultError):
    """A path the store found or would write is not a regular file inside the root (a symlink, FIFO, device)."""

    code = "unsafe_file"
