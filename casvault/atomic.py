"""Atomic, durable file writes: temp file in the store, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from . import faults
from .errors import StorageError, StorageFull

_FULL = (errno.ENOSPC, errno.EDQUOT)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or unlink in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(tmp_dir: Path, hint: str = "") -> Path:
    """A fresh, unique name in the store's tmp/ folder."""
    return tmp_dir / f"{uuid.uuid4().hex}{hint}.tmp"


def write_tmp(tmp_dir: Path, data: bytes | memoryview, *, mode: int = 0o644, fsync: bool = True, point: str = "") -> Path:
    """Write ``data`` to a new temp file, fsync it, and return its path.

    Raises StorageFull / StorageError (the temp file is removed first).
    """
    tmp = tmp_name(tmp_dir)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            if point:
                faults.point(point)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _unlink_quiet(tmp)
        raise storage_error(exc, "writing a temp file") from exc
    return tmp


def publish(tmp: Path, dest: Path, *, fsync: bool = True) -> None:
    """Rename ``tmp`` over ``dest`` (creating parents) and fsync the directory."""
    try:
        try:
            os.replace(tmp, dest)
        except FileNotFoundError:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        if fsync:
            fsync_dir(dest.parent)
    except OSError as exc:
        _unlink_quiet(tmp)
        raise storage_error(exc, f"publishing {dest.name}") from exc


def write_file(dest: Path, data: bytes, tmp_dir: Path, *, mode: int = 0o644, fsync: bool = True, point: str = "") -> None:
    """Atomically replace ``dest`` with ``data`` (tmp, fsync, rename, fsync dir)."""
    tmp = write_tmp(tmp_dir, data, mode=mode, fsync=fsync, point=point)
    publish(tmp, dest, fsync=fsync)


def storage_error(exc: OSError, doing: str) -> Exception:
    """Translate an OSError into StorageFull or StorageError."""
    if exc.errno in _FULL:
        return StorageFull(f"disk full while {doing}", errno=exc.errno)
    return StorageError(f"I/O error while {doing}: {exc.strerror or exc}", errno=exc.errno)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove(path: Path) -> bool:
    """Unlink ``path``; a missing file is success. Returns whether it existed."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
