"""The store: ingest, copy, trash, restore, purge and metadata over one root.

Write order (DESIGN.md 2): blob → sidecar → projection and thumbnail →
manifest line. The write is acknowledged only after the manifest line is
durable. Writes to one user's namespace hold that user's lock; blobs need
none (same content, same name; an existing blob wins).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, ContextManager, Iterator

import msgspec

from . import comfy, decoding, faults, media, metrics, quota, sidecars, thumbs
from .aspect import aspect_ratio
from .atomic import remove
from .backends import blob_spec, index_spec, open_blob_store
from .backends.records import open_records
from .blobs import StagedBlob, blake3_digest, digest
from .config import Config
from .errors import Conflict, InvalidInput, NotFound
from .index import Query, UserIndex
from .layout import FORMAT, Layout, normalize_time
from .locks import Locks
from .manifest import Manifest
from .records import (
    KINDS,
    RECORD_TYPES,
    AddEvent,
    ControlRecord,
    Event,
    GeneratedRecord,
    InputRecord,
    MetaEvent,
    PurgeEvent,
    Record,
    RestoreEvent,
    TrashEvent,
    evolve,
    now_iso,
)
from .shares import Shares
from .validate import (
    check_generated_fields,
    check_time,
    check_filename,
    check_image,
    check_tags,
    check_user_id,
    is_id,
)
from .views import detect_mode
from .writer import Writer

_meta_decoder = msgspec.json.Decoder(dict)
log = logging.getLogger("casvault.store")


@dataclass
class IngestResult:
    """What an ingest made: the record, whether the blob was new, and trashed twins."""

    record: Record
    new_blob: bool
    in_trash: list[str] = field(default_factory=list)


class Store:
    """One casvault root on the local filesystem."""

    def __init__(self, config: Config, *, create: bool = True) -> None:
        self.config = config
        root = Path(config.root)
        if not create and not (root / "casvault.json").is_file():
            raise NotFound(
                f"no casvault store at {root} (casvault.json missing): run `casvault init` to create one, "
                "or `casvault restore BACKUP`",
                root=str(root),
            )
        meta = self._open_meta(root, config, create)
        self.format = meta["format"]
        self.link_mode = meta["link_mode"]
        self.layout = Layout(root, meta.get("partition_tz", "UTC"))
        self.blobs = open_blob_store(blob_spec(config, meta), root, self.layout.tmp, fsync=config.fsync)
        self.locks = Locks(self.layout.locks)
        # NOTE: with the PostgreSQL index, get/list/usage/facets read from it;
        # writes still go to sidecars and manifests and are applied to it under
        # the user's lock (casvault.backends.records).
        self.records = open_records(index_spec(config, meta), self.layout, self.locks, self.blobs, fsync=config.fsync)
        self.shares = Shares(self.layout.meta, self.layout.tmp, self.locks, self.get, fsync=config.fsync)
        self.limits = quota.Limits(config.quota_max_bytes, config.quota_max_count)
        self.quota = quota.Policy(self.limits, quota.Limits(config.member_quota_max_bytes, config.member_quota_max_count))
        self.thumbnailer = thumbs.Thumbnailer(config.thumb_size, config.thumb_quality)
        self.writer = Writer(self.layout, self.blobs, self.records.append, link_setting=config.link_mode, fsync=config.fsync)
        decoding.configure(config.decode_budget_pixels)

    # --- opening ------------------------------------------------------------

    @classmethod
    def init(cls, config: Config, *, partition_tz: str | None = None,
             link_mode: str | None = None) -> tuple["Store", bool]:
        """Create the store at ``config.root`` with these settings, or open it if it exists: (store, created).

        Raises Conflict when an existing store was created with another
        partition time zone or link mode (both are fixed at creation).
        """
        root = Path(config.root)
        if (root / "casvault.json").is_file():
            meta = _meta_decoder.decode((root / "casvault.json").read_bytes())
            tz = meta.get("partition_tz", "UTC")
            if partition_tz is not None and partition_tz != tz:
                raise Conflict(f"the store at {root} has partition time zone {tz}, not {partition_tz} "
                               "(fixed when the store was created)", root=str(root))
            modes = {meta.get("link_setting"), meta.get("link_mode")}
            if link_mode is not None and link_mode not in modes:
                raise Conflict(f"the store at {root} has link mode {meta.get('link_setting') or meta.get('link_mode')}, "
                               f"not {link_mode} (fixed when the store was created)", root=str(root))
            return cls(config, create=False), False
        settings = {"partition_tz": partition_tz, "link_mode": link_mode}
        config = config.with_(**{k: v for k, v in settings.items() if v is not None})
        config.check()
        return cls(config, create=True), True

    @staticmethod
    def _open_meta(root: Path, config: Config, create: bool) -> dict[str, Any]:
        path = root / "casvault.json"
        try:
            return _meta_decoder.decode(path.read_bytes())
        except FileNotFoundError:
            if not create:
                raise
        for sub in ("blobs/sha256", "outputs/users", "trash/users", "meta/users", "tmp", "locks/users"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        mode = detect_mode(root / "blobs", root / "outputs", config.link_mode)
        meta = {
            "format": FORMAT,
            "link_mode": config.link_mode if config.link_mode != "auto" else mode,
            "link_setting": config.link_mode,
            "partition_tz": config.partition_tz,
            "created_at": now_iso(),
        }
        tmp = root / "tmp" / f"casvault.json.{uuid.uuid4().hex}"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(meta)) + b"\n")
        try:
            os.link(tmp, path)  # NOTE: first creator wins; a racing worker reads its file
        except FileExistsError:
            pass
        finally:
            remove(tmp)
        return _meta_decoder.decode(path.read_bytes())

    # --- indexes ------------------------------------------------------------

    # --- locks --------------------------------------------------------------

    @contextmanager
    def user_lock(self, *owners: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold the write locks of ``owners``, taken in sorted order (re-entrant within a thread)."""
        with ExitStack() as stack:
            for owner in sorted(set(owners)):
                stack.enter_context(self.locks.user(owner, timeout))
            yield

    def job_lock(self, name: str, *, wait: bool = False, timeout: float = 0.0) -> ContextManager[None]:
        """Hold a named job lock; by default fail at once (Busy) if another run has it."""
        return self.locks.job(name, wait, timeout)

    # --- the records' files (files tools: fsck, gc, merge, adopt, backup, migrate) ----------

    def index(self, owner: str) -> UserIndex:
        """The current manifest index of ``owner`` (see :class:`FileRecords`)."""
        return self.records.index(owner)

    def manifest(self, owner: str) -> Manifest:
        """The manifest of ``owner``."""
        return self.records.manifest(owner)

    def users(self) -> list[str]:
        """Every user with a manifest or a folder in outputs/ or trash/."""
        return self.records.users()

    def log_events(self, owner: str, *events: Event, undo: Callable[[], object] | None = None) -> None:
        """Append events to ``owner``'s log; call under ``owner``'s lock (see :meth:`FileRecords.append`)."""
        self.records.append(owner, *events, undo=undo)

    def rebuild_manifest(self, owner: str) -> int:
        """Rewrite ``owner``'s manifest from the sidecars; returns the number of records."""
        return self.records.rebuild_manifest(owner)

    def scan_sidecars(self, owner: str) -> Iterator[tuple[Path, Record | None]]:
        """Every sidecar of ``owner``, parsed (None if unreadable)."""
        return self.records.scan_sidecars(owner)

    def current_sidecar(self, record: Record) -> tuple[Record, Path] | None:
        """The record as its sidecar says now and that sidecar's path, or None."""
        return self.records.current_sidecar(record)

    def remove_files(self, record: Record, *, point: str | None = "purge.after_sidecar") -> None:
        """Remove a record's sidecar, projection and thumbnail (either place)."""
        self.records.remove_files(record, point=point)

    # --- reads --------------------------------------------------------------

    def get(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """The record ``rid`` of ``owner``; raises NotFound (also for another kind)."""
        if not is_id(rid):
            raise NotFound("no such image", id=str(rid)[:64])
        record = self.records.get(owner, rid)
        if record is None or (kind is not None and record.kind != kind):
            raise NotFound("no such image", id=rid)
        return record

    def find(self, rid: str) -> Record:
        """A record by id across all users (admin); raises NotFound."""
        if not is_id(rid):
            raise NotFound("no such image", id=str(rid)[:64])
        record = self.records.find(rid)
        if record is None:
            raise NotFound("no such image", id=rid)
        return record

    def list(self, owner: str, query: Query):
        """One page of ``owner``'s records (see :class:`Query`)."""
        return self.records.query(owner, query)

    def facets(self, owner: str, query: Query, fields: tuple[str, ...], prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """The top values, with counts, of facet ``fields`` among ``owner``'s records matching ``query``."""
        return self.records.facets(owner, query, fields, prefix, limit)

    def newest(self, kind: str | None = None, include: str = "active") -> Iterator[Record]:
        """Every user's records of ``kind`` (None: all kinds), newest first: a k-way merge of the sorted indexes."""
        return self.records.newest(kind, include)

    def logged(self, owner: str, rid: str) -> Record | None:
        """``rid`` as ``owner``'s log has it now (the manifest index, also with PostgreSQL), or None."""
        return self.records.get_logged(owner, rid)

    def all_records(self, owner: str) -> list[Record]:
        """Every record of ``owner``, any kind and status."""
        return self.records.all(owner)

    def user_summary(self, owner: str) -> dict[str, Any]:
        """``owner``'s usage, counts by kind and status, and last activity."""
        return self.records.summary(owner)

    def usage(self, owner: str) -> quota.Usage:
        """What ``owner`` holds now."""
        return self.records.usage(owner)

    def day_bounds(self, from_date: str | None, to_date: str | None) -> tuple[str | None, str | None]:
        """UTC bounds for an inclusive YYYY-MM-DD range in the partition time zone.

        Raises InvalidInput for a malformed date.
        """
        def bound(day: str, days_after: int) -> str:
            try:
                d = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=self.layout.tz)
                return normalize_time(d + timedelta(days=days_after))
            except (ValueError, TypeError, OverflowError):
                raise InvalidInput("dates must be YYYY-MM-DD between the years 1 and 9999", field="date") from None

        lo = bound(from_date, 0) if from_date else None
        hi = bound(to_date, 1) if to_date else None
        return lo, hi

    def read_original(self, record: Record) -> bytes:
        """The original bytes of a record (from its blob)."""
        return self.blobs.read(record.sha256)

    def original_url(
        self, record: Record, expires: int = 3600, filename: str | None = None, download: bool = False
    ) -> str | None:
        """A presigned URL of the original when blobs live in S3; None for local blobs."""
        return self.blobs.presigned_url(
            record.sha256,
            expires=expires,
            filename=filename or f"{record.id}.{record.ext}",
            content_type=record.mime,
            attachment=download,
        )

    # --- ingest -------------------------------------------------------------

    def find_duplicate(self, owner: str, sha256: str, original_filename: str | None, kind: str) -> str | None:
        """The id of ``owner``'s oldest record (any status) of the same bytes, file name and kind, or None.

        The one rerun-safety rule of ``casvault ingest``, comfy-sync and
        ``if_exists=skip``: the same bytes as another kind (a control of a
        generated image) are not a duplicate.
        """
        same = [r for r in self.with_digest(owner, sha256) if r.original_filename == original_filename and r.kind == kind]
        # NOTE: the oldest one, so every retry answers with the same record.
        return same[0].id if same else None

    def with_digest(self, owner: str, sha256: str) -> list[Record]:
        """``owner``'s records (any kind and status) of the blob ``sha256``, oldest first."""
        return self.records.with_digest(owner, sha256)

    def ingest(
        self,
        data: bytes,
        owner: str,
        kind: str = "generated",
        *,
        original_filename: str | None = None,
        created_at: str | datetime | None = None,
        workflow_id: str | None = None,
        aspect_ratio: str | None = None,
        seed: int | str | None = None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        tags: list[str] | str | None = None,
        source: dict[str, Any] | None = None,
        make_thumb: bool = True,
        keep_folder: bool = False,
    ) -> IngestResult:
        """Validate and store an image for ``owner``; returns the new record.

        Raises InvalidInput, NotAnImage, TooLarge, QuotaExceeded,
        StorageFull, StorageError. On error nothing is left visible.
        """
        owner = check_user_id(owner)
        if kind not in KINDS:
            raise InvalidInput("kind must be generated, control or input", field="kind")
        fields = check_generated_fields(
            kind,
            original_filename=check_filename(original_filename, keep_folder),
            workflow_id=workflow_id,
            aspect_ratio=aspect_ratio,
            seed=seed,
            prompt=prompt,
            negative_prompt=negative_prompt,
        )
        try:
            created = normalize_time(created_at)
            check_time(created)  # NOTE: the record's own rule: a time every partition zone can show
        except (ValueError, TypeError):
            raise InvalidInput("created_at must be an ISO 8601 time between the years 1 and 9999",
                               field="created_at") from None
        staged = None
        if self.blobs.local and 0 < len(data) <= self.config.max_upload_bytes:
            # NOTE: the original is hashed and written to a durable temp file in
            # the background while it is validated here (bench ingest.vs_floor);
            # it is published under the user's lock, or dropped on any error.
            staged = self.blobs.stage(data)  # type: ignore[attr-defined]
        try:
            result = self._ingest(data, owner, kind, fields, created, tags, source, make_thumb, staged)
        finally:
            if staged is not None:
                staged.discard()
        metrics.ingested(kind, len(data), result.new_blob)
        return result

    def _ingest(
        self,
        data: bytes,
        owner: str,
        kind: str,
        fields: dict[str, Any],
        created: str,
        tags: list[str] | str | None,
        source: dict[str, Any] | None,
        make_thumb: bool,
        staged: StagedBlob | None,
    ) -> IngestResult:
        # NOTE: MP4 and WebM are stored as generated records only (ComfyUI's video outputs).
        video = media.sniff_video(data) if kind == "generated" else None
        info: Any
        if video is not None:
            info = media.check_video(data, max_bytes=self.config.max_video_bytes, max_pixels=self.config.max_pixels)
        else:
            info = check_image(
                data,
                max_bytes=self.config.max_upload_bytes,
                max_pixels=self.config.max_pixels,
                keep=make_thumb,
                decode=make_thumb,
                fit=self.config.thumb_size,
            )
        if kind == "generated" and info.ext in ("png", "webp", "mp4", "webm") and source is None:
            fields, source = comfy.fill_fields(data, fields)
        anim = info.animation if video is not None else media.animation(data, info.ext.upper())
        if kind == "generated" and fields["aspect_ratio"] is None:
            fields = {**fields, "aspect_ratio": aspect_ratio(info.width, info.height)}
        sha = staged.sha256 if staged is not None else digest(data)
        b3 = staged.blake3() if staged is not None else blake3_digest(data)
        rid = uuid.uuid4().hex
        thumb_bytes = None
        if make_thumb:
            assert info.image is not None
            thumb_bytes = self.thumbnailer.make(info.image)
        common = dict(
            id=rid,
            owner=owner,
            mime=info.mime,
            bytes=len(data),
            sha256=sha,
            created_at=created,
            status="active",
            thumb=thumbs.thumb_rel(rid) if make_thumb else None,
            tags=check_tags(tags),
            width=info.width,
            height=info.height,
            blake3=b3,
            source=source,
            frames=anim.frames if anim else None,
            duration_ms=anim.duration_ms if anim else None,
            color=thumbs.dominant_color(thumb_bytes) if thumb_bytes is not None else None,
        )
        record: Record = RECORD_TYPES[kind](**common, **fields)
        files = self.writer.stage(record, thumb_bytes)
        try:
            with self.locks.user(owner):
                self.records.check_quota(owner, self.quota.limits_for(owner), len(data))
                in_trash = sorted(r.id for r in self.with_digest(owner, sha) if r.status == "trash")
                new_blob = self.writer.write(record, AddEvent(at=now_iso(), record=record), point="ingest", files=files,
                                             blob=staged if staged is not None else data)
                faults.point("ingest.after_manifest")
        finally:
            for tmp in files:
                if tmp is not None:
                    remove(tmp)  # NOTE: a no-op for the published ones
        return IngestResult(record, new_blob, in_trash)

    def project(self, record: Record, dest: Path, *, fsync: bool | None = None) -> str:
        """Place the projection of a record's blob at ``dest``; returns the link mode used (see :class:`Writer`)."""
        return self.writer.project(record, dest, fsync=fsync)

    def copy_as_input(self, owner: str, source_id: str, kind: str = "input") -> Record:
        """A new input (or control) record on the blob of one of ``owner``'s images.

        No image bytes are copied. Raises NotFound, Conflict (source in the
        trash), QuotaExceeded.
        """
        if kind not in ("input", "control"):
            raise InvalidInput("kind must be input or control", field="kind")
        with self.locks.user(owner):
            src = self.get(owner, source_id)
            if src.status != "active":
                raise Conflict("the source image is in the trash", id=source_id)
            self.records.check_quota(owner, self.quota.limits_for(owner), src.bytes)
            rid = uuid.uuid4().hex
            record = RECORD_TYPES[kind](
                id=rid,
                owner=owner,
                original_filename=src.original_filename or f"{src.id}.{src.ext}",
                mime=src.mime,
                bytes=src.bytes,
                sha256=src.sha256,
                created_at=normalize_time(None),
                status="active",
                thumb=thumbs.thumb_rel(rid),
                tags=[],
                width=src.width,
                height=src.height,
                blake3=src.blake3,
                source={"copied_from": src.id, "kind": src.kind},
            )
            try:
                thumb_bytes = self.layout.thumb_path(src).read_bytes()
            except OSError:
                thumb_bytes = self.thumbnailer.make(self.blobs.read(src.sha256))
            if not self.blobs.has(src.sha256):
                raise NotFound("the source image's original is missing", id=source_id)
            self.writer.write(record, AddEvent(at=now_iso(), record=record), point="copy", thumb=thumb_bytes)
        return record

    def place_record(self, record: Record, thumb_bytes: bytes | None, *, point: str) -> None:
        """Write a checked record whose blob is stored: sidecar, projection, thumbnail, then its manifest line.

        Call under the owner's lock (restore). On any failure the files
        already written are taken back and the error is raised: nothing
        half-written stays.
        """
        self.writer.write(record, AddEvent(at=now_iso(), record=record), point=point, thumb=thumb_bytes)

    # --- trash, restore, purge, metadata -------------------------------------

    def trash(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """Move a record to the trash; raises NotFound, Conflict (already there)."""
        with self.locks.user(owner):
            record = self.get(owner, rid, kind)
            if record.status == "trash":
                raise Conflict("the image is already in the trash", id=rid)
            at = now_iso()
            new = evolve(record, status="trash", trashed_at=at)
            self.writer.move(record, new, TrashEvent(at=at, id=rid), point="trash")
        return new

    def restore(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """Bring a record back from the trash; raises NotFound, Conflict (not trashed)."""
        with self.locks.user(owner):
            record = self.get(owner, rid, kind)
            if record.status != "trash":
                raise Conflict("the image is not in the trash", id=rid)
            new = evolve(record, status="active")  # NOTE: trashed_at stays: the last trashing (share links)
            self.writer.move(record, new, RestoreEvent(at=now_iso(), id=rid), point="restore")
        return new

    def purge(self, owner: str, rid: str) -> int:
        """Delete a trashed record for good; returns its logical bytes.

        The blob stays until ``gc``. Raises NotFound, Conflict (not trashed).
        """
        with self.locks.user(owner):
            record = self.get(owner, rid)
            if record.status != "trash":
                raise Conflict("only images in the trash can be deleted for good", id=rid)
            self.records.append(owner, PurgeEvent(at=now_iso(), id=rid))
            faults.point("purge.after_manifest")
            self.records.remove_files(record)
        return record.bytes

    def update_meta(
        self,
        owner: str,
        rid: str,
        *,
        tags: Any = None,
        favorite: Any = None,
        add_tags: Any = None,
        remove_tags: Any = None,
        kind: str | None = None,
    ) -> Record:
        """Set tags (or add/remove some) and/or favorite; raises NotFound, InvalidInput.

        ``add_tags``/``remove_tags`` are applied to the tags current under
        the user's lock, so concurrent edits of one image are never lost.
        """
        changes: dict[str, Any] = {}
        if tags is not None:
            changes["tags"] = check_tags(tags)
        adding, removing = check_tags(add_tags), check_tags(remove_tags)
        if favorite is not None:
            if not isinstance(favorite, bool):
                raise InvalidInput("favorite must be true or false", field="favorite")
            changes["favorite"] = favorite
        with self.locks.user(owner):
            record = self.get(owner, rid, kind)
            if adding or removing:
                base = changes.get("tags", record.tags)
                changes["tags"] = check_tags([t for t in base + adding if t not in removing])
            if not changes:
                return record
            new = evolve(record, **changes)
            sidecars.write_sidecar(self.layout, new, fsync=self.config.fsync, point="sidecar.write")
            faults.point("meta.after_sidecar")
            self.records.append(
                owner,
                MetaEvent(at=now_iso(), id=rid, tags=changes.get("tags"), favorite=changes.get("favorite")),
                undo=lambda: sidecars.write_sidecar(self.layout, record, fsync=self.config.fsync),
            )
        return new

    # --- rebuilding from sidecars --------------------------------------------


def open_store(config: Config | None = None, **overrides: Any) -> Store:
    """A Store for ``config`` (default: from the environment)."""
    config = config or Config.from_env(**overrides)
    return Store(config)


__all__ = ["Store", "IngestResult", "open_store", "Query", "ControlRecord", "GeneratedRecord", "InputRecord"]
