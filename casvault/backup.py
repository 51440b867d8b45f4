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

Restore reads archives in a day range into a new, empty or live root. A
backup folder is another's files: it is read by the rule of
:mod:`casvault.safefs` (no link, FIFO or device is followed or read, sizes
are capped, tar members claiming more than a sidecar's cap are refused).
Every record is checked as an ingest checks it, the mime and pixel size
against the bytes too; a bad one is reported with its reason and the rest
go on. A blob comes from the backup, verified (sha256), unless the owner
already holds those exact bytes here. New records are written in the
store's one write order (:meth:`Store.place_record`, under the user's
lock), whole or not at all; records the root already has get back a
missing, damaged or quarantined blob, projection and thumbnail; records
the root purged, or a merge moved to another user, are left alone. A dry
run reports the same without writing.
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

from . import faults, media, safefs, sidecars
from .atomic import fsync_dir
from .blobs import digest
from .config import Config
from .errors import CasvaultError, IntegrityError, InvalidInput, NotFound
from .jobruns import always, recorded
from .layout import normalize_time
from .manifest import ManifestState, replay
from .records import AddEvent, Record, decode_record, encode_event, encode_record, evolve, now_iso
from .store import Store
from .validate import check_image, check_record, is_user_id

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


def _write_atomic(out: Path, path: Path, data: bytes, fsync: bool) -> None:
    safefs.make_dirs(out, path.parent)
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
    if safefs.lkind(meta) != "file":
        _write_atomic(out, meta, msgspec.json.encode({"format": FORMAT, "partition_tz": tz, "created_at": now_iso()}), fsync)
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
        try:
            sums[rel] = _b3(safefs.read_regular(dest, _max_bytes(store.config)))
            continue
        except FileNotFoundError:
            pass
        except CasvaultError:
            pass  # NOTE: not a regular file (a planted link or FIFO): replaced by the real blob below
        try:
            data = store.blobs.read(sha)
        except NotFound:
            report.failed.append({"day": day, "sha256": sha, "reason": "blob missing in the store"})
            continue
        if digest(data) != sha:
            report.failed.append({"day": day, "sha256": sha, "reason": "blob damaged in the store (run fsck --scrub)"})
            continue
        _write_atomic(out, dest, data, fsync)
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
        unchanged = _b3(safefs.read_regular(tar_path, ARCHIVE_MAX_BYTES)) == digest_now
    except (FileNotFoundError, CasvaultError):
        unchanged = False
    if unchanged:
        report.archives_unchanged += 1
    else:
        _write_atomic(out, tar_path, data, fsync)
        report.archives_written += 1
        report.bytes_written += len(data)
    sums[tar_path.relative_to(out).as_posix()] = digest_now
    body = "".join(f"{h}  {p}\n" for p, h in sorted(sums.items())).encode()
    sums_path = tar_path.with_suffix(".sums")
    try:
        same = safefs.read_regular(sums_path, safefs.JSON_MAX_BYTES) == body
    except (FileNotFoundError, CasvaultError):
        same = False
    if not same:
        _write_atomic(out, sums_path, body, fsync)
    return {"day": day, "records": len(records), "blobs": len(sums) - 1, "new_blobs": new_blobs,
            "archive": "unchanged" if unchanged else "written"}


# --- restore ------------------------------------------------------------------

ARCHIVE_MAX_BYTES = 1 << 30  # one day's archive holds sidecars only
MEMBER_MAX_BYTES = safefs.JSON_MAX_BYTES


@dataclass
class RestoreReport:
    """What a restore did (or, with ``dry_run``, would do)."""

    days: list[str] = field(default_factory=list)
    restored: int = 0
    repaired: int = 0  # records already here whose blob, projection or thumbnail was put back
    existing: int = 0
    purged: int = 0  # purged in this root: not brought back
    moved: int = 0  # moved to another user by a merge in this root: not brought back
    failed: list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False
    created: bool = False  # the store was created from the backup's settings
    ids: list[str] = field(default_factory=list)  # the records restored (or that would be)
    repaired_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def _read_meta(src: Path) -> dict[str, Any]:
    """backup.json of a backup folder; raises NotFound, InvalidInput."""
    try:
        meta = _dict_decoder.decode(safefs.read_regular(src / "backup.json", safefs.JSON_MAX_BYTES))
    except (FileNotFoundError, NotADirectoryError, msgspec.DecodeError, msgspec.ValidationError):
        raise NotFound(f"no casvault backup at {src} (backup.json missing)") from None
    except CasvaultError as exc:
        raise InvalidInput(f"{src}/backup.json refused: {exc.message}", field="source") from None
    if meta.get("format") != FORMAT:
        raise InvalidInput(f"backup format {meta.get('format')!r} is not supported", field="format")
    return meta


def open_for_restore(config: Config, src: Path, *, dry_run: bool = False) -> tuple[Store, bool]:
    """The store to restore into, and whether it was created now.

    A root without ``casvault.json`` that is missing or empty becomes a new
    store with the backup's own format and partition time zone (not with a
    dry run: that raises NotFound). Raises NotFound (not a backup, or a
    non-empty folder that is not a store), InvalidInput, ConfigError.
    """
    meta = _read_meta(src)
    root = Path(config.root)
    if (root / "casvault.json").is_file():
        return Store(config, create=False), False
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise NotFound(f"no casvault store at {root}, and the folder is not empty: refusing to create one there",
                       root=str(root))
    if dry_run:
        raise NotFound(f"no casvault store at {root} yet (a restore without --dry-run creates it)", root=str(root))
    tz = meta.get("partition_tz", "UTC")
    if not isinstance(tz, str):
        raise InvalidInput("the backup's partition_tz is not a time zone name", field="partition_tz")
    return Store.init(config, partition_tz=tz)


def restore(
    store: Store, src: Path, from_day: str | None = None, to_day: str | None = None,
    progress: Progress | None = None, *, dry_run: bool = False,
) -> RestoreReport:
    """Restore the archives of ``src`` (optionally only days in a range) into the store.

    Every record is checked as an ingest checks it (ids, digests, times,
    sizes, tags, text, mime against the bytes); a bad one is reported in
    ``failed`` with its reason and the others are restored. A record's blob
    comes from the backup, verified, unless the owner already holds those
    bytes here. For records already here, a blob that is missing, damaged
    or quarantined, and a missing or stale projection or thumbnail, are put
    back from the backup's verified copy (``repaired``). ``dry_run`` checks
    everything and writes nothing. Raises NotFound when ``src`` is not a
    casvault backup, InvalidInput for bad days.
    """
    src = Path(os.path.realpath(src))
    _read_meta(src)
    lo = parse_day(from_day, "from").isoformat() if from_day else None
    hi = parse_day(to_day, "to").isoformat() if to_day else None
    report = RestoreReport(dry_run=dry_run)
    archives = []
    for folder, _dirs, files, foreign in safefs.walk(src / "days"):
        for entry in foreign:
            if entry.path.name.endswith(".tar"):
                report.failed.append({"archive": entry.path.name, "reason": f"refused: {entry.reason}"})
        for name in files:
            m = DAY_RE.fullmatch(name)
            if m and (lo is None or m.group(1) >= lo) and (hi is None or m.group(1) <= hi):
                archives.append(folder / name)
        break
    ctx = _Context(store, src, report, dry_run)
    items: Iterable[Path] = progress(archives, len(archives), "restoring") if progress else archives
    for path in items:
        records = _open_archive(path, report)
        if records is None:
            continue
        report.days.append(path.stem)
        for member, record in records:
            try:
                _restore_record(ctx, record)
            except CasvaultError as exc:
                report.failed.append({"archive": path.name, "member": member, "id": record.id, "reason": exc.message})
    return report


def _open_archive(path: Path, report: RestoreReport) -> list[tuple[str, Record]] | None:
    """The (member name, record) pairs of one archive, after checking it against its sums file.

    A bad member is reported and skipped; the others are kept.
    """
    try:
        data = safefs.read_regular(path, ARCHIVE_MAX_BYTES)
        sums = _read_sums(path.with_suffix(".sums"))
    except FileNotFoundError:
        report.failed.append({"archive": path.name, "reason": "checksum file missing"})
        return None
    except CasvaultError as exc:
        report.failed.append({"archive": path.name, "reason": f"refused: {exc.message}"})
        return None
    if sums.get(f"days/{path.name}") != _b3(data):
        report.failed.append({"archive": path.name, "reason": "archive does not match its checksum"})
        return None
    records: list[tuple[str, Record]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not (member.name.startswith("records/") and member.name.endswith(".json")):
                    continue
                failure = {"archive": path.name, "member": member.name[:300]}
                if not member.isfile():
                    report.failed.append({**failure, "reason": "not a regular file in the archive"})
                    continue
                if member.size > MEMBER_MAX_BYTES:
                    report.failed.append({**failure, "reason": f"member claims {member.size} bytes (limit {MEMBER_MAX_BYTES})"})
                    continue
                fh = tar.extractfile(member)
                raw = fh.read(MEMBER_MAX_BYTES + 1) if fh is not None else b""
                try:
                    record = decode_record(raw)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    report.failed.append({**failure, "reason": f"bad record: {exc}"})
                    continue
                if member.name != f"records/{record.owner}/{record.id}.json":
                    report.failed.append({**failure, "reason": "member name does not match the record's owner and id"})
                    continue
                records.append((member.name, record))
    except (tarfile.TarError, EOFError, OSError) as exc:
        report.failed.append({"archive": path.name, "reason": f"archive damaged after {len(records)} records: {exc}"})
    return records


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in safefs.read_regular(path, safefs.JSON_MAX_BYTES).decode("utf-8", "replace").splitlines():
        h, _, rel = line.partition("  ")
        if h and rel:
            sums[rel] = h
    return sums


class _Context:
    """What one restore run reads once: each user's manifest, and which user holds each id."""

    def __init__(self, store: Store, src: Path, report: RestoreReport, dry_run: bool) -> None:
        self.store, self.src, self.report, self.dry_run = store, src, report, dry_run
        self.logs: dict[str, ManifestState] = {}
        self._id_owner: dict[str, str] | None = None

    def log(self, owner: str) -> ManifestState:
        """``owner``'s manifest replayed (cached for the run)."""
        if owner not in self.logs:
            self.logs[owner] = replay(self.store.layout.manifest_path(owner), owner)
        return self.logs[owner]

    def id_owner(self, rid: str) -> str | None:
        """The user whose manifest holds ``rid``, if any."""
        if self._id_owner is None:
            self._id_owner = {}
            for user in self.store.users():
                for record_id in self.log(user).records:
                    self._id_owner.setdefault(record_id, user)
        return self._id_owner.get(rid)


def _backup_blob(src: Path, record: Record, max_bytes: int) -> bytes | None:
    """The backup's copy of a record's blob, verified; None when the backup does not carry it.

    Raises InvalidInput when the copy is damaged, too large or not a regular file.
    """
    path = blob_path(src, record.sha256)
    try:
        safefs.check_inside(src, path)
        data = safefs.read_regular(path, max_bytes)
    except FileNotFoundError:
        return None
    except CasvaultError as exc:
        raise InvalidInput(f"blob refused in the backup: {exc.message}", field="sha256") from None
    if digest(data) != record.sha256 or len(data) != record.bytes:
        raise InvalidInput("blob damaged in the backup", field="sha256")
    return data


def _max_bytes(cfg: Config) -> int:
    """The largest original a record may have (images and videos have their own limits)."""
    return max(cfg.max_upload_bytes, cfg.max_video_bytes)


def _store_blob_ok(store: Store, record: Record) -> bool:
    """True when the store holds the record's blob with the right bytes (a damaged one is quarantined)."""
    if not store.blobs.has(record.sha256):
        return False
    try:
        algo = "blake3" if record.blake3 else "sha256"
        store.blobs.verify(record.sha256, algo=algo, expected=record.blake3)
    except (IntegrityError, NotFound):
        return False
    return True


def _projection_ok(store: Store, record: Record) -> bool:
    """True when the record's projection holds its blob's bytes (remote blobs have no projection)."""
    if not store.blobs.local:
        return True  # NOTE: remote blobs have no projection (Store.project)
    return sidecars.carries_bytes(store, record, store.layout.image_path(record))


def _quarantined(store: Store, record: Record) -> Record | None:
    """The newest sidecar fsck set aside for this record (its latest tags and status), if it is the same image.

    fsck moves the sidecar of a record whose image was lost to
    ``quarantine/records/<owner>/<id>.<time>.json``; it is newer than the
    backup. Used only when it names the same owner, id and bytes and passes
    the same checks.
    """
    folder = store.layout.root / "quarantine" / "records" / record.owner
    found: list[tuple[int, Path]] = []
    for _folder, _dirs, files, _foreign in safefs.walk(folder):
        for name in files:
            rid, _, rest = name.partition(".")
            stamp = rest.removesuffix(".json")
            if rid == record.id and rest.endswith(".json") and stamp.isdigit():
                found.append((int(stamp), folder / name))
        break
    for _stamp, path in sorted(found, reverse=True):
        try:
            kept = decode_record(safefs.read_regular(path, safefs.JSON_MAX_BYTES))
            check_record(kept, max_bytes=_max_bytes(store.config))
        except (OSError, CasvaultError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        same = (kept.id, kept.owner, kept.kind, kept.sha256, kept.bytes, kept.mime)
        if same == (record.id, record.owner, record.kind, record.sha256, record.bytes, record.mime):
            normal = normalize_time(kept.created_at)
            return kept if normal == kept.created_at else evolve(kept, created_at=normal)
    return None


def _restore_record(ctx: _Context, record: Record) -> None:
    """Restore one checked record, or put back what it lost; raises CasvaultError with the reason."""
    store, report = ctx.store, ctx.report
    cfg = store.config
    limit = _max_bytes(cfg)
    check_record(record, max_bytes=limit)
    normal = normalize_time(record.created_at)
    if normal != record.created_at:
        record = evolve(record, created_at=normal)
    owner = record.owner
    log = ctx.log(owner)
    if record.id in log.purged:
        report.purged += 1  # deleted for good in this root: not brought back
        return
    if record.id in log.moved_out:
        report.moved += 1  # a merge gave it to another user: it lives there now
        return
    holder = ctx.id_owner(record.id)
    if holder is not None and holder != owner:
        raise InvalidInput(f"the id belongs to another user here ({holder})", field="id")
    current = store.current_sidecar(record)
    if current is not None:
        _repair(ctx, current[0])
        return
    record = _quarantined(store, record) or record
    data = _backup_blob(ctx.src, record, limit)
    if data is None:
        # NOTE: naming a digest is not holding its bytes: without a copy in
        # the backup, only a user who already has this image may point at it.
        if not any(r.sha256 == record.sha256 for r in log.records.values()) or not _store_blob_ok(store, record):
            raise NotFound("blob missing in the backup (and this user holds no such image here)",
                           sha256=record.sha256)
        data = store.blobs.read(record.sha256)
    if record.mime.startswith("video/"):
        info: Any = media.check_video(data, max_bytes=cfg.max_video_bytes, max_pixels=cfg.max_pixels)
    else:
        info = check_image(data, max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_pixels,
                           keep=record.thumb is not None)
    if info.mime != record.mime:
        raise InvalidInput(f"the bytes are {info.mime}, the record says {record.mime}", field="mime")
    if (record.width, record.height) not in ((None, None), (info.width, info.height)):
        raise InvalidInput(f"the image is {info.width}x{info.height}, the record says {record.width}x{record.height}",
                           field="width")
    thumb = None
    if record.thumb:
        assert info.image is not None
        thumb = store.thumbnailer.make(info.image)
    if ctx.dry_run:
        report.restored += 1
        report.ids.append(record.id)
        return
    with store.user_lock(owner):
        if store.current_sidecar(record) is not None:
            report.existing += 1
            return
        # NOTE: the blob is checked and written under the user's lock, as an
        # ingest does: gc re-reads each manifest under that lock before it
        # deletes a blob it set aside, so the blob cannot go between this
        # check and the manifest line below.
        if not _store_blob_ok(store, record):
            store.blobs.put(data, record.sha256)
        store.place_record(record, thumb, point="restore_backup")
    report.restored += 1
    report.ids.append(record.id)


def _repair(ctx: _Context, record: Record) -> None:
    """A record already here: put back its blob, projection and thumbnail from the backup when they are gone."""
    from .thumbjob import write_thumbnail

    store, report = ctx.store, ctx.report
    blob_ok = _store_blob_ok(store, record)
    image_ok = blob_ok and _projection_ok(store, record)
    thumb_ok = not record.thumb or os.path.isfile(store.layout.thumb_path(record))
    if blob_ok and image_ok and thumb_ok:
        report.existing += 1
        return
    data = None
    if not blob_ok:
        data = _backup_blob(ctx.src, record, _max_bytes(store.config))
        if data is None:
            raise NotFound("the store's blob is missing or damaged and the backup does not carry it",
                           sha256=record.sha256)
    if ctx.dry_run:
        report.repaired += 1
        report.repaired_ids.append(record.id)
        return
    with store.user_lock(record.owner):
        if data is not None and not _store_blob_ok(store, record):
            store.blobs.put(data, record.sha256)
        image = store.layout.image_path(record)
        safefs.make_dirs(store.layout.root, image.parent)
        if not _projection_ok(store, record):
            store.project(record, image)
        if record.thumb and not os.path.isfile(store.layout.thumb_path(record)):
            write_thumbnail(store, record)
    report.repaired += 1
    report.repaired_ids.append(record.id)
