"""Emptying the trash: purge the records trashed longer ago than the retention.

One function for every caller (the CLI and scheduler job, the admin
endpoint, a visitor emptying their own trash), so they purge and report
alike: each record is purged on its own (the manifest line first, then
the files; a file already missing counts as deleted), a record restored
or purged meanwhile by someone else is passed over, and any other failure
is reported with its reason while the run goes on. Nothing is swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

from .errors import CasvaultError, Conflict, NotFound
from .jobruns import recorded
from .layout import normalize_time

if TYPE_CHECKING:
    from .records import Record
    from .store import Store


@dataclass
class PurgeReport:
    """What a purge run did (or, with ``dry_run``, would do)."""

    purged: list[dict[str, Any]] = field(default_factory=list)  # {"id", "owner", "bytes"}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"id", "owner", "code", "reason"}
    users: int = 0
    dry_run: bool = False

    @property
    def count(self) -> int:
        """How many records were purged."""
        return len(self.purged)

    @property
    def bytes_freed(self) -> int:
        """Logical bytes of the purged records (their blobs go at the next gc)."""
        return sum(p["bytes"] for p in self.purged)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "purged": self.purged, "count": self.count, "bytes_freed": self.bytes_freed, "failed": self.failed,
            "users": self.users, "dry_run": self.dry_run,
        }

    def as_summary(self) -> dict[str, Any]:
        """Counts, ids and failures: the JSON of ``casvault purge-trash`` and of the scheduler's job."""
        return {
            "purged": self.count, "bytes": self.bytes_freed, "ids": [p["id"] for p in self.purged],
            "failed": self.failed, "users": self.users, "dry_run": self.dry_run,
        }


def due(store: Store, owner: str, older_than_days: float | None = None) -> list[Record]:
    """``owner``'s records trashed more than N days ago (default: the retention), oldest first.

    Raises ManifestCorrupt when the user's manifest cannot be read.
    """
    days = store.config.trash_retention_days if older_than_days is None else older_than_days
    cutoff = normalize_time(datetime.now().astimezone() - timedelta(days=days))
    found = [
        r for r in store.index(owner).records.values()
        if r.status == "trash" and (r.trashed_at or r.created_at) <= cutoff
    ]
    return sorted(found, key=lambda r: (r.trashed_at or r.created_at, r.id))


@recorded("purge-trash")
def purge_expired(
    store: Store,
    older_than_days: float | None = None,
    *,
    owners: Iterable[str] | None = None,
    dry_run: bool = False,
) -> PurgeReport:
    """Purge the records trashed more than N days ago (default: the retention) of every user, or ``owners``.

    ``older_than_days=0`` empties the trash. Never raises for one record
    or one user: failures are in the report's ``failed``.
    """
    report = PurgeReport(dry_run=dry_run)
    for owner in store.users() if owners is None else owners:
        report.users += 1
        try:
            records = due(store, owner, older_than_days)
        except CasvaultError as exc:
            report.failed.append({"id": None, "owner": owner, "code": exc.code, "reason": exc.message})
            continue
        for record in records:
            if not dry_run:
                try:
                    store.purge(owner, record.id)
                except (NotFound, Conflict):
                    continue  # purged or restored meanwhile by someone else
                except CasvaultError as exc:
                    report.failed.append({"id": record.id, "owner": owner, "code": exc.code, "reason": exc.message})
                    continue
                except OSError as exc:
                    report.failed.append({"id": record.id, "owner": owner, "code": "storage_error",
                                          "reason": f"I/O error: {exc.strerror or exc}"})
                    continue
            report.purged.append({"id": record.id, "owner": owner, "bytes": record.bytes})
    return report
