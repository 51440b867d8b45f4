"""ComfyUI input staging: put a stored image where a LoadImage node can read it.

ComfyUI's LoadImage node reads files by name from its input folder
(``COMFY_INPUT_DIR``). :func:`stage_for_comfy` places a record's original
there under a fresh name, ``casvault_<record id>_<8 hex>.<ext>``;
:func:`release_staged` removes such names after the job and
:func:`cleanup_staged` sweeps leftovers of jobs that never released theirs.
Only names of that exact shape are ever touched, so the rest of ComfyUI's
input folder is safe from these functions.

How the file is placed (CASVAULT_STAGE_MODE):

- ``auto`` (the default): a reflink (the ``FICLONE`` ioctl: btrfs, XFS,
  bcachefs, ZFS 2.2+...), which shares the blocks copy-on-write, so no
  bytes are copied and a later write to the staged name can never reach the
  blob; where the filesystem has no reflinks (ext4, tmpfs, another
  filesystem), a plain copy.
- ``copy``: always a copy.
- ``hardlink``: a hardlink to the blob (else a symlink, else a copy). The
  staged name then *is* the blob's inode: a ComfyUI running as root that
  uploads onto that name (``/upload/image?overwrite=true``) rewrites the
  blob, which fsck then reports as ``blob_damaged``. Only for sites where
  ComfyUI cannot write to its input folder's existing files.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import fsync_dir, remove, storage_error
from .config import Config
from .errors import Conflict, InvalidInput
from .views import project_view

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "STAGED_NAME", "STAGE_MODES", "cleanup_staged", "input_dir_from", "is_staged_name", "release_staged", "stage_for_comfy",
]

log = logging.getLogger("casvault.staging")

STAGE_MODES = ("auto", "copy", "hardlink")
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
# What a filesystem (or a kernel) without reflinks answers to FICLONE.
_NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM,
                         errno.ENOSYS})

STAGED_NAME = re.compile(r"casvault_[0-9a-f]{32}_[0-9a-f]{8}\.(?:png|jpg|webp)")
# The temp name project_view links under before renaming; left only by a crash.
_STAGING_TMP = re.compile(r"\.casvault_[0-9a-f]{32}_[0-9a-f]{8}\.(?:png|jpg|webp)\.[0-9a-f]{12}\.tmp")


def is_staged_name(name: object) -> bool:
    """True when ``name`` is a bare file name that :func:`stage_for_comfy` could have made."""
    return isinstance(name, str) and STAGED_NAME.fullmatch(name) is not None


def input_dir_from(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """ComfyUI's input folder: CASVAULT_COMFY_INPUT_DIR, else COMFY_INPUT_DIR, else None."""
    env = os.environ if env is None else env
    return config.comfy_input_dir or env.get("COMFY_INPUT_DIR") or None


def _check_dir(comfy_input_dir: str | os.PathLike[str] | None) -> Path:
    """The input folder as a Path; raises InvalidInput if it is not an existing directory."""
    if comfy_input_dir is None or str(comfy_input_dir) == "":
        raise InvalidInput("no ComfyUI input folder given (set COMFY_INPUT_DIR)", field="comfy_input_dir")
    path = Path(comfy_input_dir)
    if not path.is_dir():
        raise InvalidInput(f"ComfyUI input folder {str(path)!r} is not a directory", field="comfy_input_dir")
    return path


def stage_for_comfy(store: Store, owner: str, record_id: str, comfy_input_dir: str | os.PathLike[str]) -> str:
    """Place ``owner``'s record in ComfyUI's input folder; return the name for a LoadImage node.

    The file is a hardlink to the record's blob where the filesystem allows,
    else a symlink, else a copy, made under a temp name and renamed into
    place. Any kind of record (generated, control, input) may be staged.
    Raises InvalidInput (bad owner, missing or non-directory input folder),
    NotFound (unknown id, or another owner's), Conflict (record in the
    trash), StorageError/StorageFull.
    """
    folder = _check_dir(comfy_input_dir)
    record = store.get(owner, record_id)
    if record.status != "active":
        raise Conflict("the image is in the trash", id=record_id)
    if not record.mime.startswith("image/"):
        raise InvalidInput("only images can be staged for LoadImage, not videos", field="id")
    name = f"casvault_{record.id}_{secrets.token_hex(4)}.{record.ext}"
    blob = store.blobs.path(record.sha256)
    # NOTE: CASVAULT_LINK_MODE is about outputs/ and is not read here.
    if store.config.stage_mode == "hardlink":
        mode = project_view(
            blob, folder / name, setting="auto", fsync=store.config.fsync,
            refresh_inode=lambda: store.blobs.refresh_inode(record.sha256),
        )
    else:
        mode = _clone_or_copy(blob, folder / name, reflink=store.config.stage_mode == "auto", fsync=store.config.fsync)
    log.info("staged %s for %s as %s (%s)", record.id, owner, name, mode)
    return name


def _clone_or_copy(blob: Path, dest: Path, *, reflink: bool, fsync: bool) -> str:
    """Place ``dest`` as a file of its own with the blob's bytes: a reflink where possible, else a copy.

    Made under a temp name, mode 0444, fsynced and renamed into place;
    returns "reflink" or "copy". Raises StorageError/StorageFull.
    """
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
    mode = "copy"
    try:
        with open(blob, "rb") as src, open(tmp, "xb") as out:
            cloned = False
            if reflink:
                try:
                    fcntl.ioctl(out.fileno(), FICLONE, src.fileno())
                    cloned = True
                except OSError as exc:
                    if exc.errno not in _NO_REFLINK:
                        raise
            if cloned:
                mode = "reflink"
            else:
                shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
        if fsync:
            fsync_dir(dest.parent)
    except OSError as exc:
        remove(tmp)
        raise storage_error(exc, f"staging {dest.name} ({mode})") from exc
    return mode


def release_staged(names: Iterable[object], comfy_input_dir: str | os.PathLike[str] | None) -> int:
    """Remove staged names from ComfyUI's input folder, best-effort; return how many were removed.

    A missing file is fine; a name that is not a staged name (a path, ``..``,
    anything else) is left alone; every error is logged, never raised.
    """
    if comfy_input_dir is None or not Path(comfy_input_dir).is_dir():
        log.warning("release_staged: ComfyUI input folder %r is not a directory", comfy_input_dir)
        return 0
    folder = Path(comfy_input_dir)
    removed = 0
    for name in names:
        if not is_staged_name(name):
            log.warning("release_staged: refusing %r: not a staged name", name)
            continue
        try:
            os.unlink(folder / str(name))
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("release_staged: could not remove %s: %s", name, exc.strerror or exc)
    return removed


def staged_age(st: os.stat_result, now: float) -> float:
    """Seconds since a staged entry was made, from its lstat result."""
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        # NOTE: a hardlink shares the blob's inode, so its mtime is when the
        # blob was written, possibly long before staging; making the link
        # updated the inode's ctime, so the later of the two is taken. A later
        # link to the same blob only makes the entry look younger, which errs
        # on the side of keeping it. A symlink or a copy has its own mtime.
        return now - max(st.st_mtime, st.st_ctime)
    return now - st.st_mtime


def cleanup_staged(comfy_input_dir: str | os.PathLike[str], older_than_hours: float, dry_run: bool = False) -> list[str]:
    """Remove staged names older than ``older_than_hours``; return the names (sorted).

    Only names of the staged shape (and temp names a crash left while
    staging) are considered, aged by the entry itself
    (lstat: a symlink's own time, not its target's). With ``dry_run`` nothing
    is removed. Raises InvalidInput for a missing folder or a negative age.
    """
    folder = _check_dir(comfy_input_dir)
    if older_than_hours < 0:
        raise InvalidInput("older_than_hours must not be negative", field="older_than_hours")
    limit = older_than_hours * 3600
    now = time.time()
    due: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not (is_staged_name(entry.name) or _STAGING_TMP.fullmatch(entry.name)):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # released meanwhile
            if staged_age(st, now) >= limit:
                due.append(entry.name)
    due.sort()
    if dry_run:
        return due
    done = []
    for name in due:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cleanup_staged: could not remove %s: %s", name, exc.strerror or exc)
            continue
        done.append(name)
    return done
