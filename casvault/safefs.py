"""The one rule for files the store did not write itself (DESIGN.md 6).

Anything found under ``outputs/``, ``trash/``, ``meta/``, a backup folder,
a drop folder or a ComfyUI folder may have been put there by someone else.
It is opened without following a symlink (``O_NOFOLLOW``), without blocking
on a FIFO (``O_NONBLOCK``), accepted only when ``fstat`` says it is a
regular file, and read with a size cap. Folders are walked without following
symlinks; whatever is not a real folder or a regular file is handed back as
a :class:`Foreign` entry for the caller to report, never opened.

Every path the store writes, moves or deletes is first checked with
:func:`check_inside`: each folder between the root and the path must be a
real folder (``lstat``), not a symlink that leads out of the root.
:func:`make_dirs` creates missing folders the same way, and
:func:`set_aside` moves a foreign entry (the link itself, never its target)
to ``quarantine/foreign/`` with a note saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import TooLarge, UnsafeFile

JSON_MAX_BYTES = 16 << 20  # a sidecar, a legacy JSON, a backup's small files
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def kind_of(mode: int) -> str:
    """A short name for what a file mode says an entry is."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def why_not_regular(mode: int) -> str:
    """The reason a non-regular entry is refused, for reports."""
    kind = kind_of(mode)
    if kind == "symlink":
        return "a symlink (never followed)"
    return f"a {kind}, not a regular file"


def open_file(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading if it is a regular file: (file, stat); the caller closes the file.

    Never follows a symlink in the last component, never blocks on a FIFO,
    never opens a device. Raises UnsafeFile for anything but a regular
    file, FileNotFoundError when missing.
    """
    # NOTE: lstat first, so a device node is never even opened (opening one
    # can have effects); the fstat after the open catches a swap in between.
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise UnsafeFile(f"{path.name}: {why_not_regular(mode)}", path=str(path), kind=kind_of(mode))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # swapped for a symlink, or a socket
            raise UnsafeFile(f"{path.name}: not a regular file", path=str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path.name}: {why_not_regular(st.st_mode)}", path=str(path), kind=kind_of(st.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """:func:`open_file` as a context manager that closes the file."""
    fh, st = open_file(path)
    with fh:
        yield fh, st


def read_capped(fh: BinaryIO, st: os.stat_result, max_bytes: int, name: str = "the file") -> bytes:
    """The rest of an open regular file, refusing more than ``max_bytes``; raises TooLarge.

    Never allocates more than the file holds (a bigger cap than the file is free).
    """
    if st.st_size > max_bytes:
        raise TooLarge(f"{name} is larger than {max_bytes} bytes", limit=max_bytes)
    parts = [fh.read(st.st_size + 1)]
    total = len(parts[0])
    while total > st.st_size and parts[-1] and total <= max_bytes:  # NOTE: it grew after the fstat
        parts.append(fh.read(min(1 << 20, max_bytes + 1 - total)))
        total += len(parts[-1])
    if total > max_bytes:
        raise TooLarge(f"{name} is larger than {max_bytes} bytes", limit=max_bytes)
    return b"".join(parts)


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    Raises UnsafeFile (a symlink, FIFO, device, socket or folder), TooLarge,
    FileNotFoundError.
    """
    with open_regular(path) as (fh, st):
        return read_capped(fh, st, max_bytes, path.name)


@dataclass(frozen=True)
class Foreign:
    """An entry found in a walk that is neither a real folder nor a regular file."""

    path: Path
    kind: str  # "symlink", "FIFO", "device", "socket", ...

    @property
    def reason(self) -> str:
        """Why it was not read."""
        return "a symlink (never followed)" if self.kind == "symlink" else f"a {self.kind}, not a regular file"


def walk(base: Path) -> Iterator[tuple[Path, list[str], list[str], list[Foreign]]]:
    """Like ``os.walk`` top-down, but symlinks (to folders too) and special files come back as Foreign.

    Yields ``(folder, subfolders, regular files, foreign entries)``, names
    sorted; the caller may prune ``subfolders`` in place. A ``base`` that
    is not a real folder yields nothing (the caller checks it with
    :func:`lkind`).
    """
    try:
        if not stat.S_ISDIR(os.lstat(base).st_mode):
            return
    except FileNotFoundError:
        return
    stack = [base]
    while stack:
        folder = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        foreign: list[Foreign] = []
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry.name)
                else:
                    foreign.append(Foreign(Path(entry.path), kind_of(entry.stat(follow_symlinks=False).st_mode)))
            except FileNotFoundError:
                continue
        yield folder, dirs, files, foreign
        stack.extend(folder / d for d in reversed(dirs))


def lkind(path: Path) -> str | None:
    """What ``path`` itself is (not following a symlink); None when missing."""
    try:
        return kind_of(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def check_inside(root: Path, path: Path) -> Path:
    """Return ``path`` if every existing folder from ``root`` down to it is a real folder inside ``root``.

    ``path`` itself may be missing or a file; its parents are checked with
    ``lstat``, so a symlinked user, day or thumb folder is refused. Raises
    UnsafeFile.
    """
    root = Path(root)
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        raise UnsafeFile(f"{path} is outside the store root", path=str(path)) from None
    if ".." in rel.parts:
        raise UnsafeFile(f"{path} leaves the store root", path=str(path))
    current = root
    for part in rel.parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break
        if not stat.S_ISDIR(mode):
            raise UnsafeFile(
                f"{current} is {why_not_regular(mode) if stat.S_ISLNK(mode) else 'not a folder'}: "
                "refusing to write through it", path=str(current), kind=kind_of(mode))
    return path


def make_dirs(root: Path, folder: Path) -> Path:
    """Create ``folder`` and its missing parents below ``root``, refusing to pass through a symlink.

    Raises UnsafeFile, OSError.
    """
    check_inside(root, folder / "-")
    current = Path(root)
    for part in Path(folder).relative_to(root).parts:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise UnsafeFile(f"{current} is not a real folder: refusing to write through it",
                                 path=str(current)) from None
    return folder


def set_aside(root: Path, path: Path, reason: str) -> Path:
    """Move ``path`` (the entry itself, a link is never followed) to ``quarantine/foreign/`` with a note.

    The entry keeps its path relative to the root under a folder per run
    second; ``<name>.note`` beside it says where it was and why. Nothing is
    deleted. Returns where it went. Raises UnsafeFile when ``path`` is not
    inside the root through real folders.
    """
    root = Path(root)
    check_inside(root, path)
    rel = Path(path).relative_to(root)
    dest_dir = root / "quarantine" / "foreign" / time.strftime("%Y%m%dT%H%M%S") / rel.parent
    make_dirs(root, dest_dir)
    dest = dest_dir / rel.name
    n = 1
    while os.path.lexists(dest):
        dest = dest_dir / f"{rel.name}.{n}"
        n += 1
    os.rename(path, dest)
    note = dest.with_name(dest.name + ".note")
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"from: {rel.as_posix()}\nreason: {reason}\nat: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return dest
