"""A compact listing snapshot beside each manifest, so a cold first page costs the same at any size.

``meta/users/<user_id>/index.snap`` holds one JSON header line (the
manifest's inode, the manifest offset the snapshot reflects, the number of
records per state) and then one fixed-width entry per record in
``(created_at, id)`` order: ``created_at`` padded to 32 bytes, the id's 16
bytes, one state byte (:func:`casvault.secondary.state_code`).

A process that has not loaded a user's index answers the first pages of a
plain listing from it: the manifest's tail after the snapshot's offset is
read and laid over the entries, entries are read from the end (the file is
mapped, so only those pages are touched), and the page's records are read
from their sidecars, the truth of each record. Whatever does not add up
(another inode, a long tail, a tail event about a record it cannot place, a
sidecar that does not read back as expected) answers None, and the caller
loads the whole index as before. The snapshot is a cache: it is written
without fsync, and a torn or stale one is only ever ignored.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import msgspec

from .atomic import write_file
from .errors import CasvaultError, ManifestCorrupt
from .manifest import Manifest
from .records import (
    KINDS,
    AddEvent,
    MoveEvent,
    PurgeEvent,
    Record,
    RestoreEvent,
    TrashEvent,
    decode_record,
)
from .secondary import codes_for, state_code

NAME = "index.snap"
FORMAT = 1
TIME_WIDTH = 32
ID_BYTES = 16
ENTRY = TIME_WIDTH + ID_BYTES + 1
REWRITE_AFTER = 1 << 20  # bytes the manifest may grow past a snapshot before it is rewritten
MAX_TAIL = 4 << 20  # a longer tail is not worth reading here: load the whole index
MAX_ITEMS = 1_000  # pages deeper than this are left to the whole index

Key = tuple[str, str]
SidecarPath = Callable[[str, str, str, bool], Path]  # (kind, created_at, id, trashed) → sidecar


class Header(msgspec.Struct):
    """The snapshot's first line."""

    format: int
    inode: int
    offset: int
    entries: int
    counts: dict[str, int]  # state code (as a string) → records


_header_decoder = msgspec.json.Decoder(Header)


def path_for(manifest: Manifest) -> Path:
    """Where the snapshot of this manifest lives."""
    return manifest.path.with_name(NAME)


def write(manifest: Manifest, inode: int, offset: int, records: Iterable[Record], tmp_dir: Path) -> bool:
    """Write the snapshot of ``records`` as of ``offset``; False when a record does not fit the format."""
    entries: list[tuple[bytes, bytes, int]] = []
    counts: dict[str, int] = {}
    for record in records:
        created = record.created_at.encode()
        if len(created) > TIME_WIDTH:
            return False
        code = state_code(record.kind, record.status)
        entries.append((created.ljust(TIME_WIDTH), bytes.fromhex(record.id), code))
        counts[str(code)] = counts.get(str(code), 0) + 1
    entries.sort()
    header = msgspec.json.encode(Header(FORMAT, inode, offset, len(entries), counts)) + b"\n"
    body = bytearray(header)
    for created, rid, code in entries:
        body += created
        body += rid
        body.append(code)
    write_file(path_for(manifest), bytes(body), tmp_dir, fsync=False)
    return True


def stale(manifest: Manifest, inode: int, offset: int) -> bool:
    """True when the snapshot is missing, of another manifest, or more than REWRITE_AFTER bytes behind."""
    header = _read_header(path_for(manifest))
    return header is None or header[0].inode != inode or offset - header[0].offset > REWRITE_AFTER


def _read_header(path: Path) -> tuple[Header, int] | None:
    try:
        with open(path, "rb") as fh:
            line = fh.readline(4096)
    except OSError:
        return None
    try:
        header = _header_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return (header, len(line)) if header.format == FORMAT else None


class _Entries:
    """The mapped entries of a snapshot."""

    def __init__(self, mm: mmap.mmap, start: int, count: int) -> None:
        self.mm, self.start, self.count = mm, start, count

    def at(self, i: int) -> tuple[str, str, int]:
        """(created_at, id, state code) of entry ``i``."""
        p = self.start + i * ENTRY
        raw = self.mm[p:p + ENTRY]
        return raw[:TIME_WIDTH].rstrip().decode(), raw[TIME_WIDTH:TIME_WIDTH + ID_BYTES].hex(), raw[-1]

    def find(self, rid: str) -> tuple[str, int] | None:
        """(created_at, state code) of the entry with this id, or None."""
        needle = bytes.fromhex(rid)
        pos = self.mm.find(needle, self.start)
        while pos >= 0:
            if (pos - self.start - TIME_WIDTH) % ENTRY == 0:
                created, _, code = self.at((pos - self.start) // ENTRY)
                return created, code
            pos = self.mm.find(needle, pos + 1)
        return None

    def newest_first(self) -> Iterator[tuple[str, str, int]]:
        """Every entry, newest first."""
        for i in range(self.count - 1, -1, -1):
            yield self.at(i)


def first_page(
    manifest: Manifest, owner: str, kind: str, include: str, skip: int, size: int, sidecar: SidecarPath,
) -> tuple[list[Record], int, Key | None] | None:
    """Records ``skip`` to ``skip + size`` of a plain listing, newest first, the total and the key after which
    more follow (None at the end); None when the snapshot cannot answer (see the module's doc)."""
    if skip + size > MAX_ITEMS:
        return None
    path = path_for(manifest)
    found = _read_header(path)
    if found is None:
        return None
    header, start = found
    try:
        st = os.stat(manifest.path)
    except OSError:
        return None
    if st.st_ino != header.inode or st.st_size < header.offset or st.st_size - header.offset > MAX_TAIL:
        return None
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != start + header.entries * ENTRY:
                return None  # torn or foreign
            if header.entries == 0:
                return _answer(_Overlay(manifest, header, None, owner), kind, include, skip, size, sidecar, owner)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                entries = _Entries(mm, start, header.entries)
                overlay = _Overlay(manifest, header, entries, owner)
                return _answer(overlay, kind, include, skip, size, sidecar, owner)
    except (OSError, ValueError, IndexError, KeyError, ManifestCorrupt, _CannotAnswer):  # NOTE: damage: the index decides
        return None


class _CannotAnswer(Exception):
    """The tail names a record the snapshot cannot place."""


class _Overlay:
    """The manifest's tail after the snapshot, as the state it leaves each record it touches in."""

    def __init__(self, manifest: Manifest, header: Header, entries: _Entries | None, owner: str) -> None:
        self.entries = entries
        self.counts = {int(code): n for code, n in header.counts.items()}
        self.changed: dict[str, tuple[str, int]] = {}  # id → (created_at, code); code 0: gone
        chunk = manifest.read(header.offset)
        for event in chunk.events:
            self._apply(event, owner)

    def _state(self, rid: str) -> tuple[str, int] | None:
        if rid in self.changed:
            state = self.changed[rid]
            return state if state[1] else None
        return self.entries.find(rid) if self.entries is not None else None

    def _set(self, rid: str, old: tuple[str, int] | None, new: tuple[str, int]) -> None:
        if old is not None:
            self.counts[old[1]] = self.counts.get(old[1], 0) - 1
        if new[1]:
            self.counts[new[1]] = self.counts.get(new[1], 0) + 1
        self.changed[rid] = new

    def _apply(self, event: object, owner: str) -> None:
        if isinstance(event, AddEvent) or (isinstance(event, MoveEvent) and event.owner_to == owner and event.record):
            record = event.record
            assert record is not None
            if len(record.created_at) > TIME_WIDTH:
                raise _CannotAnswer(record.id)
            self._set(record.id, self._state(record.id), (record.created_at, state_code(record.kind, record.status)))
            return
        rid = event.id  # type: ignore[attr-defined]
        old = self._state(rid)
        if isinstance(event, (PurgeEvent, MoveEvent)):
            self._set(rid, old, ("", 0))
        elif isinstance(event, (TrashEvent, RestoreEvent)) and old is not None:
            kind = KINDS[(old[1] - 1) // 2]
            self._set(rid, old, (old[0], state_code(kind, "trash" if isinstance(event, TrashEvent) else "active")))

    def newest_first(self, codes: frozenset[int]) -> Iterator[tuple[str, str, int]]:
        """Every record in ``codes``, newest first: the entries merged with what the tail changed."""
        added = sorted(
            ((created, rid, code) for rid, (created, code) in self.changed.items() if code in codes), reverse=True
        )
        i = 0
        if self.entries is not None:
            for created, rid, code in self.entries.newest_first():
                if rid in self.changed or code not in codes:
                    continue
                while i < len(added) and added[i][:2] > (created, rid):
                    yield added[i]
                    i += 1
                yield created, rid, code
        yield from added[i:]


def _answer(
    overlay: _Overlay, kind: str, include: str, skip: int, size: int, sidecar: SidecarPath, owner: str,
) -> tuple[list[Record], int, Key | None] | None:
    codes = codes_for(kind, include)
    total = sum(overlay.counts.get(code, 0) for code in codes)
    items: list[Record] = []
    last: Key | None = None
    for n, (created, rid, code) in enumerate(overlay.newest_first(codes)):
        if n < skip:
            continue
        if len(items) == size:
            break
        trashed = code % 2 == 0
        try:
            record = decode_record(sidecar(kind, created, rid, trashed).read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError, CasvaultError):
            return None
        if record.id != rid or record.owner != owner or record.kind != kind or record.trashed != trashed \
                or record.created_at != created:
            return None  # a write in flight, or damage: the whole index decides
        items.append(record)
        last = (created, rid)
    more = skip + len(items) < total
    return items, total, last if more and items else None
