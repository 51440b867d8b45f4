"""Projections: the layout the app expects, placed over the blob store.

A projection is a hardlink to its blob; where the filesystem refuses one
(EXDEV, EPERM, ENOTSUP) it falls back to a relative symlink, then to a copy.
Every other error is raised. EMLINK is answered by giving the blob a fresh
inode and linking to that.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from . import faults
from .atomic import fsync_dir, remove, storage_error

MODES = ("hardlink", "symlink", "copy")
FALLBACK_ERRNOS = frozenset({errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP})


def modes_for(setting: str) -> tuple[str, ...]:
    """The ordered modes to try for a CASVAULT_LINK_MODE setting."""
    if setting == "auto":
        return MODES
    return (setting,)


def _place(mode: str, blob: Path, tmp: Path) -> None:
    if mode == "hardlink":
        os.link(blob, tmp)
    elif mode == "symlink":
        os.symlink(os.path.relpath(blob, tmp.parent), tmp)
    else:
        shutil.copyfile(blob, tmp)
        os.chmod(tmp, 0o444)


def project_view(
    blob: Path,
    dest: Path,
    *,
    setting: str = "auto",
    fsync: bool = True,
    refresh_inode: Callable[[], Path] | None = None,
) -> str:
    """Place ``dest`` as a projection of ``blob``; return the mode used.

    Atomic: the link is made under a temp name beside ``dest`` and renamed
    over it. Raises StorageError/StorageFull on errors that are not a
    fallback case.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if "hardlink" in modes_for(setting) and same_file(blob, dest):
        return "hardlink"  # already projected: rename() between two links of one inode would do nothing
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    modes = modes_for(setting)
    last: OSError | None = None
    for mode in modes:
        try:
            try:
                faults.point(f"view.{mode}")
                _place(mode, blob, tmp)
            except OSError as exc:
                if mode == "hardlink" and exc.errno == errno.EMLINK and refresh_inode is not None:
                    blob = refresh_inode()
                    _place(mode, blob, tmp)
                else:
                    raise
        except OSError as exc:
            remove(tmp)
            if exc.errno in FALLBACK_ERRNOS:
                last = exc
                continue
            raise storage_error(exc, f"projecting {dest.name} ({mode})") from exc
        try:
            os.replace(tmp, dest)
            if os.path.lexists(tmp):  # NOTE: dest was already a link to the same inode
                os.unlink(tmp)
            if fsync:
                fsync_dir(dest.parent)
        except OSError as exc:
            remove(tmp)
            raise storage_error(exc, f"publishing {dest.name}") from exc
        return mode
    assert last is not None
    raise storage_error(last, f"projecting {dest.name}: no link mode in {modes} worked")


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same inode (a hardlink projection)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def detect_mode(blob_dir: Path, view_dir: Path, setting: str) -> str:
    """Probe which mode works between two folders (recorded in casvault.json)."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    view_dir.mkdir(parents=True, exist_ok=True)
    probe = blob_dir / f".probe-{uuid.uuid4().hex}"
    probe.write_bytes(b"probe")
    try:
        return project_view(probe, view_dir / f".probe-{uuid.uuid4().hex}", setting=setting, fsync=False)
    finally:
        remove(probe)
        for leftover in view_dir.glob(".probe-*"):
            remove(leftover)
