"""The thumbnails job: make missing thumbnails (or all, with ``force``) in parallel.

Workers (processes) read the blob, decode, encode and write the thumbnail
to a durable temp file; the parent only renames it to the record's current
place under the owner's lock, so a record trashed or restored meanwhile
gets its thumbnail in the right folder, and fsyncs each folder once. A record without ``thumb`` gets one, and its sidecar (the truth)
is rewritten, with an ``add`` line carrying the updated record (an add
for a known id replaces it on replay).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import safefs, thumbs
from .atomic import fsync_dir, publish, remove, storage_error, write_file, write_tmp
from .jobruns import recorded
from .records import AddEvent, Record, encode_record, evolve, now_iso
from .store import Store

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]


@dataclass
class ThumbReport:
    """What the job did."""

    made: int = 0
    present: int = 0
    sidecars_updated: int = 0
    gone: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


Task = tuple[str, int, int, str, bool]  # blob path, size, quality, tmp folder, fsync


def render(task: Task) -> tuple[str | None, str | None]:
    """The durable temp file holding the thumbnail of the blob at ``task[0]``, or the error (runs in a worker process).

    Raises StorageFull / StorageError when the temp file cannot be written.
    """
    blob_path, size, quality, tmp_dir, fsync = task
    try:
        data = thumbs.make_thumbnail(Path(blob_path).read_bytes(), size, quality)
    except Exception as exc:  # Pillow raises many types for damaged data
        return None, f"{exc.__class__.__name__}: {exc}"
    return str(write_tmp(Path(tmp_dir), data, fsync=fsync)), None


def write_thumbnail(store: Store, record: Record, data: bytes | None = None) -> Record:
    """Write ``record``'s thumbnail at its place; call under the owner's lock.

    Makes the bytes from the blob unless given. A record without ``thumb``
    gets one: its sidecar is rewritten and an ``add`` line logged. Returns
    the record as it is now. Raises NotFound when the blob is missing.
    """
    cfg = store.config
    if data is None:
        data = thumbs.make_thumbnail(store.blobs.read(record.sha256), cfg.thumb_size, cfg.thumb_quality)
    new = record if record.thumb else evolve(record, thumb=f"thumb/{record.id}.{thumbs.THUMB_EXT}")
    path = store.layout.thumb_path(new)
    safefs.make_dirs(store.layout.root, path.parent)
    write_file(path, data, store.layout.tmp, fsync=cfg.fsync)
    if new is not record:
        write_file(store.layout.sidecar_path(new), encode_record(new), store.layout.tmp, fsync=cfg.fsync)
        store.log_events(record.owner, AddEvent(at=now_iso(), record=new))
    return new


def _select(store: Store, owners: Iterable[str], since: str | None, force: bool, report: ThumbReport) -> list[Record]:
    chosen = []
    for owner in owners:
        for record in list(store.index(owner).records.values()):
            if since is not None and record.created_at < since:
                continue
            if not force and record.thumb and store.layout.thumb_path(record).exists():
                report.present += 1
                continue
            chosen.append(record)
    chosen.sort(key=lambda r: (r.owner, r.created_at))
    return chosen


def _results(tasks: list[Task], jobs: int) -> Iterator[tuple[str | None, str | None]]:
    if jobs <= 1 or len(tasks) < 8:
        yield from map(render, tasks)
        return
    # NOTE: imported here: multiprocessing costs every CLI command ~8 ms of start-up.
    from concurrent.futures import ProcessPoolExecutor

    # NOTE: small chunks: a task is ~30 ms of decoding against well under 1 ms
    # of hand-over, and with chunks of len/8 one worker sat idle for up to a
    # whole chunk at the end while the other finished its last one.
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(render, tasks, chunksize=max(1, min(8, len(tasks) // (jobs * 16))))


@recorded("thumbnails")
def regenerate(
    store: Store,
    *,
    force: bool = False,
    owners: Iterable[str] | None = None,
    since: str | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> ThumbReport:
    """Make missing thumbnails (all with ``force``) for the owners (default every user).

    ``since`` is a UTC ISO lower bound on ``created_at``; ``jobs`` the number
    of worker processes (default: every core).
    """
    report = ThumbReport()
    records = _select(store, store.users() if owners is None else owners, since, force, report)
    cfg = store.config
    tmp_dir = str(store.layout.tmp)
    tasks = [(str(store.blobs.path(r.sha256)), cfg.thumb_size, cfg.thumb_quality, tmp_dir, cfg.fsync) for r in records]
    results = zip(records, _results(tasks, jobs or os.cpu_count() or 1))
    items = progress(results, len(records), "thumbnails") if progress else results
    folders: set[Path] = set()
    try:
        for record, (tmp, error) in items:
            if tmp is None:
                report.failed.append({"user": record.owner, "id": record.id, "reason": error or "unknown error"})
                continue
            try:
                with store.locks.user(record.owner):
                    now = store.current_sidecar(record)
                    if now is None:
                        report.gone += 1  # purged meanwhile
                        continue
                    new = _place(store, now[0], Path(tmp), folders)
                    report.made += 1
                    report.sidecars_updated += new is not now[0]
            finally:
                remove(Path(tmp))  # NOTE: a no-op once renamed into place
    finally:
        if cfg.fsync:
            # NOTE: each temp file was fsynced by its worker; one fsync per
            # folder makes the renames durable before the job reports.
            for folder in sorted(folders):
                fsync_dir(folder)
    return report


def _place(store: Store, record: Record, tmp: Path, folders: set[Path]) -> Record:
    """Rename a rendered thumbnail into place (its folder is fsynced later); call under the owner's lock."""
    if not record.thumb:
        return write_thumbnail(store, record, tmp.read_bytes())
    path = store.layout.thumb_path(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, "creating a thumb folder") from exc
    publish(tmp, path, fsync=False)
    folders.add(path.parent)
    return record
