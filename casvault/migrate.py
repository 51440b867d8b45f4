"""Moving a store to S3-compatible blobs and a PostgreSQL index while it keeps serving.

DESIGN.md 7. One run: copy every local blob the bucket lacks, apply every
user's manifest to PostgreSQL from the offset recorded there, repeat while
the old store's writes keep arriving (catch-up passes read only the tails),
then verify: per user, the records in PostgreSQL must be exactly those of the
manifest index at the same offset, every referenced blob must be in the
bucket with the local size, and a sample (or, with ``verify_all``, every
one) of the referenced blobs is re-hashed from the bucket. ``switch`` then
records the new backends in ``casvault.json`` so the next ``Store`` opens
them. Everything is resumable: a rerun skips what is already there.

Runbook: run it (repeatedly, if you like) while serving; run it with
``switch``; restart the servers; run it once more to catch up on what the old
processes wrote before they stopped.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import msgspec

from .atomic import write_file
from .backends import postgres_spec, s3_spec
from .backends.postgres import PostgresIndex
from .backends.s3 import S3BlobStore
from .blobs import BlobInfo, FileBlobStore, digest
from .errors import Conflict, IntegrityError, NotFound
from .index import UserIndex
from .store import Store

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]

SAMPLE = 32
WORKERS = 8
MAX_PASSES = 4
SETTLE_TRIES = 3


@dataclass
class MigrationReport:
    """What a migration run did and found."""

    target_blobs: str = ""
    passes: int = 0
    blobs_local: int = 0
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    blobs_replaced: list[str] = field(default_factory=list)  # bucket copy had the wrong size
    blobs_damaged: list[str] = field(default_factory=list)  # local bytes do not match their name
    users: int = 0
    events_applied: int = 0
    records: int = 0
    users_verified: int = 0
    user_mismatches: list[dict[str, Any]] = field(default_factory=list)
    blobs_missing: list[str] = field(default_factory=list)  # referenced, in neither place
    digests_checked: int = 0
    digest_failures: list[str] = field(default_factory=list)
    switched: bool = False

    @property
    def ok(self) -> bool:
        """True when verification found nothing wrong."""
        return not (self.user_mismatches or self.blobs_missing or self.digest_failures)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {**asdict(self), "ok": self.ok}


class CopyResult(NamedTuple):
    """One copy pass: local blobs looked at, already in the bucket, uploaded now."""

    local: int
    present: int
    copied: int


def _quiet(items: Iterable[Any], length: int | None, label: str) -> Iterable[Any]:
    return items


def copy_blobs(
    local: FileBlobStore,
    remote: S3BlobStore,
    report: MigrationReport,
    *,
    only: set[str] | None = None,
    progress: Progress = _quiet,
    workers: int = WORKERS,
) -> CopyResult:
    """Upload the local blobs the bucket lacks (or holds with another size).

    A local blob whose bytes do not hash to its name is not uploaded and is
    listed in ``report.blobs_damaged`` (``casvault fsck --scrub`` deals with it).
    """
    present = {b.sha256: b.size for b in remote.iter()}
    todo: list[BlobInfo] = []
    seen = 0
    for info in local.iter():
        if only is not None and info.sha256 not in only:
            continue
        seen += 1
        size = present.get(info.sha256)
        if size == info.size:
            continue
        if size is not None:
            # NOTE: an object of the wrong size is damaged; it is moved aside
            # in the bucket (never deleted) and uploaded again.
            remote.quarantine(info.sha256, f"size {size} != local {info.size} during migrate")
            report.blobs_replaced.append(info.sha256)
        todo.append(info)
    def upload(info: BlobInfo) -> int:
        try:
            data = local.read(info.sha256)
        except NotFound:
            return -1  # removed by gc meanwhile
        if digest(data) != info.sha256:
            if info.sha256 not in report.blobs_damaged:
                report.blobs_damaged.append(info.sha256)
            return -1
        remote.upload(data, info.sha256)
        return len(data)

    copied = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for size in progress(pool.map(upload, todo), len(todo), "blobs"):
            if size >= 0:
                copied += 1
                report.bytes_copied += size
    report.blobs_copied += copied
    return CopyResult(seen, seen - len(todo), copied)


def sync_users(store: Store, index: PostgresIndex, report: MigrationReport, *, progress: Progress = _quiet) -> int:
    """Apply every user's manifest tail to PostgreSQL; returns events applied."""
    owners = sorted(set(store.users()) | set(index.users()))
    report.users = len(owners)
    applied = 0
    for owner in progress(owners, len(owners), "records"):
        applied += index.sync(owner, store.manifest(owner))
    report.events_applied += applied
    return applied


def verify_users(store: Store, index: PostgresIndex, report: MigrationReport, *, progress: Progress = _quiet) -> None:
    """Compare each user's PostgreSQL rows with the manifest index at the same offset."""
    owners = sorted(set(store.users()) | set(index.users()))
    report.records = 0
    report.users_verified = 0
    for owner in progress(owners, len(owners), "verifying"):
        manifest = store.manifest(owner)
        for _ in range(SETTLE_TRIES):
            index.sync(owner, manifest)
            # NOTE: a fresh index, not the store's cached one: it is the
            # independent reading of the manifest that PostgreSQL must match.
            expected_index = UserIndex(owner, manifest).refresh()
            synced = index.offset(owner)
            if expected_index.manifest_offset == synced:
                break
        expected = {r.id: (r.kind, r.status, r.sha256) for r in expected_index.records.values()}
        got = index.states(owner)
        report.records += len(got)
        if expected == got and expected_index.usage() == index.usage(owner):
            report.users_verified += 1
            continue
        report.user_mismatches.append(
            {
                "owner": owner,
                "manifest_records": len(expected),
                "index_records": len(got),
                "missing": sorted(set(expected) - set(got))[:10],
                "extra": sorted(set(got) - set(expected))[:10],
                "changed": sorted(k for k in set(expected) & set(got) if expected[k] != got[k])[:10],
            }
        )


def verify_blobs(
    local: FileBlobStore,
    remote: S3BlobStore,
    index: PostgresIndex,
    report: MigrationReport,
    *,
    full: bool,
    progress: Progress = _quiet,
    workers: int = WORKERS,
) -> None:
    """Every referenced blob in the bucket (copied now if only local), then re-hash a sample or all."""
    referenced = index.digests()
    present = {b.sha256 for b in remote.iter()}
    late = referenced - present
    if late:
        copy_blobs(local, remote, report, only=late, progress=progress, workers=workers)
        present = {b.sha256 for b in remote.iter()}
    report.blobs_missing = sorted(referenced - present)
    candidates = sorted(referenced & present)
    chosen = candidates if full else random.sample(candidates, min(SAMPLE, len(candidates)))

    def check(sha256: str) -> str | None:
        try:
            remote.verify(sha256)
        except (IntegrityError, NotFound):
            return sha256
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        failures = [s for s in progress(pool.map(check, chosen), len(chosen), "digests") if s]
    report.digests_checked = len(chosen)
    report.digest_failures = sorted(failures)


def switch(store: Store, blob_backend: dict[str, str], index_backend: dict[str, str]) -> None:
    """Record the new backends in casvault.json (atomic replace); the next Store opens them."""
    path = store.layout.config_file
    meta = msgspec.json.decode(path.read_bytes())
    meta["blob_backend"] = blob_backend
    meta["index_backend"] = index_backend
    write_file(path, msgspec.json.format(msgspec.json.encode(meta)) + b"\n", store.layout.tmp, fsync=store.config.fsync)


def migrate(
    store: Store,
    remote: S3BlobStore,
    index: PostgresIndex,
    *,
    verify_all: bool = False,
    do_switch: bool = False,
    progress: Progress = _quiet,
    workers: int = WORKERS,
) -> MigrationReport:
    """Copy blobs and records to S3 and PostgreSQL, catch up, verify, optionally switch.

    Safe to run while the store serves, and to rerun. Raises Conflict when
    ``do_switch`` is asked but verification failed (nothing is switched),
    ConfigError (bucket missing), StorageError, ManifestCorrupt.
    """
    report = MigrationReport(target_blobs=remote.location)
    remote.check()
    index.create_schema()
    # NOTE: the local blobs are opened directly, not through store.blobs, so a
    # catch-up run after the switch still reads them from disk.
    local = FileBlobStore(store.layout.root, store.layout.tmp, fsync=store.config.fsync)
    for _ in range(MAX_PASSES):
        report.passes += 1
        copied = copy_blobs(local, remote, report, progress=progress, workers=workers)
        if report.passes == 1:
            report.blobs_local, report.blobs_present = copied.local, copied.present
        applied = sync_users(store, index, report, progress=progress)
        if report.passes > 1 and copied.copied == 0 and applied == 0:
            break
    verify_users(store, index, report, progress=progress)
    verify_blobs(local, remote, index, report, full=verify_all, progress=progress, workers=workers)
    if do_switch:
        if not report.ok:
            raise Conflict(
                "verification failed, not switching: "
                + f"{len(report.user_mismatches)} user(s) differ, {len(report.blobs_missing)} blob(s) missing, "
                + f"{len(report.digest_failures)} digest failure(s)",
                report=report.as_dict(),
            )
        switch(
            store,
            s3_spec(remote.bucket, remote.endpoint, remote.prefix),
            postgres_spec(index.dsn),
        )
        report.switched = True
    return report


def iter_errors(report: MigrationReport) -> Iterator[str]:
    """One line per problem found, for text output."""
    for m in report.user_mismatches:
        yield (
            f"user {m['owner']}: manifest has {m['manifest_records']} records, "
            f"PostgreSQL {m['index_records']}"
        )
    for sha in report.blobs_missing:
        yield f"blob {sha} is referenced but neither on disk nor in the bucket"
    for sha in report.digest_failures:
        yield f"blob {sha} in the bucket does not match its digest (quarantined; rerun to copy it again)"
    for sha in report.blobs_damaged:
        yield f"local blob {sha} does not match its digest (not copied; run casvault fsck --scrub)"


__all__ = ["MigrationReport", "migrate", "copy_blobs", "sync_users", "verify_users", "verify_blobs", "switch"]
