"""The per-user manifest: ``meta/users/<user_id>/manifest.jsonl``.

Append-only, one event a line, every line ending in ``\\n``. A torn last line
(a crash mid-append) is ignored by readers and cut off under the user's lock
before the next append. A bad line before the end is an error
(ManifestCorrupt) that ``casvault fsck`` reports and ``reindex`` repairs.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec

from . import faults, safefs
from .atomic import fsync_dir, storage_error, write_file
from .errors import ManifestCorrupt, UnsafeFile
from .records import (
    Event,
    MoveEvent,
    PurgeEvent,
    Record,
    apply_event,
    decode_event,
    decode_events,
    encode_event,
    event_id,
)


class Chunk(NamedTuple):
    """Events read from a manifest and where reading stopped."""

    events: list[Event]
    offset: int  # end of the last complete line read
    torn: bool  # bytes after ``offset`` without a final newline


class Manifest:
    """One user's append-only event log."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync

    def read(self, offset: int = 0) -> Chunk:
        """Events from ``offset`` to the last complete line.

        Raises ManifestCorrupt for a line that does not parse (the torn tail
        excepted) and for a manifest that is not a regular file (a planted
        symlink or FIFO: never followed; the index rebuilds it from the
        sidecars). A missing file reads as empty.
        """
        try:
            with safefs.open_regular(self.path) as (fh, _st):
                if offset:
                    fh.seek(offset)
                buf = fh.read()
        except FileNotFoundError:
            return Chunk([], 0, False)
        except UnsafeFile as exc:
            raise ManifestCorrupt(f"{self.path}: {exc.message}", path=str(self.path)) from None
        end = buf.rfind(b"\n") + 1
        torn = end < len(buf)
        body = buf[:end]
        if not body:
            return Chunk([], offset, torn)
        try:
            events = decode_events(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            events = self._decode_slowly(body, offset)
        return Chunk(events, offset + end, torn)

    def _decode_slowly(self, body: bytes, offset: int) -> list[Event]:
        events = []
        for lineno, line in enumerate(body.split(b"\n")[:-1], 1):
            try:
                events.append(decode_event(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ManifestCorrupt(
                    f"{self.path}: bad line {lineno} after byte {offset}: {exc}",
                    path=str(self.path),
                    line=lineno,
                ) from None
        return events

    def size(self) -> int:
        """Current size in bytes (0 when missing)."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def repair_tail(self) -> int:
        """Cut a torn last line off; call under the user's lock. Returns bytes cut."""
        try:
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise storage_error(OSError(errno.EINVAL, "not a regular file"), "opening the manifest")
            fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise storage_error(exc, "opening the manifest (not a regular file?)") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise storage_error(OSError(errno.EINVAL, "not a regular file"), "opening the manifest")
        os.set_blocking(fd, True)
        try:
            with os.fdopen(fd, "rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return 0
                back = min(size, 1 << 16)
                while True:
                    fh.seek(size - back)
                    tail = fh.read(back)
                    nl = tail.rfind(b"\n")
                    if nl >= 0 or back == size:
                        break
                    back = min(size, back * 4)
                keep = size - back + nl + 1 if nl >= 0 else 0
                if keep == size:
                    return 0
                fh.truncate(keep)
                if self.fsync:
                    os.fsync(fh.fileno())
                return size - keep
        except FileNotFoundError:
            return 0

    def append(self, *events: Event) -> int:
        """Append events durably; call under the user's lock. Returns the new size.

        Raises StorageFull / StorageError; a partial write is cut off.
        """
        data = b"".join(encode_event(e) for e in events)
        self._make_folder()
        self.repair_tail()
        # NOTE: O_NOFOLLOW: a manifest swapped for a symlink is never appended through (repair_tail refused it above).
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        created = False
        try:
            start = os.fstat(fd).st_size
            created = start == 0
            try:
                faults.point("manifest.append")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, start)
                raise storage_error(exc, "appending to the manifest") from exc
            end = start + len(data)
        finally:
            os.close(fd)
        if created and self.fsync:
            fsync_dir(self.path.parent)
        return end

    def _make_folder(self) -> None:
        """Create meta/users/<user>/, refusing to write through a symlinked folder."""
        # NOTE: the manifest lives at <root>/meta/users/<user>/manifest.jsonl (Layout.manifest_path).
        parents = self.path.parents
        safefs.make_dirs(parents[3] if len(parents) > 3 else self.path.parent, self.path.parent)

    def rewrite(self, events: list[Event], tmp_dir: Path) -> None:
        """Replace the whole manifest atomically (reindex, repair)."""
        self._make_folder()
        write_file(self.path, b"".join(encode_event(e) for e in events), tmp_dir, fsync=self.fsync)


@dataclass
class ManifestState:
    """A manifest replayed: the records it says exist, the ids it took away for good, damage."""

    records: dict[str, Record] = field(default_factory=dict)
    purged: set[str] = field(default_factory=set)  # purged, and not re-created by a later event
    moved_out: set[str] = field(default_factory=set)  # moved to another owner, and not re-created since
    bad_lines: list[int] = field(default_factory=list)
    torn: bool = False


def replay(path: Path, owner: str) -> ManifestState:
    """Replay ``owner``'s manifest line by line, noting bad lines and a torn tail instead of failing.

    An id is in ``purged`` (or ``moved_out``) only when its last event took
    it away: a later ``add`` or ``move`` in that re-creates it (an adoption
    of the same file again, a merge back) makes it a live record again.
    """
    state = ManifestState()
    try:
        data = safefs.read_regular(path, 1 << 40)
    except FileNotFoundError:
        return state
    except UnsafeFile:
        state.bad_lines.append(0)  # NOTE: not a regular file: unread, reported, rebuilt from the sidecars
        return state
    end = data.rfind(b"\n") + 1
    state.torn = end < len(data)
    body = data[:end]
    try:
        events = decode_events(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        events = []
        for lineno, line in enumerate(body.split(b"\n")[:-1], 1):
            try:
                events.append(decode_event(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                state.bad_lines.append(lineno)
    records = state.records
    for event in events:
        rid = event_id(event)
        record = apply_event(records.get(rid), event, owner)
        if record is not None:
            records[rid] = record
            state.purged.discard(rid)
            state.moved_out.discard(rid)
            continue
        records.pop(rid, None)
        if isinstance(event, PurgeEvent):
            state.purged.add(rid)
        elif isinstance(event, MoveEvent) and event.owner_from == owner and event.owner_to != owner:
            state.moved_out.add(rid)
    return state
