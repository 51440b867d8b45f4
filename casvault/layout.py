"""Where everything lives under a store root (format 1, DESIGN.md section 2)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from .records import Record, check_time
from .errors import InvalidInput
from .validate import EXT_BY_MIME, check_user_id, is_id

FORMAT = 1
KIND_DIRS = {"generated": (), "control": ("controls",), "input": ("inputs",)}


def normalize_time(value: str | datetime | None) -> str:
    """ISO 8601 in UTC with millisecond precision (sortable as a string).

    Raises ValueError for a string that is not ISO 8601 and for a time
    outside what every partition zone can show (records.check_time).
    """
    if value is None:
        dt = datetime.now(timezone.utc)
    elif isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        utc = dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    except OverflowError:
        raise ValueError(f"{value} is outside the supported range") from None
    check_time(utc)  # NOTE: the records' own rule, so no partition zone or day bound overflows
    return utc


THUMB_RE = re.compile(r"thumb/([0-9a-f]{32})\.(webp|jpg)")


def check_record_paths(record: Record) -> None:
    """Raise InvalidInput unless the record's id, thumb and mime are safe path parts."""
    if not is_id(record.id):
        raise InvalidInput("record id must be 32 lowercase hex characters", field="id")
    if record.mime not in EXT_BY_MIME:
        raise InvalidInput("record mime must be image/png, image/jpeg, image/webp, video/mp4 or video/webm", field="mime")
    if record.thumb is not None:
        m = THUMB_RE.fullmatch(record.thumb)
        if m is None or m[1] != record.id:
            raise InvalidInput("record thumb must be thumb/<id>.webp or thumb/<id>.jpg", field="thumb")


class Layout:
    """Paths of one store root."""

    def __init__(self, root: Path, partition_tz: str = "UTC") -> None:
        self.root = root
        self.outputs = root / "outputs"
        self.trash = root / "trash"
        self.meta = root / "meta"
        self.tmp = root / "tmp"
        self.locks = root / "locks"
        self.blobs = root / "blobs"
        self.config_file = root / "casvault.json"
        self.tz = ZoneInfo(partition_tz)
        self._day_cache: dict[str, tuple[str, str, str]] = {}

    def day(self, created_at: str) -> tuple[str, str, str]:
        """(YYYY, MM, DD) of a creation time in the partition time zone."""
        day = self._day_cache.get(created_at)
        if day is None:
            dt = datetime.fromisoformat(created_at)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            local = dt.astimezone(self.tz)
            day = (f"{local.year:04d}", f"{local.month:02d}", f"{local.day:02d}")
            if len(self._day_cache) > 4096:
                self._day_cache.clear()
            self._day_cache[created_at] = day
        return day

    def user_base(self, owner: str, trashed: bool) -> Path:
        """outputs/users/<owner> or trash/users/<owner>."""
        check_user_id(owner)
        return (self.trash if trashed else self.outputs) / "users" / owner

    def record_dir(self, record: Record, trashed: bool | None = None) -> Path:
        """The folder holding a record's projection and sidecar.

        Raises InvalidInput for a record whose id, thumb or mime could name a
        path of its own (a crafted sidecar or backup): every path is built
        from checked values only.
        """
        check_record_paths(record)
        if trashed is None:
            trashed = record.status == "trash"
        return self.user_base(record.owner, trashed).joinpath(*KIND_DIRS[record.kind], *self.day(record.created_at))

    def sidecar_at(self, owner: str, kind: str, created_at: str, rid: str, trashed: bool) -> Path:
        """The sidecar of a record known by its key alone (the listing snapshot's entries)."""
        return self.user_base(owner, trashed).joinpath(*KIND_DIRS[kind], *self.day(created_at)) / f"{rid}.json"

    def image_path(self, record: Record, trashed: bool | None = None) -> Path:
        """The projection of the original."""
        return self.paths(record, trashed)[0]

    def sidecar_path(self, record: Record, trashed: bool | None = None) -> Path:
        """The record's JSON sidecar."""
        return self.paths(record, trashed)[1]

    def thumb_path(self, record: Record, trashed: bool | None = None) -> Path:
        """The thumbnail (``record.thumb`` is relative to the sidecar's folder)."""
        return self.paths(record, trashed)[2]

    def paths(self, record: Record, trashed: bool | None = None) -> tuple[Path, Path, Path]:
        """(image, sidecar, thumbnail) paths of a record."""
        d = self.record_dir(record, trashed)
        return d / f"{record.id}.{record.ext}", d / f"{record.id}.json", d / (record.thumb or f"thumb/{record.id}.webp")

    def rel_url(self, path: Path) -> str:
        """The /outputs URL of a file under outputs/."""
        return "/outputs/" + path.relative_to(self.outputs).as_posix()

    def manifest_path(self, owner: str) -> Path:
        """meta/users/<owner>/manifest.jsonl."""
        check_user_id(owner)
        return self.meta / "users" / owner / "manifest.jsonl"
