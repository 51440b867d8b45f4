"""Streamed ZIP downloads: written chunk by chunk, never held whole in memory."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from casvault.records import Record
from casvault.store import Store

from .files import download_name

CHUNK = 64 * 1024
MAX_IDS = 1000


class _Sink:
    """A write-only, unseekable buffer: zipfile writes into it, the generator drains it.

    Having no ``seek``, it makes zipfile write data descriptors after each
    member instead of seeking back to patch the local headers.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def write(self, data: bytes) -> int:
        """Append bytes; returns how many."""
        self._buf += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        """Bytes written so far (zipfile records member offsets with it)."""
        return self._pos

    def flush(self) -> None:
        """Nothing to flush: the generator drains the buffer."""

    @property
    def pending(self) -> int:
        """Bytes written and not yet drained."""
        return len(self._buf)

    def drain(self) -> bytes:
        """Take what was written since the last drain."""
        out = bytes(self._buf)
        self._buf.clear()
        return out


@dataclass(frozen=True)
class Member:
    """One file of the archive: its name inside, the blob it comes from, its size and time."""

    name: str
    path: Path
    size: int
    date_time: tuple[int, int, int, int, int, int]


def plan(store: Store, records: Iterable[Record]) -> list[Member]:
    """Archive members for records, in order, with names that never clash.

    Names are the original file name (extension per the real type), else
    ``<YYYY-MM-DD>_<id>.<ext>``; a repeated name becomes ``name (2).ext``.
    """
    members: list[Member] = []
    taken: set[str] = set()
    for record in records:
        name = download_name(record) if record.original_filename else None
        if name is None:
            y, m, d = store.layout.day(record.created_at)
            name = f"{y}-{m}-{d}_{record.id}.{record.ext}"
        stem, _, ext = name.rpartition(".")
        n = 1
        while name.lower() in taken:
            n += 1
            name = f"{stem} ({n}).{ext}"
        taken.add(name.lower())
        created = record.created_at
        date_time = (
            max(int(created[0:4]), 1980), int(created[5:7]), int(created[8:10]),
            int(created[11:13]), int(created[14:16]), int(created[17:19]),
        )
        members.append(Member(name, store.blobs.path(record.sha256), record.bytes, date_time))
    return members


def stream_zip(members: list[Member]) -> Iterator[bytes]:
    """Yield a ZIP (stored, not compressed: images are compressed already) of the members."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[arg-type]
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time=member.date_time)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = member.size
            info.external_attr = 0o644 << 16
            with open(member.path, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    if sink.pending >= CHUNK:
                        yield sink.drain()
            if sink.pending:
                yield sink.drain()
    yield sink.drain()
