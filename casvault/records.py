"""Records (the sidecar's content) and manifest events, as msgspec Structs.

Field names are the seed memo's and never change. Generated images carry
``workflow_id, aspect_ratio, seed, prompt``; controls and inputs do not.
Optional fields are omitted while they hold their default. Unknown fields
from a newer version are kept (in ``__dict__['_extra']``) and written back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Union

import msgspec

from .errors import CasvaultError

SCHEMA = 1
KINDS = ("generated", "control", "input")


class _Record(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="kind", dict=True):
    id: str
    owner: str
    original_filename: str | None
    mime: str
    bytes: int
    sha256: str
    created_at: str
    status: str
    thumb: str | None
    tags: list[str]
    width: int | None = None
    height: int | None = None
    favorite: bool = False
    trashed_at: str | None = None
    blake3: str | None = None
    source: dict[str, Any] | None = None
    legacy_path: str | None = None  # an adopted file's old path under outputs/ (its old URL redirects)
    frames: int | None = None  # an animated image's frame count
    duration_ms: int | None = None  # how long it plays once
    color: str | None = None  # average colour "#rrggbb" of the thumbnail, set at ingest
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        """Refuse a creation time that does not parse or that some time zone cannot show (a crafted sidecar)."""
        check_time(self.created_at, "created_at")

    @property
    def kind(self) -> str:
        """'generated', 'control' or 'input' (the struct's tag)."""
        return self.__struct_config__.tag  # type: ignore[return-value]

    @property
    def ext(self) -> str:
        """File extension of the original, from its mime type."""
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4",
                "video/webm": "webm"}[self.mime]

    @property
    def trashed(self) -> bool:
        """True while the record is in the trash."""
        return self.status == "trash"


class GeneratedRecord(_Record, tag="generated"):
    """A generated image (the JobManager's output)."""

    workflow_id: str | None
    aspect_ratio: str | None
    seed: int | None
    prompt: str | None
    negative_prompt: str | None = None


class ControlRecord(_Record, tag="control"):
    """A control image (ControlNet input) uploaded by the user."""


class InputRecord(_Record, tag="input"):
    """An image in the user's input library."""


Record = Union[GeneratedRecord, ControlRecord, InputRecord]
RECORD_TYPES: dict[str, type] = {"generated": GeneratedRecord, "control": ControlRecord, "input": InputRecord}


# --- manifest events --------------------------------------------------------


class _Event(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="event"):
    at: str


class AddEvent(_Event, tag="add"):
    """A record was created (the whole record)."""

    record: Record


class TrashEvent(_Event, tag="trash"):
    """A record moved to the trash."""

    id: str


class RestoreEvent(_Event, tag="restore"):
    """A record came back from the trash."""

    id: str


class PurgeEvent(_Event, tag="purge"):
    """A record was deleted for good."""

    id: str


class MetaEvent(_Event, tag="meta"):
    """Tags and/or favorite changed (None: unchanged)."""

    id: str
    tags: list[str] | None = None
    favorite: bool | None = None


class MoveEvent(_Event, tag="move"):
    """Owner change: in the old owner's log without record, in the new owner's with it."""

    id: str
    owner_from: str
    owner_to: str
    record: Record | None = None


Event = Union[AddEvent, TrashEvent, RestoreEvent, PurgeEvent, MetaEvent, MoveEvent]

def event_id(event: Event) -> str:
    """The id of the record an event is about."""
    return event.record.id if isinstance(event, AddEvent) else event.id


def apply_event(record: Record | None, event: Event, owner: str) -> Record | None:
    """The state of one record after ``event`` in ``owner``'s manifest (None: gone).

    The one rule book for replaying a manifest: the per-process index, the
    PostgreSQL index and fsck all fold events through it.
    """
    if isinstance(event, AddEvent):
        return event.record
    if isinstance(event, PurgeEvent):
        return None
    if isinstance(event, MoveEvent):
        return event.record if event.record is not None and event.owner_to == owner else None
    if record is None:
        return None
    if isinstance(event, TrashEvent):
        return record if record.status == "trash" else evolve(record, status="trash", trashed_at=event.at)
    if isinstance(event, RestoreEvent):
        return record if record.status == "active" else evolve(record, status="active")
    changes: dict[str, Any] = {}
    if event.tags is not None:
        changes["tags"] = event.tags
    if event.favorite is not None:
        changes["favorite"] = event.favorite
    return evolve(record, **changes) if changes else record


_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(Record)
_event_decoder = msgspec.json.Decoder(Event)
_known: dict[type, frozenset[str]] = {
    t: frozenset(t.__struct_fields__) | {"kind"} for t in RECORD_TYPES.values()
}


# NOTE: a day of margin at both ends, so that the partition day of any
# accepted time exists in every time zone (year 1 and 9999 overflow there).
_EARLIEST = datetime(1, 1, 2, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)


def check_time(value: object, name: str = "created_at") -> None:
    """Raise ValueError unless ``value`` is an ISO 8601 time between years 1 and 9999 in every zone.

    Raised inside msgspec decoding, the error becomes a ValidationError: a
    sidecar, manifest line or backup record with such a time does not parse.
    """
    try:
        dt = datetime.fromisoformat(value)  # type: ignore[arg-type]
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        ok = 1 < dt.year < 9999 or _EARLIEST <= dt <= _LATEST  # NOTE: the year test alone is the fast path
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} is not an ISO 8601 time between the years 1 and 9999")


def now_iso() -> str:
    """The current time, ISO 8601 with offset, millisecond precision."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def timestamp(created_at: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (naive means UTC)."""
    dt = datetime.fromisoformat(created_at)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def encode_record(record: Record) -> bytes:
    """Sidecar JSON of a record, unknown fields from a newer version included."""
    extra = record.__dict__.get("_extra") if hasattr(record, "__dict__") else None
    if not extra:
        return _encoder.encode(record)
    data = msgspec.to_builtins(record)
    for key, value in extra.items():
        data.setdefault(key, value)
    return _encoder.encode(data)


def decode_record(data: bytes) -> Record:
    """Parse a sidecar; raises msgspec.ValidationError / DecodeError on bad data.

    A record read from disk (a sidecar, a backup) is checked for fields that
    name paths (id, thumb, mime, owner) before anything uses it.
    """
    record = _record_decoder.decode(data)
    from .layout import check_record_paths  # NOTE: layout imports records
    from .validate import is_user_id

    try:
        check_record_paths(record)
    except CasvaultError as exc:
        raise msgspec.ValidationError(exc.message) from None
    if not is_user_id(record.owner):
        raise msgspec.ValidationError("record owner is not a user id")
    raw = msgspec.json.decode(data)
    extra = {k: v for k, v in raw.items() if k not in _known[type(record)]}
    if extra:
        record.__dict__["_extra"] = extra
    return record


def evolve(record: Record, **changes: Any) -> Record:
    """A copy of ``record`` with fields changed, unknown fields carried over."""
    new = msgspec.structs.replace(record, **changes)
    extra = record.__dict__.get("_extra")
    if extra:
        new.__dict__["_extra"] = extra
    return new


def encode_event(event: Event) -> bytes:
    """One manifest line (with its newline)."""
    buf = bytearray()
    _encoder.encode_into(event, buf)
    buf.extend(b"\n")
    return bytes(buf)


def decode_event(line: bytes) -> Event:
    """Parse one manifest line; raises msgspec errors on bad data."""
    return _event_decoder.decode(line)


def decode_events(buf: bytes) -> list[Event]:
    """Parse newline-delimited manifest lines in one call (fast path)."""
    return _event_decoder.decode_lines(buf)


def to_dict(record: Record) -> dict[str, Any]:
    """A record as plain JSON-able values (for API answers)."""
    data = msgspec.to_builtins(record)
    extra = record.__dict__.get("_extra")
    if extra:
        for key, value in extra.items():
            data.setdefault(key, value)
    return data
