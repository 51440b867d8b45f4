"""The records seam: where records are kept and read (DESIGN.md 7).

:class:`FileRecords` is the files deployment: each record's sidecar is its
truth, each user's ``manifest.jsonl`` the log, a per-process
:class:`casvault.index.UserIndex` the read model. :class:`PostgresRecords`
reads ``get``, ``query``, ``usage`` and ``facets`` from the PostgreSQL index
derived from the manifests (kept up to them after every append); every
other read, the quota check included, stays on the files index, as the
write path's checks must see what the manifest says under the user's lock.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import msgspec

from .. import faults, quota, safefs, sidecars
from ..aspect import aspect_ratio
from ..atomic import remove
from ..blobs import BlobStore
from ..errors import CasvaultError
from ..index import Query, UserIndex
from ..layout import Layout
from ..locks import Locks
from ..manifest import Manifest, replay
from ..records import KINDS, AddEvent, Event, Record, decode_record, evolve
from ..validate import check_user_id, is_id, is_user_id

if TYPE_CHECKING:
    from .postgres import PostgresIndex

log = logging.getLogger("casvault.store")


class FileRecords:
    """Records in sidecars and manifests, read through this process's per-user indexes."""

    pg: "PostgresIndex | None" = None

    def __init__(self, layout: Layout, locks: Locks, blobs: BlobStore, *, fsync: bool) -> None:
        self.layout = layout
        self.locks = locks
        self.blobs = blobs
        self.fsync = fsync
        self._indexes: dict[str, UserIndex] = {}
        self._mutex = threading.Lock()

    # --- reads --------------------------------------------------------------

    def get(self, owner: str, rid: str) -> Record | None:
        """``owner``'s record ``rid``, or None."""
        return self.index(owner).get(rid)

    def get_logged(self, owner: str, rid: str) -> Record | None:
        """``owner``'s record ``rid`` as the manifest index has it (never a derived index), or None."""
        return self.index(owner).get(rid)

    def find(self, rid: str) -> Record | None:
        """A record by id, any owner (admin), or None."""
        for owner in self.users():
            record = self.index(owner).get(rid)
            if record is not None:
                return record
        return None

    def query(self, owner: str, query: Query) -> Any:
        """One page of ``owner``'s records (see :class:`Query`)."""
        # NOTE: a process's first look at a user answers a plain page from the
        # snapshot, at a cost independent of the library's size (casvault.snapshot).
        page = self._cold_page(owner, query)
        return page if page is not None else self.index(owner).query(query)

    def facets(self, owner: str, query: Query, fields: tuple[str, ...], prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """The top values, with counts, of facet ``fields`` among ``owner``'s records matching ``query``."""
        return self.index(owner).facets(query, fields, prefix, limit)

    def usage(self, owner: str) -> quota.Usage:
        """What ``owner`` holds now."""
        return self.index(owner).usage()

    def check_quota(self, owner: str, limits: quota.Limits, add_bytes: int) -> None:
        """Raise QuotaExceeded unless ``owner`` may add one record of ``add_bytes``; call under the owner's lock."""
        quota.check(self.index(owner).usage(), limits, add_bytes)

    def with_digest(self, owner: str, sha256: str) -> list[Record]:
        """``owner``'s records (any kind and status) of the blob ``sha256``, oldest first."""
        idx = self.index(owner)
        found = [r for r in (idx.records.get(rid) for rid in idx.by_sha.get(sha256, ())) if r is not None]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def newest(self, kind: str | None = None, include: str = "active") -> Iterator[Record]:
        """Every user's records of ``kind`` (None: all kinds), newest first: a k-way merge of the sorted indexes."""
        kinds = KINDS if kind is None else (kind,)
        streams = [self.index(owner).iter_desc(k, include) for owner in self.users() for k in kinds]
        return heapq.merge(*streams, key=lambda r: (r.created_at, r.id), reverse=True)

    def all(self, owner: str) -> list[Record]:
        """Every record of ``owner``, any kind and status (trash due, reports, thumbnails)."""
        return list(self.index(owner).records.values())

    def summary(self, owner: str) -> dict[str, Any]:
        """``owner``'s usage, counts by kind and status, and last activity (admin's user list)."""
        idx = self.index(owner)
        return {
            "usage": idx.usage(),
            "counts": {kind: {"active": idx.count(kind, "active"), "trash": idx.count(kind, "trash")} for kind in KINDS},
            "last_activity": idx.last_activity,
        }

    def sync(self, owner: str) -> None:
        """Bring a derived index up to ``owner``'s manifest (none here)."""

    # --- the files' own: indexes, manifests, sidecars --------------------------

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

    def _cold_page(self, owner: str, query: Query) -> Any:
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
        return Manifest(self.layout.manifest_path(owner), fsync=self.fsync)

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

    def append(self, owner: str, *events: Event, undo: Callable[[], object] | None = None) -> None:
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
        self.sync(owner)

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
            self.sync(owner)
            return len(records)

    def _backfill(self, record: Record, sidecar: Path) -> Record:
        """A record stored before a derived field existed, with it filled in (sidecar rewritten); else as is."""
        if record.kind != "generated" or record.aspect_ratio is not None:  # type: ignore[union-attr]
            return record
        ratio = aspect_ratio(record.width, record.height)
        if ratio is None:
            return record
        new = evolve(record, aspect_ratio=ratio)
        sidecars.write_sidecar(self.layout, new, fsync=self.fsync, at=sidecar, point="sidecar.write")
        return new


class PostgresRecords(FileRecords):
    """The files records, with get/query/usage/facets read from the PostgreSQL index derived from the manifests."""

    def __init__(self, layout: Layout, locks: Locks, blobs: BlobStore, pg: "PostgresIndex", *, fsync: bool) -> None:
        super().__init__(layout, locks, blobs, fsync=fsync)
        self.pg = pg

    def get(self, owner: str, rid: str) -> Record | None:
        """``owner``'s record ``rid`` from PostgreSQL, or None."""
        return self.pg.get(check_user_id(owner), rid)

    def query(self, owner: str, query: Query) -> Any:
        """One page of ``owner``'s records from PostgreSQL."""
        return self.pg.query(check_user_id(owner), query)

    def facets(self, owner: str, query: Query, fields: tuple[str, ...], prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """Facet counts from PostgreSQL."""
        return self.pg.facets(check_user_id(owner), query, fields, prefix, limit)

    def usage(self, owner: str) -> quota.Usage:
        """What ``owner`` holds, from PostgreSQL."""
        return self.pg.usage(check_user_id(owner))

    def sync(self, owner: str) -> None:
        """Bring the PostgreSQL index up to ``owner``'s manifest.

        The manifest is the durable log, so a failure here is logged, not
        raised: the write is already acknowledged, and the next sync catches
        up from the stored byte offset.
        """
        try:
            self.pg.sync(owner, self.manifest(owner))
        except CasvaultError as exc:
            log.warning("record index sync for %s failed (will catch up): %s", owner, exc.message)


def open_records(spec: Any, layout: Layout, locks: Locks, blobs: BlobStore, *, fsync: bool) -> FileRecords:
    """The records of a store: PostgreSQL-indexed when ``spec`` names it, else files only."""
    from . import open_record_index

    pg = open_record_index(spec)
    if pg is None:
        return FileRecords(layout, locks, blobs, fsync=fsync)
    return PostgresRecords(layout, locks, blobs, pg, fsync=fsync)
