"""The blob store seam and its filesystem implementation.

Every original is kept once under ``blobs/sha256/<h[0:2]>/<h[2:4]>/<h>``,
read-only (0444), never modified. Keys are sha256 hex digests. The store is
given the digest; it re-checks it on demand and quarantines a mismatch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple, Protocol

import blake3 as _blake3

from . import faults
from .atomic import fsync_dir, publish, remove, storage_error, write_tmp
from .errors import IntegrityError, InvalidInput, NotFound

SHA256_RE = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


class BlobInfo(NamedTuple):
    """One stored blob as listed by :meth:`BlobStore.iter`."""

    sha256: str
    size: int
    mtime: float


class BlobStore(Protocol):
    """What the rest of casvault needs from a blob store (filesystem or S3)."""

    # True when blobs are files on this machine: records get a projection
    # (a link to the blob) and ingest stages the blob while it validates.
    local: bool

    def has(self, sha256: str) -> bool: ...
    def put(self, data: bytes, sha256: str) -> bool: ...
    def read(self, sha256: str) -> bytes: ...
    def open(self, sha256: str) -> BinaryIO: ...
    def size(self, sha256: str) -> int: ...
    def delete(self, sha256: str) -> bool: ...
    def iter(self) -> Iterator[BlobInfo]: ...
    def quarantine(self, sha256: str, reason: str) -> str: ...
    def presigned_url(self, sha256: str, expires: int = 3600, filename: str | None = None,
                      content_type: str | None = None, attachment: bool = False) -> str | None: ...


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase sha256 hex digest; raise InvalidInput."""
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value):
        raise InvalidInput("not a sha256 hex digest", field="sha256")
    return value


def digest(data: bytes | memoryview) -> str:
    """sha256 hex of ``data``."""
    return hashlib.sha256(data).hexdigest()


def blake3_digest(data: bytes | memoryview) -> str:
    """blake3 hex of ``data`` (fast scrub digest)."""
    return _blake3.blake3(data, max_threads=1).hexdigest()


def check_digest(blobs: BlobStore, sha256: str, got: str, algo: str, expected: str | None) -> str:
    """Return ``got`` if it is the blob's digest; else quarantine the blob and raise IntegrityError.

    ``expected`` is the recorded digest for ``algo`` other than sha256 (for
    sha256 the key itself is the expected digest); None skips the check.
    """
    want = sha256 if algo == "sha256" else expected
    if want is not None and got != want:
        where = blobs.quarantine(sha256, f"{algo} mismatch")
        raise IntegrityError(
            f"blob {sha256} is damaged ({algo} {got} != {want}); moved to {where}",
            expected=want,
            got=got,
            sha256=sha256,
        )
    return got


def hash_stream(fh: BinaryIO, algo: str) -> str:
    """Hex digest of a stream, from its current position, with ``algo`` ('sha256' or 'blake3')."""
    h = hashlib.sha256() if algo == "sha256" else _blake3.blake3()
    if isinstance(fh, (io.BufferedReader, io.FileIO)):
        # NOTE: a local file is read into one reused buffer per thread; both
        # hashes let go of the GIL, so fsck's threads hash side by side. A
        # read-only map (MAP_POPULATE) was ~15% slower for blake3 with two
        # threads: they queue on the process's mmap lock (bench scrub.*).
        buf = getattr(_buffers, "chunk", None)
        if buf is None:
            buf = _buffers.chunk = memoryview(bytearray(CHUNK))
        while n := fh.readinto(buf):
            h.update(buf[:n])
        return h.hexdigest()
    while chunk := fh.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


_buffers = threading.local()


_background: tuple[int, ThreadPoolExecutor] | None = None
_background_lock = threading.Lock()


def background() -> ThreadPoolExecutor:
    """This process's small thread pool for hashing and writing beside the caller's own work."""
    global _background
    with _background_lock:
        # NOTE: one pool per process id: a pool inherited through fork (gunicorn
        # workers, the thumbnails job's children) has no threads behind it.
        if _background is None or _background[0] != os.getpid():
            _background = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="casvault-blob"))
        return _background[1]


class StagedBlob:
    """An original written to a durable temp file in the background while the caller validates it.

    The sha256 digest is computed in the caller's thread (hashlib lets go
    of the GIL, so the background write starts at once); the blake3 digest
    beside the write. :meth:`publish` renames the temp file into place,
    :meth:`discard` drops what was not published.
    """

    def __init__(self, store: FileBlobStore, data: bytes) -> None:
        self._store = store
        pool = background()
        self._tmp: Future[Path] = pool.submit(self._write, data)
        self._b3: Future[str] = pool.submit(blake3_digest, data)
        # NOTE: not in the pool: a pool thread waits for the GIL while the
        # caller parses the image, and started the digest ~1 ms late.
        self.sha256 = digest(data)
        self._done = False

    def _write(self, data: bytes) -> Path:
        # NOTE: the fsync starts without waiting for the digest: an original
        # that turns out to be stored already costs a wasted write, a new one
        # (the common case) is durable sooner.
        try:
            faults.point("blob.write")
        except OSError as exc:
            raise storage_error(exc, "writing a blob") from exc
        return write_tmp(self._store.tmp_dir, data, mode=0o444, fsync=self._store.fsync, point="blob.write.data")

    def blake3(self) -> str:
        """The blake3 hex digest of the bytes (waits for it)."""
        return self._b3.result()

    def publish(self) -> bool:
        """Rename the durable temp file into place; True when the blob is new.

        An existing blob wins. The blob folder is not fsynced (see
        :meth:`FileBlobStore.stage`). Raises StorageFull / StorageError.
        """
        self._done = True
        dest = self._store.path(self.sha256)
        tmp = self._tmp.result()
        if dest.exists():
            remove(tmp)
            return False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            remove(tmp)
            raise storage_error(exc, "creating a blob folder") from exc
        publish(tmp, dest, fsync=False)
        faults.point("blob.after_publish")
        return True

    def discard(self) -> None:
        """Remove the temp file unless it was published; never raises."""
        if self._done:
            return
        self._done = True
        if self._tmp.exception() is None:  # NOTE: a failed write removed its own temp file
            with contextlib.suppress(OSError):
                remove(self._tmp.result())


class FileBlobStore:
    """Blobs as read-only files under ``<root>/blobs/sha256``."""

    local = True

    def __init__(self, root: Path, tmp_dir: Path, *, fsync: bool = True) -> None:
        self.base = root / "blobs" / "sha256"
        self.quarantine_dir = root / "quarantine" / "sha256"
        self.tmp_dir = tmp_dir
        self.fsync = fsync

    def presigned_url(self, sha256: str, expires: int = 3600, filename: str | None = None,
                      content_type: str | None = None, attachment: bool = False) -> None:
        """None: local blobs are served from their files, not by redirect."""
        return None

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives."""
        check_sha256(sha256)
        return self.base / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        """True when the blob is stored."""
        return self.path(sha256).is_file()

    def put(self, data: bytes, sha256: str) -> bool:
        """Store ``data`` under ``sha256`` unless already there; True when it was written.

        The caller hashed the bytes; an existing blob wins (same digest, same
        content). Raises StorageFull / StorageError; nothing is left behind.
        """
        dest = self.path(sha256)
        if dest.exists():
            return False
        try:
            faults.point("blob.write")
        except OSError as exc:
            raise storage_error(exc, "writing a blob") from exc
        tmp = write_tmp(self.tmp_dir, data, mode=0o444, fsync=self.fsync, point="blob.write.data")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            remove(tmp)
            raise storage_error(exc, "creating a blob folder") from exc
        publish(tmp, dest, fsync=self.fsync)
        faults.point("blob.after_publish")
        return True

    def stage(self, data: bytes) -> StagedBlob:
        """Start hashing ``data`` and writing it to a durable temp file in the background.

        The caller validates meanwhile, then publishes or discards it; see
        :class:`StagedBlob`. The blob folder's fsync is left to the caller
        (``fsync_dir(store.path(sha).parent)``) so it can share one with others.
        """
        return StagedBlob(self, data)

    def refresh_inode(self, sha256: str) -> Path:
        """Give a blob a fresh inode (after EMLINK: too many links to the old one).

        Existing projections keep the old inode; new ones link to the new.
        """
        src = self.path(sha256)
        tmp = self.tmp_dir / f"{sha256}.{os.getpid()}.{time.monotonic_ns()}.relink"
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o444)
            if self.fsync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
        except OSError as exc:
            remove(tmp)
            raise storage_error(exc, "copying a blob to a fresh inode") from exc
        publish(tmp, src, fsync=self.fsync)
        return src

    def read(self, sha256: str) -> bytes:
        """The blob's bytes; raises NotFound."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing", sha256=sha256) from None

    def open(self, sha256: str) -> BinaryIO:
        """An open binary file of the blob; raises NotFound."""
        try:
            return open(self.path(sha256), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing", sha256=sha256) from None

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; raises NotFound."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing", sha256=sha256) from None

    def delete(self, sha256: str) -> bool:
        """Remove the blob (gc only); a missing blob is success."""
        path = self.path(sha256)
        existed = remove(path)
        if existed and self.fsync:
            fsync_dir(path.parent)
        return existed

    def iter(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order."""
        if not self.base.is_dir():
            return
        for a in os.scandir(self.base):
            if not a.is_dir():
                continue
            for b in os.scandir(a.path):
                if not b.is_dir():
                    continue
                for entry in os.scandir(b.path):
                    if SHA256_RE.fullmatch(entry.name):
                        st = entry.stat()
                        yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def verify(self, sha256: str, *, algo: str = "sha256", expected: str | None = None) -> str:
        """Re-hash a blob; a mismatch quarantines it and raises IntegrityError."""
        with self.open(sha256) as fh:
            got = hash_stream(fh, algo)
        return check_digest(self, sha256, got, algo, expected)

    def quarantine(self, sha256: str, reason: str) -> str:
        """Move a damaged blob aside (never delete it); returns where it went."""
        src = self.path(sha256)
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        dest = self.quarantine_dir / f"{sha256}.{int(time.time())}"
        try:
            os.replace(src, dest)
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing", sha256=sha256) from None
        (dest.with_name(dest.name + ".reason")).write_text(reason + "\n")
        if self.fsync:
            fsync_dir(src.parent)
        return str(dest)

