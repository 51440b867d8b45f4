"""Garbage collection of blobs: mark what records name, sweep the rest after a grace period.

Marking reads every record, active and trash, of every user: the sidecars
(the truth) and the manifests. A blob is swept only when no record names
it and its mtime is older than the grace (default 24 hours), so an ingest
that has just written a new blob but not yet its sidecar keeps it.

An ingest of bytes whose blob already exists writes nothing to the blob,
so the grace alone does not cover it. Sweeping is therefore two-phase:
candidates are first moved aside to ``tmp/gc/``, then each user's manifest
is re-read under that user's lock (an ingest holds it from the blob check
to its manifest line) and the sidecars are scanned again; a candidate named
now is put back, the rest deleted. An ingest that looks after the move
finds no blob and writes it again. A crash in between leaves the blobs in
``tmp/gc/``; the next gc (or ``fsck --repair``, which takes the ``gc``
job lock for it and leaves a running gc alone) puts them back first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import faults
from .atomic import fsync_dir, remove
from .blobs import SHA256_RE
from .errors import LockBusy
from .jobruns import recorded
from .manifest import replay
from .store import Store
from .validate import is_user_id

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]
DEFAULT_GRACE_HOURS = 24.0


@dataclass
class GcReport:
    """What a gc run found and did."""

    blobs: int = 0
    referenced: int = 0
    unreferenced: int = 0
    young: int = 0  # unreferenced but inside the grace period
    swept: int = 0
    swept_bytes: int = 0
    kept_late: int = 0  # named by a record that appeared during the sweep
    vanished: int = 0  # set aside, then gone before the sweep came back to it: not counted as swept
    dry_run: bool = False
    swept_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def _pending_dir(store: Store) -> Path:
    return store.layout.tmp / "gc"


def pending(store: Store) -> list[Path]:
    """Blobs an interrupted gc left set aside."""
    folder = _pending_dir(store)
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if SHA256_RE.fullmatch(e.name))
    except FileNotFoundError:
        return []


def recover_pending(store: Store) -> int:
    """Put blobs an interrupted gc set aside back in place; returns how many.

    Call with the ``gc`` job lock held (a running gc's set-aside blobs are
    its own). A file that disappeared meanwhile is skipped.
    """
    restored = 0
    for path in pending(store):
        dest = store.blobs.path(path.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
            restored += 1
        except FileExistsError:
            pass
        except FileNotFoundError:
            continue
        remove(path)
    return restored


def running(store: Store) -> bool:
    """True when a gc run holds the ``gc`` job lock right now."""
    try:
        with store.locks.job("gc"):
            return False
    except LockBusy:
        return True


def lock_users(store: Store) -> list[str]:
    """Users who have ever taken a write lock (a first ingest makes its lock before any folder)."""
    try:
        names = [e.name[:-5] for e in os.scandir(store.layout.locks / "users") if e.name.endswith(".lock")]
    except FileNotFoundError:
        return []
    return [n for n in names if is_user_id(n)]


def _manifest_shas(store: Store, owner: str) -> set[str]:
    return {r.sha256 for r in replay(store.layout.manifest_path(owner), owner).records.values()}


def _sidecar_shas(store: Store, owners: Iterable[str]) -> set[str]:
    return {r.sha256 for owner in owners for _, r in store.scan_sidecars(owner) if r is not None}


def referenced(store: Store) -> set[str]:
    """Every sha256 named by a record (active or trash) of any user, from sidecars and manifests."""
    owners = sorted(set(store.users()) | set(lock_users(store)))
    marked = _sidecar_shas(store, owners)
    for owner in owners:
        marked |= _manifest_shas(store, owner)
    return marked


@recorded("gc")
def collect(
    store: Store, grace_hours: float = DEFAULT_GRACE_HOURS, *, dry_run: bool = False, progress: Progress | None = None
) -> GcReport:
    """Sweep unreferenced blobs older than the grace; holds the ``gc`` job lock.

    Raises LockBusy when another gc runs.
    """
    report = GcReport(dry_run=dry_run)
    with store.locks.job("gc"):
        if not dry_run:
            recover_pending(store)
        marked = referenced(store)
        cutoff = time.time() - grace_hours * 3600
        candidates = []
        for blob in store.blobs.iter():
            report.blobs += 1
            if blob.sha256 in marked:
                report.referenced += 1
                continue
            report.unreferenced += 1
            if blob.mtime >= cutoff:
                report.young += 1
                continue
            candidates.append(blob)
        if dry_run:
            report.swept = len(candidates)
            report.swept_bytes = sum(b.size for b in candidates)
            report.swept_ids = sorted(b.sha256 for b in candidates)
            return report
        _sweep(store, candidates, report, progress)
    return report


def _sweep(store: Store, candidates: list, report: GcReport, progress: Progress | None) -> None:
    aside = _pending_dir(store)
    aside.mkdir(parents=True, exist_ok=True)
    moved = []
    for blob in candidates:
        try:
            os.replace(store.blobs.path(blob.sha256), aside / blob.sha256)
        except FileNotFoundError:
            continue
        moved.append(blob)
    faults.point("gc.after_set_aside")
    owners = sorted(set(store.users()) | set(lock_users(store)))
    named: set[str] = set()
    for owner in owners:
        with store.locks.user(owner):
            named |= _manifest_shas(store, owner)
    named |= _sidecar_shas(store, owners)
    items: Iterable[Any] = progress(moved, len(moved), "sweeping") if progress else moved
    for blob in items:
        held = aside / blob.sha256
        if blob.sha256 in named:
            dest = store.blobs.path(blob.sha256)
            try:
                os.link(held, dest)
            except FileExistsError:
                pass  # an ingest wrote it again meanwhile: same bytes
            except FileNotFoundError:
                report.vanished += 1
                continue
            remove(held)
            report.kept_late += 1
            continue
        if not remove(held):
            # NOTE: another process took it back meanwhile: it is not
            # reported swept, and the other candidates still are.
            report.vanished += 1
            continue
        report.swept += 1
        report.swept_bytes += blob.size
        report.swept_ids.append(blob.sha256)
    if store.config.fsync:
        fsync_dir(aside)
        for folder in {store.blobs.path(b.sha256).parent for b in moved}:
            fsync_dir(folder)
