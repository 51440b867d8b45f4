"""Backup and restore by day partition, content-addressed across runs.

A backup folder holds::

    backup.json                       format, partition time zone
    blobs/sha256/ab/cd/<hex>          every original the records need, once
    days/YYYY-MM-DD.tar               that day's sidecars + manifest slice
    days/YYYY-MM-DD.sums              blake3 of the archive and of each blob it needs

(``days/YYYY-MM-DD@<user>.tar`` for a one-user backup.) Archives are built
deterministically (sorted members, zero times), so an unchanged day gives
the same bytes and is not rewritten; a blob already in the folder is not
copied again. A day is the partition day (the store's time zone) of
``created_at``; a record belongs to the day it was made, active or trash.

Restore reads archives in a day range into an empty or a live root: every
blob is verified (sha256) before use, records the root already has (or has
purged, or a merge moved to another user) are left alone, new ones are
written in the normal order (blob → sidecar → projection and thumbnail →
manifest line, all under the user's lock). A dry run reports the same
without writing.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

import blake3 as _blake3
import msgspec

from . import faults
from .atomic import fsync_dir, write_file
from .blobs import digest
from .errors import InvalidInput, NotFound
from .jobruns import always, recorded
from .manifest import ManifestState, replay
from .records import AddEvent, Record, decode_record, encode_event, encode_record, now_iso
from .store import Store
from .validate import is_user_id

FORMAT = 1
DAY_RE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:@([a-z0-9_-]+))?\.tar")
Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]
_dict_decoder = msgspec.json.Decoder(dict)


def _b3(data: bytes) -> str:
    return _blake3.blake3(data).hexdigest()


def parse_day(value: str, name: str) -> date:
    """A ``YYYY-MM-DD`` string as a date; raises InvalidInput."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be YYYY-MM-DD", field=name) from None


def _days(lo: date, hi: date) -> list[str]:
    if hi < lo:
        raise InvalidInput("--to is before --from", field="to")
    return [(lo + timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


def _write_atomic(path: Path, data: bytes, fsync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    faults.point("backup.write")
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def blob_path(out: Path, sha256: str) -> Path:
    """Where a blob lives in a backup folder."""
    return out / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256


def _archive(day: str, records: list[Record], owner: str | None, tz: str) -> bytes:
    """The day's tar, byte-for-byte the same for the same records."""
    members: list[tuple[str, bytes]] = [
        ("day.json", msgspec.json.encode({"format": FORMAT, "day": day, "partition_tz": tz, "user": owner,
                                          "records": len(records)})),
        ("manifest.jsonl", b"".join(encode_event(AddEvent(at=r.created_at, record=r)) for r in records)),
    ]
    members += [(f"records/{r.owner}/{r.id}.json", encode_record(r)) for r in records]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class BackupReport:
    """What a backup wrote."""

    days: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    archives_written: int = 0
    archives_unchanged: int = 0
    blobs_written: int = 0
    bytes_written: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


@recorded("backup", when=always)
def backup(
    store: Store, out: Path, from_day: str, to_day: str, owner: str | None = None, progress: Progress | None = None
) -> BackupReport:
    """Back up the records made in [from_day, to_day] (every user, or ``owner``) into ``out``.

    Raises InvalidInput for bad days or user; a damaged or missing blob in
    the store is reported in ``failed`` and its day is not written.
    """
    days = _days(parse_day(from_day, "from"), parse_day(to_day, "to"))
    if owner is not None and not is_user_id(owner):
        raise InvalidInput("user must be anon-<32 hex> or u-...", field="user")
    wanted = set(days)
    fsync = store.config.fsync
    by_day: dict[str, list[Record]] = {}
    for user in [owner] if owner else store.users():
        for _path, record in store.scan_sidecars(user):
            if record is None or record.owner != user:
                continue
            day = "-".join(store.layout.day(record.created_at))
            if day in wanted:
                by_day.setdefault(day, []).append(record)
    tz = str(store.layout.tz)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "backup.json"
    if not meta.exists():
        _write_atomic(meta, msgspec.json.encode({"format": FORMAT, "partition_tz": tz, "created_at": now_iso()}), fsync)
    report = BackupReport()
    items: Iterable[str] = sorted(by_day)
    if progress:
        items = progress(list(items), len(by_day), "backing up")
    for day in items:
        records = sorted(by_day[day], key=lambda r: (r.owner, r.created_at, r.id))
        report.days.append(_backup_day(store, out, day, records, owner, tz, fsync, report))
    return report


def _backup_day(store: Store, out: Path, day: str, records: list[Record], owner: str | None, tz: str,
                fsync: bool, report: BackupReport) -> dict[str, Any]:
    sums: dict[str, str] = {}
    new_blobs = 0
    for sha, size in sorted({(r.sha256, r.bytes) for r in records}):
        dest = blob_path(out, sha)
        rel = dest.relative_to(out).as_posix()
        if dest.exists():
            sums[rel] = _b3(dest.read_bytes())
            continue
        try:
            data = store.blobs.read(sha)
        except NotFound:
            report.failed.append({"day": day, "sha256": sha, "reason": "blob missing in the store"})
            continue
        if digest(data) != sha:
            report.failed.append({"day": day, "sha256": sha, "reason": "blob damaged in the store (run fsck --scrub)"})
            continue
        _write_atomic(dest, data, fsync)
        sums[rel] = _b3(data)
        new_blobs += 1
        report.bytes_written += len(data)
    report.blobs_written += new_blobs
    report.records += len(records)
    name = f"{day}@{owner}" if owner else day
    tar_path = out / "days" / f"{name}.tar"
    data = _archive(day, records, owner, tz)
    digest_now = _b3(data)
    try:
        unchanged = _b3(tar_path.read_bytes()) == digest_now
    except FileNotFoundError:
        unchanged = False
    if unchanged:
        report.archives_unchanged += 1
    else:
        _write_atomic(tar_path, data, fsync)
        report.archives_written += 1
        report.bytes_written += len(data)
    sums[tar_path.relative_to(out).as_posix()] = digest_now
    body = "".join(f"{h}  {p}\n" for p, h in sorted(sums.items())).encode()
    sums_path = tar_path.with_suffix(".sums")
    try:
        same = sums_path.read_bytes() == body
    except FileNotFoundError:
        same = False
    if not same:
        _write_atomic(sums_path, body, fsync)
    return {"day": day, "records": len(records), "blobs": len(sums) - 1, "new_blobs": new_blobs,
            "archive": "unchanged" if unchanged else "written"}


# --- restore ------------------------------------------------------------------


@dataclass
class RestoreReport:
    """What a restore did (or, with ``dry_run``, would do)."""

    days: list[str] = field(default_factory=list)
    restored: int = 0
    existing: int = 0
    purged: int = 0  # purged in this root: not brought back
    moved: int = 0  # moved to another user by a merge in this root: not brought back
    failed: list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False
    ids: list[str] = field(default_factory=list)  # the records restored (or that would be)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        h, _, rel = line.partition("  ")
        if h and rel:
            sums[rel] = h
    return sums


def restore(
    store: Store, src: Path, from_day: str | None = None, to_day: str | None = None,
    progress: Progress | None = None, *, dry_run: bool = False,
) -> RestoreReport:
    """Restore the archives of ``src`` (optionally only days in a range) into the store.

    ``dry_run`` checks the archives and blobs and reports what would be
    restored, writing nothing. Raises NotFound when ``src`` is not a
    casvault backup, InvalidInput for bad days. Damaged archives or blobs
    are reported in ``failed``.
    """
    try:
        meta = _dict_decoder.decode((src / "backup.json").read_bytes())
    except (FileNotFoundError, NotADirectoryError, msgspec.DecodeError):
        raise NotFound(f"no casvault backup at {src} (backup.json missing)") from None
    if meta.get("format") != FORMAT:
        raise InvalidInput(f"backup format {meta.get('format')!r} is not supported", field="format")
    lo = parse_day(from_day, "from").isoformat() if from_day else None
    hi = parse_day(to_day, "to").isoformat() if to_day else None
    archives = []
    for path in sorted((src / "days").glob("*.tar")):
        m = DAY_RE.fullmatch(path.name)
        if m and (lo is None or m.group(1) >= lo) and (hi is None or m.group(1) <= hi):
            archives.append(path)
    report = RestoreReport(dry_run=dry_run)
    logs: dict[str, ManifestState] = {}
    items: Iterable[Path] = progress(archives, len(archives), "restoring") if progress else archives
    for path in items:
        records = _open_archive(path, report)
        if records is None:
            continue
        report.days.append(path.stem)
        for record in records:
            _restore_record(store, src, record, logs, report, dry_run)
    return report


def _open_archive(path: Path, report: RestoreReport) -> list[Record] | None:
    """The records of one archive, after checking it against its sums file."""
    data = path.read_bytes()
    try:
        sums = _read_sums(path.with_suffix(".sums"))
    except FileNotFoundError:
        report.failed.append({"archive": path.name, "reason": "checksum file missing"})
        return None
    if sums.get(f"days/{path.name}") != _b3(data):
        report.failed.append({"archive": path.name, "reason": "archive does not match its checksum"})
        return None
    records = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if not (member.isfile() and member.name.startswith("records/") and member.name.endswith(".json")):
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            try:
                records.append(decode_record(fh.read()))
            except (msgspec.DecodeError, msgspec.ValidationError):
                report.failed.append({"archive": path.name, "member": member.name, "reason": "bad record"})
    return records


def _backup_blob(src: Path, record: Record, report: RestoreReport) -> bytes | None:
    """The backup's copy of a record's blob, verified; None (reported) when missing or damaged."""
    try:
        data = blob_path(src, record.sha256).read_bytes()
    except FileNotFoundError:
        report.failed.append({"id": record.id, "sha256": record.sha256, "reason": "blob missing in the backup"})
        return None
    if digest(data) != record.sha256 or len(data) != record.bytes:
        report.failed.append({"id": record.id, "sha256": record.sha256, "reason": "blob damaged in the backup"})
        return None
    return data


def _restore_record(store: Store, src: Path, record: Record, logs: dict[str, ManifestState],
                    report: RestoreReport, dry_run: bool) -> None:
    from .thumbjob import write_thumbnail

    owner = record.owner
    if not is_user_id(owner):
        report.failed.append({"id": record.id, "reason": f"bad owner {owner!r}"})
        return
    if owner not in logs:
        logs[owner] = replay(store.layout.manifest_path(owner), owner)
    log = logs[owner]
    if record.id in log.purged:
        report.purged += 1  # deleted for good in this root: not brought back
        return
    if record.id in log.moved_out:
        report.moved += 1  # a merge gave it to another user: it lives there now
        return
    if record.id in log.records or store.current_sidecar(record) is not None:
        report.existing += 1
        return
    data = None
    if not store.blobs.has(record.sha256):
        data = _backup_blob(src, record, report)
        if data is None:
            return
    if dry_run:
        report.restored += 1
        report.ids.append(record.id)
        return
    with store.locks.user(owner):
        if store.index(owner).get(record.id) is not None or store.current_sidecar(record) is not None:
            report.existing += 1
            return
        # NOTE: the blob is checked and written under the user's lock, as an
        # ingest does: gc re-reads each manifest under that lock before it
        # deletes a blob it set aside, so the blob cannot go between this
        # check and the manifest line below.
        if not store.blobs.has(record.sha256):
            data = data if data is not None else _backup_blob(src, record, report)
            if data is None:
                return
            store.blobs.put(data, record.sha256)
        image, sidecar, _thumb = store.layout.paths(record)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        write_file(sidecar, encode_record(record), store.layout.tmp, fsync=store.config.fsync)
        faults.point("restore_backup.after_sidecar")
        store.project(record, image)
        faults.point("restore_backup.after_projection")
        if record.thumb:
            write_thumbnail(store, record)
        faults.point("restore_backup.before_manifest")
        store.log_events(owner, AddEvent(at=now_iso(), record=record))
    report.restored += 1
    report.ids.append(record.id)
