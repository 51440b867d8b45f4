"""The per-process, per-user index, kept current from the manifest's tail.

Loaded lazily from ``manifest.jsonl`` (msgspec, one pass), then refreshed
on each use by a ``stat``: what another worker appended is read and applied,
so its write is visible to the next request here. Keys are
``(created_at, id)``; ``created_at`` is always UTC with millisecond
precision, so the string order is the time order.
"""

from __future__ import annotations

import base64
import binascii
import gc
import os
import threading
from bisect import bisect_left, insort
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from . import snapshot
from .errors import CasvaultError, InvalidInput, ManifestCorrupt
from .manifest import Manifest
from .quota import Usage
from .records import (
    AddEvent,
    Event,
    MoveEvent,
    Record,
    apply_event,
    event_id,
)
from .secondary import FACETS, SecondaryIndex, codes_for, share_names, top

Key = tuple[str, str]
INCLUDES = ("active", "trash", "all")
FREEZE_MIN = 10_000  # records in one index from which loading it freezes the heap (see _freeze_if_large)


@dataclass
class Query:
    """A listing request; date bounds are UTC ISO strings (inclusive lo, exclusive hi)."""

    kind: str = "generated"
    include: str = "active"
    created_from: str | None = None
    created_before: str | None = None
    aspect_ratio: str | None = None
    tag: str | None = None
    workflow_id: str | None = None
    model: str | None = None
    lora: str | None = None
    sampler: str | None = None
    words: tuple[str, ...] = ()
    favorite: bool = False
    cursor: str | None = None
    page: int = 1
    size: int = 50

    @property
    def filtered(self) -> bool:
        """True when anything beyond kind and status narrows the listing."""
        return bool(self.created_from or self.created_before or self.words or self.favorite or self.facet_filters)

    @property
    def facet_filters(self) -> dict[str, str]:
        """The exact-value filters given, by facet field."""
        given = {
            "model": self.model, "lora": self.lora, "sampler": self.sampler,
            "workflow_id": self.workflow_id, "aspect_ratio": self.aspect_ratio, "tag": self.tag,
        }
        return {name: value for name, value in given.items() if value is not None}


def _freeze_if_large(records: int) -> None:
    """Move every object alive now out of the cyclic GC's reach, once an index is large."""
    # NOTE: a large index is acyclic and lives as long as the process: frozen,
    # later full collections no longer walk its ~10 containers a record (a
    # 250 ms pause at 100k records, paid by whichever request triggers it).
    # Frozen objects are still freed by refcount; the collect first keeps
    # today's cyclic garbage from being frozen with them.
    if records >= FREEZE_MIN:
        gc.collect()
        gc.freeze()


class Page(NamedTuple):
    """One page of a listing."""

    items: list[Record]
    total: int
    next_cursor: str | None


def encode_cursor(key: Key) -> str:
    """An opaque cursor for the position after ``key``."""
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    """Parse a cursor; raises InvalidInput."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, rid = raw.split("|")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid", field="cursor") from None
    if len(rid) != 32 or len(created_at) > 40:
        raise InvalidInput("cursor is not valid", field="cursor")
    return created_at, rid


class UserIndex:
    """One user's records, in time order per kind and status."""

    def __init__(self, owner: str, manifest: Manifest, rebuild: Callable[..., bool] | None = None,
                 snapshot_tmp: Path | None = None) -> None:
        """``rebuild(missing=...)`` rewrites the manifest from the sidecars; True if it wrote one.

        With ``snapshot_tmp`` (a folder on the manifest's filesystem) the index
        keeps the listing snapshot beside the manifest (casvault.snapshot).
        """
        self.owner = owner
        self.manifest = manifest
        self._rebuild = rebuild
        self._snapshot_tmp = snapshot_tmp
        self._snapshot_offset = 0
        self.loading = False  # a background load was started for a cold first page
        self._mutex = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.records: dict[str, Record] = {}
        self.by_sha: dict[str, set[str]] = {}
        self._keys: dict[tuple[str, str], list[Key]] = {}
        self._ino = 0
        self._offset = 0
        self.last_activity: str | None = None
        self.usage_counts = [0, 0, 0, 0]  # count, bytes, trash_count, trash_bytes
        self._secondary: SecondaryIndex | None = None  # built on the first filtered read

    # --- loading ------------------------------------------------------------

    def refresh(self) -> "UserIndex":
        """Apply what was appended since the last look (a stat when nothing was)."""
        with self._mutex:
            try:
                st = os.stat(self.manifest.path)
            except FileNotFoundError:
                if self._offset or self._ino:
                    self._reset()
                if self._rebuild is None or not self._rebuild(missing=True):
                    return self
                st = os.stat(self.manifest.path)
            if st.st_ino != self._ino or st.st_size < self._offset:
                self._load(st.st_ino)
            elif st.st_size > self._offset:
                try:
                    chunk = self.manifest.read(self._offset)
                except ManifestCorrupt:
                    self._load(st.st_ino)  # a bad line appended: rebuilt from the sidecars
                    return self
                for event in chunk.events:
                    self._apply(event, incremental=True)
                self._offset = chunk.offset
            return self

    def _load(self, ino: int) -> None:
        self._reset()
        # NOTE: a bulk load applies events to ``records`` alone and derives key
        # lists, digests and usage once at the end (removing a trashed key
        # from a 100k list per event made a load quadratic). The cyclic GC is
        # held off meanwhile: decoding allocates only acyclic structs and
        # strings, and the collections they trigger cost half the load.
        gc_on = gc.isenabled()
        gc.disable()
        try:
            try:
                chunk = self.manifest.read(0)
            except ManifestCorrupt:
                if self._rebuild is None:
                    raise
                self._rebuild()  # rewrites the manifest from the sidecars
                ino = os.stat(self.manifest.path).st_ino
                chunk = self.manifest.read(0)
            for event in chunk.events:
                self._apply(event, incremental=False)
            self._build_derived()
        finally:
            if gc_on:
                gc.enable()
        _freeze_if_large(len(self.records))
        self._ino = ino
        self._offset = chunk.offset
        self._keep_snapshot(force_check=True)

    def _keep_snapshot(self, force_check: bool = False) -> None:
        """Rewrite the listing snapshot when it has fallen REWRITE_AFTER bytes behind (or is missing)."""
        if self._snapshot_tmp is None or not self._ino:
            return
        if not force_check and self._offset - self._snapshot_offset <= snapshot.REWRITE_AFTER:
            return
        if force_check and not snapshot.stale(self.manifest, self._ino, self._offset):
            self._snapshot_offset = self._offset
            return
        try:
            snapshot.write(self.manifest, self._ino, self._offset, self.records.values(), self._snapshot_tmp)
        except CasvaultError:
            return  # NOTE: a cache: a full disk or an I/O error must not fail the read that got here
        self._snapshot_offset = self._offset

    @property
    def loaded(self) -> bool:
        """True once the manifest has been read."""
        return bool(self._ino)

    def cold_page(self, q: Query, sidecar: Callable[[str, str, str, bool], Path]) -> Page | None:
        """A plain listing's page from the snapshot, before the index is loaded; None when it cannot answer."""
        if self.loaded or q.filtered or q.cursor or q.include not in INCLUDES:
            return None
        skip = (q.page - 1) * q.size
        found = snapshot.first_page(self.manifest, self.owner, q.kind, q.include, skip, q.size,
                                    lambda kind, created, rid, trashed: sidecar(kind, created, rid, trashed))
        if found is None:
            return None
        items, total, last = found
        return Page(items, total, encode_cursor(last) if last else None)

    def _build_derived(self) -> None:
        """Key lists, digests and usage from ``records`` in one pass (end of a bulk load)."""
        keys: dict[tuple[str, str], list[Key]] = {}
        by_sha: dict[str, set[str]] = {}
        count = size = trash_count = trash_size = 0
        for rid, record in self.records.items():
            key = (record.created_at, rid)
            kind, status = record.kind, record.status
            keys.setdefault((kind, status), []).append(key)
            keys.setdefault((kind, "all"), []).append(key)
            ids = by_sha.get(record.sha256)
            if ids is None:
                by_sha[record.sha256] = {rid}
            else:
                ids.add(rid)
            count += 1
            size += record.bytes
            if status == "trash":
                trash_count += 1
                trash_size += record.bytes
        for keylist in keys.values():
            keylist.sort()
        self._keys = keys
        self.by_sha = by_sha
        self.usage_counts = [count, size, trash_count, trash_size]

    def _keylist(self, kind: str, status: str) -> list[Key]:
        keys = self._keys.get((kind, status))
        if keys is None:
            keys = self._keys[(kind, status)] = []
        return keys

    def _insert(self, record: Record, incremental: bool) -> None:
        if not incremental:
            return  # the bulk load builds the key lists at its end
        key = (record.created_at, record.id)
        for status in (record.status, "all"):
            insort(self._keylist(record.kind, status), key)

    def _remove_key(self, record: Record, statuses: tuple[str, ...], incremental: bool) -> None:
        if not incremental:
            return  # the bulk load builds the key lists at its end
        key = (record.created_at, record.id)
        for status in statuses:
            keys = self._keylist(record.kind, status)
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]

    def _count(self, record: Record, sign: int) -> None:
        c = self.usage_counts
        c[0] += sign
        c[1] += sign * record.bytes
        if record.status == "trash":
            c[2] += sign
            c[3] += sign * record.bytes

    def _add(self, record: Record, incremental: bool) -> None:
        if not incremental:
            self.records[record.id] = record  # the rest is derived at the end
            return
        if record.id in self.records:
            self._drop(record.id, incremental)
        self.records[record.id] = record
        self.by_sha.setdefault(record.sha256, set()).add(record.id)
        self._insert(record, incremental)
        self._count(record, +1)

    def _drop(self, rid: str, incremental: bool) -> None:
        record = self.records.pop(rid, None)
        if record is None or not incremental:
            return
        ids = self.by_sha.get(record.sha256)
        if ids is not None:
            ids.discard(rid)
            if not ids:
                del self.by_sha[record.sha256]
        self._remove_key(record, (record.status, "all"), incremental)
        self._count(record, -1)

    def _set_status(self, old: Record, new: Record, incremental: bool) -> None:
        self.records[new.id] = new
        if not incremental:
            return  # the rest is derived at the end of the load
        self._count(old, -1)
        self._remove_key(old, (old.status,), incremental)
        insort(self._keylist(new.kind, new.status), (new.created_at, new.id))
        self._count(new, +1)

    def _apply(self, event: Event, incremental: bool) -> None:
        rid = event_id(event)
        old = self.records.get(rid)
        new = apply_event(old, event, self.owner)
        if new is not None and new is not old and isinstance(event, (AddEvent, MoveEvent)):
            share_names(new)
        if self._secondary is not None and new is not old:
            self._secondary.change(old, new)
        if new is None:
            self._drop(rid, incremental)
        elif old is None or isinstance(event, (AddEvent, MoveEvent)):
            self._add(new, incremental)
        elif new.status != old.status:
            self._set_status(old, new, incremental)
        else:
            self.records[rid] = new
        if self.last_activity is None or event.at > self.last_activity:
            self.last_activity = event.at

    def apply_local(self, *events: Event) -> None:
        """Apply events this process just appended (skips re-reading them)."""
        with self._mutex:
            for event in events:
                self._apply(event, incremental=True)
            self._offset = self.manifest.size()
            self._keep_snapshot()

    # --- reading ------------------------------------------------------------

    @property
    def manifest_offset(self) -> int:
        """How far into the manifest this index has read."""
        return self._offset

    def get(self, rid: str) -> Record | None:
        """The record with this id, or None."""
        return self.records.get(rid)

    def usage(self) -> Usage:
        """Counts and logical bytes, trash included."""
        c = self.usage_counts
        return Usage(count=c[0], bytes=c[1], trash_count=c[2], trash_bytes=c[3])

    def count(self, kind: str, include: str = "active") -> int:
        """Records of a kind in a status ('all' for both)."""
        return len(self._keys.get((kind, include), ()))

    def iter_desc(self, kind: str, include: str = "active") -> Iterator[Record]:
        """Records newest first (a snapshot of the order)."""
        keys = list(self._keys.get((kind, include), ()))
        records = self.records
        for key in reversed(keys):
            record = records.get(key[1])
            if record is not None:
                yield record

    def secondary(self) -> SecondaryIndex:
        """The posting lists and word index (built on first use, then kept current)."""
        with self._mutex:
            if self._secondary is None:
                # NOTE: built lazily, so a cold first page does not pay for it;
                # from then on every event keeps it current (see _apply).
                records = self.records
                gc_on = gc.isenabled()
                gc.disable()  # NOTE: as in _load: only acyclic objects are made, and collections cost a third
                try:
                    self._secondary = SecondaryIndex.build(
                        (key, records[key[1]]) for (_, status), keys in self._keys.items() if status == "all"
                        for key in keys
                    )
                finally:
                    if gc_on:
                        gc.enable()
                _freeze_if_large(len(self.records))
            return self._secondary

    def _matching(self, q: Query) -> tuple[int, Callable[[int], Key], list[int] | None]:
        """How many records match, their keys by position (oldest first), and their slots when posting lists chose them."""
        lo_key = (q.created_from,) if q.created_from else None
        hi_key = (q.created_before,) if q.created_before else None
        found = None
        if q.words or q.favorite or q.facet_filters:
            sec = self.secondary()
            found = sec.candidates(q.facet_filters, q.favorite, q.words)
        if found is None:  # dates alone (or query words without a letter or digit)
            keys = self._keys.get((q.kind, q.include), [])
            lo = bisect_left(keys, lo_key) if lo_key else 0
            hi = bisect_left(keys, hi_key) if hi_key else len(keys)
            hi = max(hi, lo)
            return hi - lo, (lambda i: keys[lo + i]), None
        slots = sec.select(found, codes_for(q.kind, q.include))
        if lo_key or hi_key:
            lo = bisect_left(slots, lo_key, key=sec.key_at) if lo_key else 0
            hi = bisect_left(slots, hi_key, key=sec.key_at) if hi_key else len(slots)
            slots = slots[lo:max(hi, lo)]
        return len(slots), (lambda i: sec.key_at(slots[i])), slots

    def query(self, q: Query) -> Page:
        """One page of a listing, newest first; raises InvalidInput for a bad cursor."""
        if q.include not in INCLUDES:
            raise InvalidInput("include must be active, trash or all", field="include")
        with self._mutex:
            total, key_at, _ = self._matching(q)
            end = total
            if q.cursor:
                end = bisect_left(range(total), decode_cursor(q.cursor), key=key_at)
            start = end - (0 if q.cursor else (q.page - 1) * q.size)
            lo = max(start - q.size, 0)
            records = self.records
            items = [records[key_at(i)[1]] for i in range(start - 1, lo - 1, -1)]
            next_cursor = encode_cursor(key_at(lo)) if lo > 0 and items else None
            return Page(items, total, next_cursor)

    def facets(self, q: Query, fields: tuple[str, ...] = FACETS, prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """The most frequent values of each facet field among the records ``q`` matches (its page ignored)."""
        if q.include not in INCLUDES:
            raise InvalidInput("include must be active, trash or all", field="include")
        with self._mutex:
            sec = self.secondary()
            if not q.filtered:
                codes = codes_for(q.kind, q.include)
                return {name: top(sec.counted(name, codes), prefix, limit) for name in fields}
            total, key_at, slots = self._matching(q)
            if slots is None:  # dates alone: the keys in range, as slots
                slots = [sec.slot_of[key_at(i)[1]] for i in range(total)]
            return {name: top(sec.count_within(name, slots), prefix, limit) for name in fields}
