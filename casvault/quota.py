"""Quotas: bytes and count per user; trash counts until it is purged."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import QuotaExceeded
from .validate import MEMBER_RE


@dataclass(frozen=True)
class Usage:
    """What one user holds (logical bytes: a shared blob counts for each record)."""

    count: int
    bytes: int
    trash_count: int
    trash_bytes: int

    def as_dict(self) -> dict[str, int]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    """A user's limits; 0 means unlimited."""

    max_bytes: int = 0
    max_count: int = 0

    def as_dict(self) -> dict[str, int | None]:
        """Plain values for JSON (None for unlimited)."""
        return {"max_bytes": self.max_bytes or None, "max_count": self.max_count or None}


@dataclass(frozen=True)
class Policy:
    """Guests' and members' limits: sites usually give members more."""

    guest: Limits
    member: Limits

    def limits_for(self, user_id: str) -> Limits:
        """The limits that apply to ``user_id`` (members ``u-...``, guests otherwise)."""
        return self.member if MEMBER_RE.fullmatch(user_id) else self.guest


def check(usage: Usage, limits: Limits, add_bytes: int, add_count: int = 1) -> None:
    """Raise QuotaExceeded if adding would pass a limit (call under the user's lock)."""
    if limits.max_count and usage.count + add_count > limits.max_count:
        raise QuotaExceeded(
            f"count limit reached: {usage.count} of {limits.max_count} images"
            + (f" ({usage.trash_count} in the trash)" if usage.trash_count else ""),
            usage=usage.as_dict(),
            limits=limits.as_dict(),
        )
    if limits.max_bytes and usage.bytes + add_bytes > limits.max_bytes:
        raise QuotaExceeded(
            f"byte limit reached: {usage.bytes} + {add_bytes} > {limits.max_bytes} bytes"
            + (f" ({usage.trash_bytes} in the trash)" if usage.trash_bytes else ""),
            usage=usage.as_dict(),
            limits=limits.as_dict(),
        )


def percent(usage: Usage, limits: Limits) -> float | None:
    """Percent used of the tighter limit, None when unlimited."""
    parts = []
    if limits.max_bytes:
        parts.append(100.0 * usage.bytes / limits.max_bytes)
    if limits.max_count:
        parts.append(100.0 * usage.count / limits.max_count)
    return round(max(parts), 2) if parts else None
