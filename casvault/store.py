"""The store: ingest, copy, trash, restore, purge and metadata over one root.

Write order (DESIGN.md 2): blob → sidecar → projection and thumbnail →
manifest line. The write is acknowledged only after the manifest line is
durable. Writes to one user's namespace hold that user's lock; blobs need
none (same content, same name; an existing blob wins).
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec

from . import comfy, decoding, faults, media, metrics, quota, safefs, thumbs, trash
from .aspect import aspect_ratio
from .atomic import fsync_dir, publish, remove, storage_error, write_file, write_tmp
from .backends import blob_spec, index_spec, open_blob_store, open_record_index
from .blobs import FileBlobStore, StagedBlob, background, blake3_digest, digest
from .config import Config
from .errors import CasvaultError, Conflict, InvalidInput, NotFound
from .index import Query, UserIndex
from .layout import FORMAT, Layout, normalize_time
from .locks import Locks
from .manifest import Manifest, replay
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
    check_time,
    decode_record,
    encode_record,
    evolve,
    now_iso,
)
from .shares import Shares
from .validate import (
    FIELD_MAX_LEN,
    check_filename,
    check_image,
    check_tags,
    check_text,
    check_user_id,
    is_id,
    is_user_id,
)
from .views import detect_mode, project_view

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
        # NOTE: with the PostgreSQL index, get/list/usage read from it; writes
        # still go to sidecars and manifests and are applied to it under the
        # user's lock (see _log). None means the manifest index.
        self.record_index = open_record_index(index_spec(config, meta))
        self.locks = Locks(self.layout.locks)
        self.shares = Shares(self.layout.meta, self.layout.tmp, self.locks, self.get, fsync=config.fsync)
        self._indexes: dict[str, UserIndex] = {}
        self._mutex = threading.Lock()
        self._recent: tuple[tuple, list[Record]] | None = None
        self.limits = quota.Limits(config.quota_max_bytes, config.quota_max_count)
        self.quota = quota.Policy(self.limits, quota.Limits(config.member_quota_max_bytes, config.member_quota_max_count))
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

    def index(self, owner: str) -> UserIndex:
        """The current index of ``owner`` (refreshed from the manifest tail)."""
        return self._user_index(owner).refresh()

    def _user_index(self, owner: str) -> UserIndex:
        """The index object of ``owner``, loaded or not."""
        check_user_id(owner)
        idx = self._indexes.get(owner)
        if idx is None:
            with self._mutex:
                idx = self._indexes.get(owner)
                if idx is None:
                    idx = UserIndex(owner, self.manifest(owner), rebuild=lambda missing=False: self._rebuild_for_index(owner, missing),
                                    snapshot_tmp=self.layout.tmp)
                    self._indexes[owner] = idx
        return idx

    def _cold_list(self, owner: str, query: Query):
        """A plain first page from the listing snapshot while the index loads in the background (None: no)."""
        idx = self._user_index(owner)
        page = idx.cold_page(query, lambda kind, created, rid, trashed: self.layout.sidecar_at(owner, kind, created, rid, trashed))
        if page is not None and not idx.loading:
            idx.loading = True
            threading.Thread(target=self._load_index, args=(owner,), name=f"index-{owner}", daemon=True).start()
        return page

    def _load_index(self, owner: str) -> None:
        try:
            self.index(owner)
        except Exception as exc:  # NOTE: a warm-up: the next request loads (and raises) in its own right
            log.warning("loading the index of %s in the background failed: %s", owner, exc)
        finally:
            self._user_index(owner).loading = False

    def _rebuild_for_index(self, owner: str, missing: bool) -> bool:
        """Rewrite a damaged manifest, or a missing one when the user has files; True if written."""
        if missing and not any(self.layout.user_base(owner, t).is_dir() for t in (False, True)):
            return False
        with self.locks.user(owner):
            if missing and self.layout.manifest_path(owner).exists():
                return True  # another process rebuilt it meanwhile
            self.rebuild_manifest(owner)
        return True

    def manifest(self, owner: str) -> Manifest:
        """The manifest of ``owner``."""
        return Manifest(self.layout.manifest_path(owner), fsync=self.config.fsync)

    def users(self) -> list[str]:
        """Every user with a manifest or a folder in outputs/ or trash/."""
        found: set[str] = set()
        for base in (self.layout.meta / "users", self.layout.outputs / "users", self.layout.trash / "users"):
            try:
                # NOTE: a symlinked user folder is not a user: fsck sets it aside.
                found.update(e.name for e in os.scandir(base)
                             if e.is_dir(follow_symlinks=False) and is_user_id(e.name))
            except FileNotFoundError:
                pass
        return sorted(found)

    # --- reads --------------------------------------------------------------

    def get(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """The record ``rid`` of ``owner``; raises NotFound (also for another kind)."""
        if not is_id(rid):
            raise NotFound("no such image", id=str(rid)[:64])
        if self.record_index is not None:
            record = self.record_index.get(check_user_id(owner), rid)
        else:
            record = self.index(owner).get(rid)
        if record is None or (kind is not None and record.kind != kind):
            raise NotFound("no such image", id=rid)
        return record

    def find(self, rid: str) -> Record:
        """A record by id across all users (admin); raises NotFound."""
        if not is_id(rid):
            raise NotFound("no such image", id=str(rid)[:64])
        for owner in self.users():
            record = self.index(owner).get(rid)
            if record is not None:
                return record
        raise NotFound("no such image", id=rid)

    def list(self, owner: str, query: Query):
        """One page of ``owner``'s records (see :class:`Query`)."""
        if self.record_index is not None:
            return self.record_index.query(check_user_id(owner), query)
        # NOTE: a process's first look at a user answers a plain page from the
        # snapshot, at a cost independent of the library's size (casvault.snapshot).
        page = self._cold_list(owner, query)
        return page if page is not None else self.index(owner).query(query)

    def facets(self, owner: str, query: Query, fields: tuple[str, ...], prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """The top values, with counts, of facet ``fields`` among ``owner``'s records matching ``query``."""
        if self.record_index is not None:
            return self.record_index.facets(check_user_id(owner), query, fields, prefix, limit)
        return self.index(owner).facets(query, fields, prefix, limit)

    def recent(self, n: int | None = None, include: str = "active") -> list[Record]:
        """The ``n`` most recent records store-wide, all kinds (default CASVAULT_RECENT_N).

        Kept as a ring per process: recomputed (a k-way merge of the users'
        sorted indexes) only when some manifest changed since the last call.
        """
        n = self.config.recent_n if n is None else n
        indexes = [self.index(owner) for owner in self.users()]
        signature = (n, include, tuple((i.owner, i.manifest_offset) for i in indexes))
        cached = self._recent
        if cached is not None and cached[0] == signature:
            return cached[1]
        streams = [i.iter_desc(kind, include) for i in indexes for kind in KINDS]
        ring = list(islice(heapq.merge(*streams, key=lambda r: (r.created_at, r.id), reverse=True), n))
        self._recent = (signature, ring)
        return ring

    def usage(self, owner: str) -> quota.Usage:
        """What ``owner`` holds now."""
        if self.record_index is not None:
            return self.record_index.usage(check_user_id(owner))
        return self.index(owner).usage()

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
        presign = getattr(self.blobs, "presigned_url", None)
        if presign is None:
            return None
        return presign(
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
        idx = self.index(owner)
        same = [
            record
            for record in (idx.records.get(rid) for rid in idx.by_sha.get(sha256, ()))
            if record is not None and record.original_filename == original_filename and record.kind == kind
        ]
        # NOTE: the oldest one, so every retry answers with the same record.
        return min(same, key=lambda r: (r.created_at, r.id)).id if same else None

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
        fields = self._check_fields(
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
        if isinstance(self.blobs, FileBlobStore) and 0 < len(data) <= self.config.max_upload_bytes:
            # NOTE: the original is hashed and written to a durable temp file in
            # the background while it is validated here (bench ingest.vs_floor);
            # it is published under the user's lock, or dropped on any error.
            staged = self.blobs.stage(data)
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
            fields, source = _fill_from_comfy(data, fields)
        anim = info.animation if video is not None else media.animation(data, info.ext.upper())
        if kind == "generated" and fields["aspect_ratio"] is None:
            fields = {**fields, "aspect_ratio": aspect_ratio(info.width, info.height)}
        sha = staged.sha256 if staged is not None else digest(data)
        b3 = staged.blake3() if staged is not None else blake3_digest(data)
        rid = uuid.uuid4().hex
        thumb_rel = f"thumb/{rid}.{thumbs.THUMB_EXT}"
        thumb_bytes = None
        if make_thumb:
            assert info.image is not None
            thumb_bytes = thumbs.make_thumbnail(info.image, self.config.thumb_size, self.config.thumb_quality)
        common = dict(
            id=rid,
            owner=owner,
            mime=info.mime,
            bytes=len(data),
            sha256=sha,
            created_at=created,
            status="active",
            thumb=thumb_rel if make_thumb else None,
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
        files = self._stage_files(record, thumb_bytes)
        try:
            with self.locks.user(owner):
                idx = self.index(owner)
                quota.check(idx.usage(), self.quota.limits_for(owner), len(data))
                in_trash = sorted(i for i in idx.by_sha.get(sha, ()) if idx.records[i].status == "trash")
                faults.point("ingest.before_blob")
                new_blob = staged.publish() if staged is not None else self.blobs.put(data, sha)
                faults.point("ingest.after_blob")
                blob_dir = self.blobs.path(sha).parent if staged is not None and new_blob else None
                self._materialize_or_discard(record, files, "ingest.before_manifest", blob_dir=blob_dir)
                self.log_events(owner, AddEvent(at=now_iso(), record=record), undo=lambda: self._discard(record))
                faults.point("ingest.after_manifest")
        finally:
            for tmp in files:
                if tmp is not None:
                    remove(tmp)  # NOTE: a no-op for the published ones
        return IngestResult(record, new_blob, in_trash)

    def _check_fields(self, kind: str, **raw: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"original_filename": raw["original_filename"]}
        if kind != "generated":
            return fields
        seed = raw["seed"]
        if isinstance(seed, str):
            seed = seed.strip()
            if seed == "":
                seed = None
            else:
                try:
                    seed = int(seed)
                except ValueError:
                    raise InvalidInput("seed must be an integer", field="seed") from None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64):
            raise InvalidInput("seed must be a 64-bit integer", field="seed")
        fields["seed"] = seed
        fields["workflow_id"] = check_text(raw["workflow_id"], "workflow_id", 200) or None
        fields["aspect_ratio"] = check_text(raw["aspect_ratio"], "aspect_ratio", 20) or None
        fields["prompt"] = check_text(raw["prompt"], "prompt")
        fields["negative_prompt"] = check_text(raw["negative_prompt"], "negative_prompt")
        return fields

    def _stage_files(self, record: Record, thumb_bytes: bytes | None) -> tuple[Path, Path | None]:
        """Durable temp files of a record's sidecar and thumbnail, written side by side."""
        fsync = self.config.fsync
        job = None
        if thumb_bytes is not None:
            job = background().submit(write_tmp, self.layout.tmp, thumb_bytes, fsync=fsync, point="thumb.write")
        sidecar = None
        try:
            sidecar = write_tmp(self.layout.tmp, encode_record(record), fsync=fsync, point="sidecar.write")
            return sidecar, job.result() if job is not None else None
        except BaseException:
            if sidecar is not None:
                remove(sidecar)
            if job is not None and job.exception() is None:
                remove(job.result())
            raise

    def _materialize(
        self,
        record: Record,
        files: tuple[Path, Path | None],
        blob_dir: Path | None = None,
    ) -> None:
        """Sidecar, then projection and thumbnail, in the record's folder, from durable temp files.

        The renames keep the write order; the folders (and ``blob_dir``, where
        a new blob was just renamed in) are fsynced once, after all of them.
        """
        image, sidecar, thumb = self.layout.paths(record)
        side_tmp, thumb_tmp = files
        try:
            safefs.make_dirs(self.layout.root, sidecar.parent)
        except OSError as exc:
            raise storage_error(exc, "creating a day folder") from exc
        publish(side_tmp, sidecar, fsync=False)
        faults.point("ingest.after_sidecar")
        self.project(record, image, fsync=False)
        faults.point("ingest.after_projection")
        folders = [blob_dir, sidecar.parent]
        if thumb_tmp is not None:
            try:
                safefs.make_dirs(self.layout.root, thumb.parent)
            except OSError as exc:
                raise storage_error(exc, "creating a thumb folder") from exc
            publish(thumb_tmp, thumb, fsync=False)
            faults.point("ingest.after_thumb")
            folders.append(thumb.parent)
        if self.config.fsync:
            # NOTE: every file was fsynced before its rename; one fsync per
            # folder after all the renames makes them durable before the
            # manifest line that acknowledges (on ext4 the first one commits
            # the journal for all). A power loss before it may keep a sidecar
            # and not its blob's name: fsck takes the bytes back from the
            # projection, and the write was never acknowledged.
            try:
                for folder in folders:
                    if folder is not None:
                        fsync_dir(folder)
            except OSError as exc:
                raise storage_error(exc, "syncing a folder") from exc

    def _materialize_or_discard(
        self, record: Record, files: tuple[Path, Path | None] | bytes | None, point: str, blob_dir: Path | None = None
    ) -> None:
        """:meth:`_materialize` (from staged files or thumbnail bytes); on failure the half-made files are taken away."""
        staged = files if isinstance(files, tuple) else self._stage_files(record, files)
        try:
            self._materialize(record, staged, blob_dir)
            faults.point(point)
        except Exception:
            self._discard(record)
            raise
        finally:
            if staged is not files:
                for tmp in staged:
                    if tmp is not None:
                        remove(tmp)  # NOTE: a no-op for the published ones

    def _discard(self, record: Record) -> None:
        """Remove the files of a record that was never acknowledged, sidecar first; best effort."""
        # NOTE: sidecar first: a projection left without one is removed by
        # fsck, while a sidecar left without its projection would be adopted.
        image, sidecar, thumb = self.layout.paths(record)
        try:
            safefs.check_inside(self.layout.root, thumb)
        except CasvaultError:
            return  # NOTE: a folder on the way is a symlink: nothing of ours was written through it
        for path in (sidecar, image, thumb):
            try:
                remove(path)
            except OSError:
                pass

    def project(self, record: Record, dest: Path, *, fsync: bool | None = None) -> str:
        """Place the projection of a record's blob at ``dest``; returns the link mode used.

        ``fsync=False`` leaves the folder's fsync to the caller.
        """
        if not isinstance(self.blobs, FileBlobStore):
            # NOTE: remote blobs have no local file to link to; the original is
            # served by a presigned redirect (original_url), the thumbnail stays local.
            return "remote"
        return project_view(
            self.blobs.path(record.sha256),
            dest,
            setting=self.config.link_mode,
            fsync=self.config.fsync if fsync is None else fsync,
            refresh_inode=lambda: self.blobs.refresh_inode(record.sha256),
        )

    def log_events(self, owner: str, *events: Event, undo: Callable[[], object] | None = None) -> None:
        """Append events to the manifest and this process's indexes; call under ``owner``'s lock.

        When the append fails nothing was acknowledged: ``undo`` takes back
        the files the write already changed, then the error is raised.
        """
        try:
            self.manifest(owner).append(*events)
        except Exception:
            if undo is not None:
                try:
                    undo()
                except (CasvaultError, OSError):
                    pass  # NOTE: what the undo could not take back, fsck --repair settles from the sidecar
            raise
        self.index(owner).apply_local()
        self.sync_record_index(owner)

    def sync_record_index(self, owner: str) -> None:
        """Bring the PostgreSQL index up to ``owner``'s manifest (no-op without one).

        The manifest is the durable log, so a failure here is logged, not
        raised: the write is already acknowledged, and the next sync catches
        up from the stored byte offset.
        """
        if self.record_index is None:
            return
        try:
            self.record_index.sync(owner, self.manifest(owner))
        except CasvaultError as exc:
            log.warning("record index sync for %s failed (will catch up): %s", owner, exc.message)

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
            idx = self.index(owner)
            quota.check(idx.usage(), self.quota.limits_for(owner), src.bytes)
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
                thumb=f"thumb/{rid}.{thumbs.THUMB_EXT}",
                tags=[],
                width=src.width,
                height=src.height,
                blake3=src.blake3,
                source={"copied_from": src.id, "kind": src.kind},
            )
            try:
                thumb_bytes = self.layout.thumb_path(src).read_bytes()
            except OSError:
                thumb_bytes = thumbs.make_thumbnail(self.blobs.read(src.sha256), self.config.thumb_size)
            if not self.blobs.has(src.sha256):
                raise NotFound("the source image's original is missing", id=source_id)
            self._materialize_or_discard(record, thumb_bytes, "copy.before_manifest")
            self.log_events(owner, AddEvent(at=now_iso(), record=record), undo=lambda: self._discard(record))
        return record

    def place_record(self, record: Record, thumb_bytes: bytes | None, *, point: str) -> None:
        """Write a checked record whose blob is stored: sidecar, projection, thumbnail, then its manifest line.

        Call under the owner's lock (restore). On any failure the files
        already written are taken back and the error is raised: nothing
        half-written stays.
        """
        self._materialize_or_discard(record, thumb_bytes, point)
        self.log_events(record.owner, AddEvent(at=now_iso(), record=record), undo=lambda: self._discard(record))

    # --- trash, restore, purge, metadata -------------------------------------

    def trash(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """Move a record to the trash; raises NotFound, Conflict (already there)."""
        with self.locks.user(owner):
            record = self.get(owner, rid, kind)
            if record.status == "trash":
                raise Conflict("the image is already in the trash", id=rid)
            at = now_iso()
            new = evolve(record, status="trash", trashed_at=at)
            self._move(record, new, point="trash")
            self.log_events(owner, TrashEvent(at=at, id=rid), undo=lambda: self._move(new, record, point="undo_trash"))
        return new

    def restore(self, owner: str, rid: str, kind: str | None = None) -> Record:
        """Bring a record back from the trash; raises NotFound, Conflict (not trashed)."""
        with self.locks.user(owner):
            record = self.get(owner, rid, kind)
            if record.status != "trash":
                raise Conflict("the image is not in the trash", id=rid)
            new = evolve(record, status="active")  # NOTE: trashed_at stays: the last trashing (share links)
            self._move(record, new, point="restore")
            self.log_events(owner, RestoreEvent(at=now_iso(), id=rid), undo=lambda: self._move(new, record, point="undo_restore"))
        return new

    def _move(self, old: Record, new: Record, point: str) -> None:
        """Rewrite the sidecar with the new status, then move image, thumb, sidecar together.

        The sidecar's status says where the files belong, so a crash between
        the steps is finished by ``fsck --repair``.
        """
        src_image, src_sidecar, src_thumb = self.layout.paths(old)
        dst_image, dst_sidecar, dst_thumb = self.layout.paths(new)
        for path in (src_thumb, dst_thumb):
            safefs.check_inside(self.layout.root, path)
        write_file(src_sidecar, encode_record(new), self.layout.tmp, fsync=self.config.fsync, point="sidecar.write")
        faults.point(f"{point}.after_sidecar")
        moved_dirs: set[Path] = set()
        for src, dst in ((src_image, dst_image), (src_thumb, dst_thumb), (src_sidecar, dst_sidecar)):
            try:
                try:
                    os.replace(src, dst)
                except FileNotFoundError:
                    if not src.parent.exists() and src.exists():
                        raise
                    if not os.path.lexists(src):
                        if src is src_sidecar:
                            raise
                        continue  # e.g. no thumbnail: nothing to move
                    safefs.make_dirs(self.layout.root, dst.parent)
                    os.replace(src, dst)
            except OSError as exc:
                raise storage_error(exc, f"moving {src.name}") from exc
            moved_dirs.update((src.parent, dst.parent))
            faults.point(f"{point}.after_move_{dst.suffix.lstrip('.')}")
        if self.config.fsync:
            for d in moved_dirs:
                fsync_dir(d)

    def purge(self, owner: str, rid: str) -> int:
        """Delete a trashed record for good; returns its logical bytes.

        The blob stays until ``gc``. Raises NotFound, Conflict (not trashed).
        """
        with self.locks.user(owner):
            record = self.get(owner, rid)
            if record.status != "trash":
                raise Conflict("only images in the trash can be deleted for good", id=rid)
            self.log_events(owner, PurgeEvent(at=now_iso(), id=rid))
            faults.point("purge.after_manifest")
            self.remove_files(record)
        return record.bytes

    def remove_files(self, record: Record, *, point: str | None = "purge.after_sidecar") -> None:
        """Remove a record's sidecar, then projection and thumbnail (either place); missing is fine.

        ``point`` names the fault-injection point after a sidecar is removed.
        """
        for trashed in (True, False):
            image, sidecar, thumb = self.layout.paths(record, trashed)
            safefs.check_inside(self.layout.root, thumb)
            if remove(sidecar) and point:
                faults.point(point)
            remove(image)
            remove(thumb)

    def current_sidecar(self, record: Record) -> tuple[Record, Path] | None:
        """The record as its sidecar says now and that sidecar's path; None when neither place holds it.

        Looks where the record's status says first, then in the other place
        (an interrupted trash or restore); a sidecar naming another id or
        owner does not count.
        """
        for trashed in (record.status == "trash", record.status != "trash"):
            path = self.layout.sidecar_path(record, trashed)
            try:
                found = decode_record(safefs.read_regular(path, safefs.JSON_MAX_BYTES))
            except (OSError, CasvaultError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            if found.id == record.id and found.owner == record.owner:
                return found, path
        return None

    def purge_expired(
        self, owner: str, older_than_days: float | None = None, *, dry_run: bool = False
    ) -> trash.PurgeReport:
        """Purge ``owner``'s records trashed more than N days ago (default: retention).

        Failures are reported in the result's ``failed``, never raised (see
        :func:`casvault.trash.purge_expired`).
        """
        return trash.purge_expired(self, older_than_days, owners=[owner], dry_run=dry_run)

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
            write_file(
                self.layout.sidecar_path(new), encode_record(new), self.layout.tmp, fsync=self.config.fsync,
                point="sidecar.write",
            )
            faults.point("meta.after_sidecar")
            self.log_events(
                owner,
                MetaEvent(at=now_iso(), id=rid, tags=changes.get("tags"), favorite=changes.get("favorite")),
                undo=lambda: write_file(
                    self.layout.sidecar_path(record), encode_record(record), self.layout.tmp, fsync=self.config.fsync
                ),
            )
        return new

    # --- rebuilding from sidecars --------------------------------------------

    def scan_sidecars(self, owner: str) -> Iterator[tuple[Path, Record | None]]:
        """Every sidecar of ``owner`` in outputs/ and trash/, parsed (None if unreadable or not a record).

        Only regular files in real folders are read (:mod:`casvault.safefs`).
        """
        for trashed in (False, True):
            base = self.layout.user_base(owner, trashed)
            for folder, dirnames, filenames, _foreign in safefs.walk(base):
                dirnames[:] = [d for d in dirnames if d != "thumb"]
                for name in filenames:
                    if not name.endswith(".json") or not is_id(name[:-5]):
                        continue
                    path = folder / name
                    try:
                        record = decode_record(safefs.read_regular(path, safefs.JSON_MAX_BYTES))
                    except (OSError, CasvaultError, msgspec.DecodeError, msgspec.ValidationError):
                        yield path, None
                        continue
                    yield path, record

    def rebuild_manifest(self, owner: str) -> int:
        """Rewrite ``owner``'s manifest from the sidecars (the sidecars are the truth).

        Purges logged in the old manifest but not finished are finished first;
        a sidecar that names another user's blob without carrying its bytes
        is left out (:mod:`casvault.sidecars`). Returns the number of
        records. Takes the user's lock.
        """
        from . import sidecars  # NOTE: sidecars reads manifests, which this module also imports

        with self.locks.user(owner):
            old = replay(self.layout.manifest_path(owner), owner)
            purged = old.purged
            own_shas = {r.sha256 for r in old.records.values()}
            others: dict[str, set[str]] = {}

            def blob_owners() -> dict[str, set[str]]:
                if not others:
                    others.update(sidecars.blob_owners(self))
                return others

            records = []
            for path, record in self.scan_sidecars(owner):
                if record is None or record.owner != owner or record.id != path.stem:
                    continue
                image = path.with_name(f"{record.id}.{record.ext}")
                if sidecars.refusal(record) or sidecars.blob_claim(self, record, own_shas, [image], blob_owners):
                    continue  # NOTE: left out, not deleted: fsck and reindex quarantine and report it
                if record.id in purged:
                    self.remove_files(record)
                    continue
                records.append(self._backfill(record, path))
            records.sort(key=lambda r: (r.created_at, r.id))
            events: list[Event] = [AddEvent(at=r.created_at, record=r) for r in records]
            self.manifest(owner).rewrite(events, self.layout.tmp)
            self.sync_record_index(owner)
            return len(records)

    def _backfill(self, record: Record, sidecar: Path) -> Record:
        """A record stored before a derived field existed, with it filled in (sidecar rewritten); else as is."""
        if record.kind != "generated" or record.aspect_ratio is not None:  # type: ignore[union-attr]
            return record
        ratio = aspect_ratio(record.width, record.height)
        if ratio is None:
            return record
        new = evolve(record, aspect_ratio=ratio)
        write_file(sidecar, encode_record(new), self.layout.tmp, fsync=self.config.fsync, point="sidecar.write")
        return new


def _fill_from_comfy(data: bytes, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Fill prompt, seed and negative prompt from ComfyUI metadata where the caller gave none."""
    meta = comfy.extract(data)
    if meta is None:
        return fields, None
    filled = dict(fields)
    for name in ("prompt", "seed", "negative_prompt"):
        if filled.get(name) is None and getattr(meta, name) is not None:
            value = getattr(meta, name)
            if name != "seed":
                # NOTE: metadata never fails an ingest: control characters are dropped, length capped.
                value = "".join(c for c in value if c >= " " or c in "\t\n\r").replace("\x7f", "")[:FIELD_MAX_LEN]
            filled[name] = value
    return filled, comfy.summarize(meta)


def open_store(config: Config | None = None, **overrides: Any) -> Store:
    """A Store for ``config`` (default: from the environment)."""
    config = config or Config.from_env(**overrides)
    return Store(config)


__all__ = ["Store", "IngestResult", "open_store", "Query", "ControlRecord", "GeneratedRecord", "InputRecord"]
