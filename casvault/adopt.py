"""Adoption: turn plain files dropped into ``outputs/users/...`` into records, in place.

An older app (or any other program) writes ``<name>.png`` and maybe a
``<name>.json`` with its own fields straight into a user's day folder.
Adopting one file hashes it, stores the blob, writes a proper sidecar
(keeping the old JSON's prompt, seed, workflow_id, aspect_ratio, created_at,
tags), replaces the file with a projection at the record's path, makes the
thumbnail, appends the manifest line, and only then removes the plain file
and the old JSON.

An adopted file keeps its day: ``created_at`` is the day of its path
(``…/2026/10/02/…``, with the time of day of its mtime), else the PNG's own
``Creation Time``, else its mtime; its old path is kept in the record
(``legacy_path``) and ``/outputs`` answers the old URL with a 301 to the new one.

Idempotent by construction: the id is the old one when it is 32 hex and
no other user holds it, else derived from (owner, path, content), so a
rerun after a crash finds the half-made record and finishes it; a plain file is removed only after its
record is durable.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import msgspec

from . import comfy, faults, safefs, thumbs
from .atomic import fsync_dir, remove, write_file
from .blobs import blake3_digest, digest
from .errors import CasvaultError, InvalidInput, ManifestCorrupt, UnsafeFile
from .layout import normalize_time
from .records import (
    RECORD_TYPES, AddEvent, MoveEvent, PurgeEvent, Record, check_time, decode_record, encode_record, now_iso,
)
from .store import Store, _fill_from_comfy
from .validate import FIELD_MAX_LEN, MIME_BY_EXT, check_image, check_tags, check_text, is_id, is_user_id, sniff

IMAGE_EXTS = tuple(MIME_BY_EXT)  # every extension a record may have (videos too)
KIND_OF_DIR = {"controls": "control", "inputs": "input"}
LEGACY_FIELDS = ("prompt", "negative_prompt", "seed", "workflow_id", "aspect_ratio", "created_at", "tags")

_dict_decoder = msgspec.json.Decoder(dict)

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]


@dataclass
class Adopted:
    """What happened to one plain file."""

    path: str
    status: str  # "adopted", "resumed" (finished after a crash), "skipped" (ours already), "failed"
    id: str | None = None
    owner: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class AdoptReport:
    """The outcome of adopting a tree."""

    items: list[Adopted] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(1 for i in self.items if i.status == status)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "adopted": self.count("adopted"),
            "resumed": self.count("resumed"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "items": [i.as_dict() for i in self.items],
        }


def read_sidecar(path: Path) -> Record | None:
    """The record in a sidecar file, or None when missing or not one of ours."""
    try:
        return decode_record(safefs.read_regular(path, safefs.JSON_MAX_BYTES))
    except (OSError, CasvaultError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def is_plain(path: Path) -> bool:
    """True for a file a program dropped into outputs/ that is not one of our own files.

    Ours are sidecars, temps (``.name.tmp``), thumbnails and ``<id>.<ext>``
    projections next to a sidecar of the same id.
    """
    name = path.name
    if name.startswith(".") or name.endswith((".tmp", ".json")) or path.parent.name == "thumb":
        return False
    stem, _, ext = name.rpartition(".")
    if is_id(stem) and ext in IMAGE_EXTS and read_sidecar(path.with_name(stem + ".json")) is not None:
        return False
    return True


def candidates(store: Store, owners: Iterable[str] | None = None) -> Iterator[Path]:
    """Plain regular files under ``outputs/users/<owner>/`` (every user when ``owners`` is None).

    Symlinks (to files or folders), FIFOs and devices are never listed:
    ``fsck`` reports them and sets them aside.
    """
    base = store.layout.outputs / "users"
    if owners is None:
        try:
            owners = sorted(e.name for e in os.scandir(base)
                            if e.is_dir(follow_symlinks=False) and is_user_id(e.name))
        except FileNotFoundError:
            return
    for owner in owners:
        for folder, dirnames, filenames, _foreign in safefs.walk(base / owner):
            dirnames[:] = [d for d in dirnames if d != "thumb"]
            for name in filenames:
                path = folder / name
                if (is_plain(path) and why_not_adoptable(path) is None) or _unlogged_in_place(store, owner, path):
                    yield path


def why_not_adoptable(path: Path) -> str | None:
    """Why a plain file can never be adopted (not a regular file, no image signature); None when it may be."""
    try:
        with safefs.open_regular(path) as (fh, _st):
            sniff(fh.read(16))
    except FileNotFoundError:
        return None
    except CasvaultError as exc:
        return exc.message
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None


def _unlogged_in_place(store: Store, owner: str, path: Path, under_lock: bool = False) -> bool:
    """True for a file already named and placed as its record's projection whose adoption stopped half-way.

    A plain ``<id>.png`` in its own day folder keeps its place when adopted,
    so after a crash past its sidecar it looks like one of ours; a missing
    thumbnail (written just before the manifest line) or a missing manifest
    line tells it apart. Finishing it again is harmless.
    """
    stem, _, ext = path.name.rpartition(".")
    if not is_id(stem) or ext not in IMAGE_EXTS:
        return False
    record = read_sidecar(path.with_name(stem + ".json"))
    if record is None or record.owner != owner or record.status != "active":
        return False
    _, _, thumb = store.layout.paths(record)
    # NOTE: under the owner's lock the manifest is read directly (see _logged).
    return (record.thumb is not None and not thumb.exists()) or not _logged(store, owner, stem, under_lock)


def ensure_projection(store: Store, record: Record, dest: Path) -> None:
    """Project the record's blob at ``dest`` unless ``dest`` already is the blob (same inode)."""
    # NOTE: rename() onto another link of the same inode succeeds without
    # doing anything, which would leave project_view's temp file behind.
    try:
        if os.path.samefile(dest, store.blobs.path(record.sha256)):
            return
    except OSError:
        pass
    store.project(record, dest)


def derived_id(owner: str, rel: str, sha256: str) -> str:
    """A stable record id for a plain file: the same file at the same place gives the same id."""
    h = hashlib.sha256(f"{owner}\0{rel}\0{sha256}".encode()).digest()
    return uuid.UUID(bytes=h[:16], version=4).hex


def _legacy(path: Path) -> tuple[Path | None, dict[str, Any]]:
    """The old app's JSON beside ``path`` (not one of our sidecars), parsed; {} when absent or bad."""
    old = path.with_suffix(".json")
    try:
        data = _dict_decoder.decode(safefs.read_regular(old, safefs.JSON_MAX_BYTES))
    except FileNotFoundError:
        return None, {}
    except UnsafeFile:
        return None, {}  # NOTE: not ours to read, move or delete; fsck reports it
    except (OSError, CasvaultError, msgspec.DecodeError, msgspec.ValidationError):
        return old, {}
    if read_sidecar(old) is not None:
        return None, {}
    return old, data


def _legacy_fields(kind: str, legacy: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The old JSON's fields that pass our checks, and the rest (kept in ``source``)."""
    fields: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in legacy.items():
        try:
            if key in ("prompt", "negative_prompt", "workflow_id", "aspect_ratio") and kind == "generated":
                limit = {"workflow_id": 200, "aspect_ratio": 20}.get(key, FIELD_MAX_LEN)
                fields[key] = check_text(None if value is None else str(value), key, limit)
            elif key == "seed" and kind == "generated":
                seed = None if value in (None, "") else int(value)
                if seed is not None and not -(2**63) <= seed < 2**64:
                    raise ValueError(seed)
                fields["seed"] = seed
            elif key == "tags":
                fields["tags"] = check_tags(value)
            elif key == "created_at":
                created = normalize_time(str(value))
                check_time(created)  # NOTE: else the record refuses it: the file's time is used
                fields["created_at"] = created
            elif key not in ("id", "owner", "sha256", "bytes", "mime", "status", "thumb", "kind"):
                rest[key] = value
        except (InvalidInput, ValueError, TypeError):
            rest[key] = value
    return fields, rest


def adopt_file(store: Store, path: Path, *, locked: bool = False) -> Adopted:
    """Adopt one plain file under ``outputs/users/<owner>/``; safe to call again after a crash.

    ``locked``: the caller already holds the owner's lock (fsck). Never
    raises for a bad file: the result says ``failed`` with the reason and
    the file is left where it was.
    """
    users_dir = store.layout.outputs / "users"
    try:
        rel = path.relative_to(users_dir)
    except ValueError:
        return Adopted(str(path), "failed", reason="not under outputs/users/")
    owner = rel.parts[0]
    if not is_user_id(owner) or len(rel.parts) < 2:
        return Adopted(str(path), "failed", reason="not inside a user's folder")
    kind = KIND_OF_DIR.get(rel.parts[1], "generated") if len(rel.parts) > 2 else "generated"
    try:
        safefs.check_inside(store.layout.root, path)
        if locked:
            return _adopt(store, path, owner, kind, rel.as_posix(), locked)
        with store.locks.user(owner):
            return _adopt(store, path, owner, kind, rel.as_posix(), locked)
    except FileNotFoundError:
        return Adopted(str(path), "failed", owner=owner, reason="the file disappeared")
    except CasvaultError as exc:
        return Adopted(str(path), "failed", owner=owner, reason=exc.message)
    except OSError as exc:
        return Adopted(str(path), "failed", owner=owner, reason=f"I/O error: {exc.strerror or exc}")


def _adopt(store: Store, path: Path, owner: str, kind: str, rel: str, locked: bool) -> Adopted:
    if not is_plain(path) and not _unlogged_in_place(store, owner, path, under_lock=True):
        return Adopted(str(path), "skipped", owner=owner, reason="already adopted")
    cfg = store.config
    with safefs.open_regular(path) as (fh, st):
        data = safefs.read_capped(fh, st, cfg.max_upload_bytes)
    mtime = st.st_mtime
    info = check_image(data, max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_pixels, keep=True,
                       fit=cfg.thumb_size)
    old_json, legacy = _legacy(path)
    fields, rest = _legacy_fields(kind, legacy)
    sha = digest(data)
    stem = path.stem
    rid = next((c for c in (legacy.get("id"), stem) if is_id(c)), None)
    if rid is None or _taken_elsewhere(store, rid, owner):
        rid = derived_id(owner, rel, sha)  # NOTE: stable, so a rerun after a crash finds the half-made record
    created = fields.pop("created_at", None) or adopted_time(store, rel, data, mtime)
    tags = fields.pop("tags", [])
    record = _build(store, data, info, kind, rid, owner, created, tags, fields, path.name, rel, rest)
    existing = _existing(store, record)
    if existing is not None and existing.sha256 != sha:
        # NOTE: the id is taken by a different image (an old app reusing a
        # name); the derived id includes the content, so it cannot clash.
        record = _build(store, data, info, kind, derived_id(owner, rel, sha), owner, created, tags, fields,
                        path.name, rel, rest)
        existing = _existing(store, record)
    status = "adopted"
    if existing is not None:
        record, status = existing, "resumed"
    store.blobs.put(data, sha)
    image, sidecar, thumb = store.layout.paths(record)
    if existing is None:
        safefs.make_dirs(store.layout.root, sidecar.parent)
        write_file(sidecar, encode_record(record), store.layout.tmp, fsync=cfg.fsync)
        faults.point("adopt.after_sidecar")
    ensure_projection(store, record, image)
    faults.point("adopt.after_projection")
    if record.thumb and not thumb.exists():
        safefs.make_dirs(store.layout.root, thumb.parent)
        assert info.image is not None
        write_file(thumb, thumbs.make_thumbnail(info.image, cfg.thumb_size, cfg.thumb_quality), store.layout.tmp,
                   fsync=cfg.fsync)
    if not _logged(store, owner, record.id, locked):
        event = AddEvent(at=now_iso(), record=record)
        if locked:
            store.manifest(owner).append(event)  # fsck rebuilds the manifest after adopting
        else:
            # NOTE: the store's own log path: it also keeps this process's index
            # and a PostgreSQL record index (when configured) current.
            store.log_events(owner, event)
    faults.point("adopt.after_manifest")
    safefs.check_inside(store.layout.root, path)  # NOTE: again: a folder may have been swapped meanwhile
    if path != image:
        remove(path)
    if old_json is not None and old_json != sidecar:
        remove(old_json)
    if cfg.fsync:
        fsync_dir(path.parent)
    return Adopted(str(path), status, id=record.id, owner=owner)


def _build(
    store: Store, data: bytes, info: Any, kind: str, rid: str, owner: str, created: str, tags: list[str],
    fields: dict[str, Any], filename: str, rel: str, rest: dict[str, Any],
) -> Record:
    source: dict[str, Any] = {}
    if kind == "generated":
        fields = {k: fields.get(k) for k in ("workflow_id", "aspect_ratio", "seed", "prompt", "negative_prompt")}
        if info.ext == "png":
            fields, comfy_source = _fill_from_comfy(data, fields)
            source.update(comfy_source or {})
    else:
        fields = {}
    source["adopted_from"] = rel
    if rest:
        source["legacy"] = rest
    legacy_path = f"users/{rel}" if not is_id(Path(rel).stem) else None
    return RECORD_TYPES[kind](
        id=rid,
        owner=owner,
        original_filename=filename,
        mime=info.mime,
        bytes=len(data),
        sha256=digest(data),
        created_at=created,
        status="active",
        thumb=f"thumb/{rid}.{thumbs.THUMB_EXT}",
        tags=tags,
        width=info.width,
        height=info.height,
        blake3=blake3_digest(data),
        source=source,
        legacy_path=legacy_path,
        **fields,
    )


def _path_day(rel: str) -> date | None:
    """The day a user-relative path names (``<owner>/[controls|inputs/]YYYY/MM/DD/<file>``), if it names one."""
    parts = rel.split("/")
    start = 2 if len(parts) > 1 and parts[1] in KIND_OF_DIR else 1
    ymd = parts[start : start + 3]
    if len(parts) != start + 4 or not all(p.isdigit() for p in ymd) or [len(p) for p in ymd] != [4, 2, 2]:
        return None
    try:
        return date(int(ymd[0]), int(ymd[1]), int(ymd[2]))
    except ValueError:
        return None


def _png_creation_time(data: bytes) -> datetime | None:
    """The PNG's ``Creation Time`` text chunk (RFC 1123 or ISO 8601), if it has a readable one."""
    text = comfy.read_png_text(data).get("Creation Time")
    if not text:
        return None
    for parse in (email.utils.parsedate_to_datetime, datetime.fromisoformat):
        try:
            found = parse(text.strip())
        except (TypeError, ValueError, IndexError):
            continue
        return found if found.tzinfo is not None else found.replace(tzinfo=timezone.utc)
    return None


def adopted_time(store: Store, rel: str, data: bytes, mtime: float) -> str:
    """``created_at`` of a plain file: the day of its path, else the PNG's creation time, else its mtime."""
    modified = datetime.fromtimestamp(mtime, timezone.utc)
    day = _path_day(rel)
    if day is not None:
        # NOTE: the path's day in the store's partition zone, at the time of
        # day of the mtime (so a file not copied since keeps its exact time).
        tz = store.layout.tz
        return normalize_time(datetime.combine(day, modified.astimezone(tz).time(), tzinfo=tz))
    return normalize_time(_png_creation_time(data) or modified)


def _logged(store: Store, owner: str, rid: str, locked: bool) -> bool:
    """True when the owner's manifest already holds the record."""
    if not locked:
        return store.index(owner).get(rid) is not None
    # NOTE: under the caller's lock (fsck) the index is not used: loading it
    # over a damaged manifest would rebuild it, which takes the lock again.
    try:
        events = store.manifest(owner).read().events
    except ManifestCorrupt:
        return False
    present = False
    for event in events:
        record = getattr(event, "record", None)
        if record is not None:
            if record.id == rid and record.owner == owner:
                present = True
        elif isinstance(event, (PurgeEvent, MoveEvent)) and event.id == rid:
            present = False
    return present


def _existing(store: Store, record: Record) -> Record | None:
    """A record with this id already written for the owner (either place), from its sidecar."""
    found = store.current_sidecar(record)
    return found[0] if found is not None else None


def _taken_elsewhere(store: Store, rid: str, owner: str) -> bool:
    """True when another user already holds a record with id ``rid``."""
    # NOTE: ids are unique store-wide (admin lookups, shares and merges rely
    # on it); an old app's id is only a suggestion. Each user's index is a
    # stat once loaded, far cheaper than reading every manifest per file.
    return any(store.index(other).get(rid) is not None for other in store.users() if other != owner)


def adopt_tree(store: Store, owners: Iterable[str] | None = None, *, progress: Progress | None = None) -> AdoptReport:
    """Adopt every plain file under outputs/users (or the given owners' folders)."""
    paths = list(candidates(store, owners))
    report = AdoptReport()
    items: Iterable[Path] = progress(paths, len(paths), "adopting") if progress else paths
    for path in items:
        report.items.append(adopt_file(store, path))
    return report
