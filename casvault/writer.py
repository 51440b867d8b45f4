"""The one write path: blob → sidecar → projection and thumbnail → folders fsynced once → manifest line.

DESIGN.md 2. A write is acknowledged by its manifest line; until then every
file it made is taken back on failure (sidecar first), and a crash between
the steps is settled by ``fsck --repair`` from what the sidecar says. Each
caller names its fault points by a prefix: ``<point>.after_sidecar``,
``<point>.after_projection``, ``<point>.after_thumb``,
``<point>.before_manifest`` (new records) and ``<point>.after_sidecar``,
``<point>.after_move_<ext>`` (a record moving between outputs/ and trash/).
Callers hold the owner's lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from . import faults, safefs, sidecars
from .atomic import fsync_dir, publish, remove, storage_error, write_file, write_tmp
from .blobs import BlobStore, StagedBlob, background
from .errors import CasvaultError
from .layout import Layout
from .records import Event, Record
from .views import project_view

# (owner, *events, undo=...) -> None: appends the events to the owner's log (Store.log_events).
Log = Callable[..., None]


class Writer:
    """Writes records of one store in the one write order (see the module's docstring)."""

    def __init__(self, layout: Layout, blobs: BlobStore, log: Log, *, link_setting: str, fsync: bool) -> None:
        self.layout = layout
        self.blobs = blobs
        self.log = log
        self.link_setting = link_setting
        self.fsync = fsync

    def write(
        self,
        record: Record,
        event: Event,
        *,
        point: str,
        files: tuple[Path, Path | None] | None = None,
        thumb: bytes | None = None,
        blob: bytes | StagedBlob | None = None,
    ) -> bool:
        """Write a new record: its blob (when given), sidecar, projection, thumbnail, then ``event``'s line.

        ``files`` are the record's staged sidecar and thumbnail (:meth:`stage`),
        else ``thumb`` is the thumbnail's bytes (None: no thumbnail). Returns
        True when the blob was new. On failure before the line, the files are
        taken back and the error raised.
        """
        new_blob = False
        blob_dir = None
        if blob is not None:
            faults.point(f"{point}.before_blob")
            if isinstance(blob, StagedBlob):
                new_blob = blob.publish()
                blob_dir = self.blobs.path(record.sha256).parent if new_blob else None  # type: ignore[attr-defined]
            else:
                new_blob = self.blobs.put(blob, record.sha256)
            faults.point(f"{point}.after_blob")
        self._materialize_or_discard(record, files if files is not None else thumb, point, blob_dir=blob_dir)
        self.log(record.owner, event, undo=lambda: self.discard(record))
        return new_blob

    def move(self, old: Record, new: Record, event: Event, *, point: str) -> None:
        """Move a record between outputs/ and trash/ (sidecar rewritten first), then ``event``'s line; undone on failure."""
        self._move(old, new, point)
        faults.point(f"{point}.before_manifest")
        self.log(old.owner, event, undo=lambda: self._move(new, old, f"undo_{point}"))

    def place(
        self,
        record: Record,
        event: Callable[[], Event | None],
        *,
        point: str,
        sidecar: bool = True,
        thumb: Callable[[], bytes] | None = None,
        log: Log | None = None,
    ) -> None:
        """Write or finish a record whose blob is stored, each file durable on its own; no undo (adopt, merge).

        A rerun finishes what a crash left: the sidecar is written unless
        ``sidecar`` is False (it is already there), the projection is made
        unless it already is the blob, a missing thumbnail is made by
        ``thumb``; then ``event()`` (None: the log already has it, asked only
        now) is appended through ``log`` (default: the store's log).
        """
        image, side, thumb_path = self.layout.paths(record)
        if sidecar:
            safefs.make_dirs(self.layout.root, side.parent)
            sidecars.write_sidecar(self.layout, record, fsync=self.fsync)
            faults.point(f"{point}.after_sidecar")
        self.ensure_projection(record, image)
        faults.point(f"{point}.after_projection")
        if record.thumb and thumb is not None and not thumb_path.is_file():
            safefs.make_dirs(self.layout.root, thumb_path.parent)
            write_file(thumb_path, thumb(), self.layout.tmp, fsync=self.fsync)
        faults.point(f"{point}.after_thumb")
        line = event()
        faults.point(f"{point}.before_manifest")
        if line is not None:
            (log or self.log)(record.owner, line)

    def ensure_projection(self, record: Record, dest: Path) -> None:
        """Project the record's blob at ``dest`` unless ``dest`` already is the blob (same inode)."""
        # NOTE: rename() onto another link of the same inode succeeds without
        # doing anything, which would leave project_view's temp file behind.
        try:
            if os.path.samefile(dest, self.blobs.path(record.sha256)):  # type: ignore[attr-defined]
                return
        except OSError:
            pass
        self.project(record, dest)

    def stage(self, record: Record, thumb_bytes: bytes | None) -> tuple[Path, Path | None]:
        """Durable temp files of a record's sidecar and thumbnail, written side by side."""
        fsync = self.fsync
        job = None
        if thumb_bytes is not None:
            job = background().submit(write_tmp, self.layout.tmp, thumb_bytes, fsync=fsync, point="thumb.write")
        sidecar = None
        try:
            sidecar = sidecars.stage_sidecar(self.layout, record, fsync=fsync)
            return sidecar, job.result() if job is not None else None
        except BaseException:
            if sidecar is not None:
                remove(sidecar)
            if job is not None and job.exception() is None:
                remove(job.result())
            raise

    def _materialize(
        self,
        record: Record,
        files: tuple[Path, Path | None],
        point: str,
        blob_dir: Path | None = None,
    ) -> None:
        """Sidecar, then projection and thumbnail, in the record's folder, from durable temp files.

        The renames keep the write order; the folders (and ``blob_dir``, where
        a new blob was just renamed in) are fsynced once, after all of them.
        """
        image, sidecar, thumb = self.layout.paths(record)
        side_tmp, thumb_tmp = files
        try:
            safefs.make_dirs(self.layout.root, sidecar.parent)
        except OSError as exc:
            raise storage_error(exc, "creating a day folder") from exc
        publish(side_tmp, sidecar, fsync=False)
        faults.point(f"{point}.after_sidecar")
        self.project(record, image, fsync=False)
        faults.point(f"{point}.after_projection")
        folders = [blob_dir, sidecar.parent]
        if thumb_tmp is not None:
            try:
                safefs.make_dirs(self.layout.root, thumb.parent)
            except OSError as exc:
                raise storage_error(exc, "creating a thumb folder") from exc
            publish(thumb_tmp, thumb, fsync=False)
            faults.point(f"{point}.after_thumb")
            folders.append(thumb.parent)
        if self.fsync:
            # NOTE: every file was fsynced before its rename; one fsync per
            # folder after all the renames makes them durable before the
            # manifest line that acknowledges (on ext4 the first one commits
            # the journal for all). A power loss before it may keep a sidecar
            # and not its blob's name: fsck takes the bytes back from the
            # projection, and the write was never acknowledged.
            try:
                for folder in folders:
                    if folder is not None:
                        fsync_dir(folder)
            except OSError as exc:
                raise storage_error(exc, "syncing a folder") from exc

    def _materialize_or_discard(
        self, record: Record, files: tuple[Path, Path | None] | bytes | None, point: str, blob_dir: Path | None = None
    ) -> None:
        """:meth:`_materialize` (from staged files or thumbnail bytes); on failure the half-made files are taken away."""
        staged = files if isinstance(files, tuple) else self.stage(record, files)
        try:
            self._materialize(record, staged, point, blob_dir)
            faults.point(f"{point}.before_manifest")
        except Exception:
            self.discard(record)
            raise
        finally:
            if staged is not files:
                for tmp in staged:
                    if tmp is not None:
                        remove(tmp)  # NOTE: a no-op for the published ones

    def discard(self, record: Record) -> None:
        """Remove the files of a record that was never acknowledged, sidecar first; best effort."""
        # NOTE: sidecar first: a projection left without one is removed by
        # fsck, while a sidecar left without its projection would be adopted.
        image, sidecar, thumb = self.layout.paths(record)
        try:
            safefs.check_inside(self.layout.root, thumb)
        except CasvaultError:
            return  # NOTE: a folder on the way is a symlink: nothing of ours was written through it
        for path in (sidecar, image, thumb):
            try:
                remove(path)
            except OSError:
                pass

    def project(self, record: Record, dest: Path, *, fsync: bool | None = None) -> str:
        """Place the projection of a record's blob at ``dest``; returns the link mode used.

        ``fsync=False`` leaves the folder's fsync to the caller.
        """
        if not self.blobs.local:
            # NOTE: remote blobs have no local file to link to; the original is
            # served by a presigned redirect (original_url), the thumbnail stays local.
            return "remote"
        return project_view(
            self.blobs.path(record.sha256),
            dest,
            setting=self.link_setting,
            fsync=self.fsync if fsync is None else fsync,
            refresh_inode=lambda: self.blobs.refresh_inode(record.sha256),
        )

    def _move(self, old: Record, new: Record, point: str) -> None:
        """Rewrite the sidecar with the new status, then move image, thumb, sidecar together.

        The sidecar's status says where the files belong, so a crash between
        the steps is finished by ``fsck --repair``.
        """
        src_image, src_sidecar, src_thumb = self.layout.paths(old)
        dst_image, dst_sidecar, dst_thumb = self.layout.paths(new)
        for path in (src_thumb, dst_thumb):
            safefs.check_inside(self.layout.root, path)
        sidecars.write_sidecar(self.layout, new, fsync=self.fsync, at=src_sidecar, point="sidecar.write")
        faults.point(f"{point}.after_sidecar")
        moved_dirs: set[Path] = set()
        for src, dst in ((src_image, dst_image), (src_thumb, dst_thumb), (src_sidecar, dst_sidecar)):
            try:
                try:
                    os.replace(src, dst)
                except FileNotFoundError:
                    if not src.parent.exists() and src.exists():
                        raise
                    if not os.path.lexists(src):
                        if src is src_sidecar:
                            raise
                        continue  # e.g. no thumbnail: nothing to move
                    safefs.make_dirs(self.layout.root, dst.parent)
                    os.replace(src, dst)
            except OSError as exc:
                raise storage_error(exc, f"moving {src.name}") from exc
            moved_dirs.update((src.parent, dst.parent))
            faults.point(f"{point}.after_move_{dst.suffix.lstrip('.')}")
        if self.fsync:
            for d in moved_dirs:
                fsync_dir(d)
