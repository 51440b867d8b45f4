"""fsck: check every record against its blob, projection, thumbnail and manifest; repair.

The sidecar is the truth for one record. For each user, under that user's
lock, every file in ``outputs/users/<u>`` and ``trash/users/<u>`` is put in
its place: sidecars, projections (``<id>.<ext>``), thumbnails, temps, plain
files. Then each id is checked, and with ``repair`` fixed without losing
data, in this order: finish a logged purge; move files to where the
sidecar's status says (an interrupted trash or restore); bring a missing
blob back from a projection holding its bytes, or move the sidecar to
``quarantine/records/`` and report the record lost; re-create a missing
projection or thumbnail from the blob; remove thumbnails without a
sidecar and projections that are provably ours (a hardlink of the blob, a
symlink into blobs/, a leftover of a logged purge or move), adopt any other
image file without a sidecar. Last, the manifest is rebuilt from the
sidecars when it disagrees with them, and stray temps are removed.
Unfinished merges and gc runs are finished first.

``scrub`` re-hashes the referenced blobs (blake3 recorded at ingest, sha256
on demand); a damaged blob is quarantined, never deleted.
"""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from . import safefs, sidecars
from .atomic import remove, write_file
from .blobs import FileBlobStore, digest
from .errors import CasvaultError, IntegrityError, LockBusy, NotFound
from .jobruns import recorded, scrub_of_every_user
from .manifest import ManifestState, replay
from .records import Record, decode_record, encode_record
from .store import Store
from .validate import MIME_BY_EXT, is_id, is_user_id

TEMP_AGE = 3600.0  # tmp/ files younger than this may belong to a write in progress
GC_RUNNING = "a gc is running: the blobs it set aside are left to it"
IMAGE_EXTS = tuple(MIME_BY_EXT)  # every extension a record may have (videos too)
# The kinds of problem, in the order they are repaired within one user.
KINDS = (
    "merge_unfinished",
    "gc_unfinished",
    "bad_sidecar",
    "duplicate_sidecar",
    "purge_unfinished",
    "misplaced",
    "blob_damaged",
    "blob_missing",
    "projection_missing",
    "projection_damaged",
    "stray_projection",
    "thumb_missing",
    "orphan_projection",
    "orphan_thumb",
    "unadopted",
    "manifest_corrupt",
    "manifest_torn",
    "manifest_missing",
    "manifest_extra",
    "manifest_stale",
    "stray_temp",
    "foreign",
)

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]


@dataclass
class Problem:
    """One thing found wrong, and whether it was repaired."""

    kind: str
    detail: str
    user: str | None = None
    id: str | None = None
    path: str | None = None
    repaired: bool = False
    lost: bool = False  # the record's image is gone (its sidecar is kept in quarantine/records)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        data = {
            "kind": self.kind, "user": self.user, "id": self.id, "path": self.path,
            "detail": self.detail, "repaired": self.repaired,
        }
        if self.lost:
            data["lost"] = True
        return data


@dataclass
class Report:
    """What fsck found; ``remaining`` is the re-check after a repair."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    remaining: list[Problem] | None = None
    notes: list[str] = field(default_factory=list)  # what was left alone on purpose, and why

    @property
    def clean(self) -> bool:
        """True when nothing is (left) wrong and no image was lost in this run."""
        return not (self.problems if self.remaining is None else self.remaining) and not self.lost

    @property
    def lost(self) -> list[Problem]:
        """The records whose image is gone (each names its user and id)."""
        return [p for p in self.problems if p.lost]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON: ``{"problems": [...], "checked": {...}, "clean": bool}``."""
        data: dict[str, Any] = {
            "clean": self.clean,
            "problems": [p.as_dict() for p in self.problems],
            "checked": self.checked,
        }
        if self.remaining is not None:
            data["remaining"] = [p.as_dict() for p in self.remaining]
        if self.lost:
            data["lost"] = [{"user": p.user, "id": p.id} for p in self.lost]
        if self.notes:
            data["notes"] = self.notes
        return data


# --- reading what is there ----------------------------------------------------


@dataclass
class UserFiles:
    """Every file of one user in outputs/ and trash/, sorted by what it is."""

    sidecars: dict[str, list[Path]] = field(default_factory=dict)
    images: dict[str, list[Path]] = field(default_factory=dict)
    thumbs: dict[str, list[Path]] = field(default_factory=dict)
    temps: list[Path] = field(default_factory=list)
    plain: list[Path] = field(default_factory=list)
    strays: list[Path] = field(default_factory=list)
    foreign: list[tuple[Path, str]] = field(default_factory=list)  # (path, why): never read, set aside on repair


def _our_link(store: Store, path: Path) -> bool:
    """True for a relative symlink into blobs/ (a projection in symlink link mode)."""
    try:
        target = os.readlink(path)
    except OSError:
        return False
    if os.path.isabs(target):
        return False
    resolved = os.path.normpath(os.path.join(path.parent, target))
    return resolved.startswith(str(store.layout.blobs) + os.sep)


def scan_user(store: Store, owner: str) -> UserFiles:
    """Sort every entry under the user's outputs/ and trash/ folders (never following a symlink).

    Symlinks other than our own projections, FIFOs, devices and sockets go
    to ``foreign``; nothing is opened here.
    """
    files = UserFiles()
    legacy: list[Path] = []
    for trashed in (False, True):
        for folder, _dirnames, filenames, foreign in safefs.walk(store.layout.user_base(owner, trashed)):
            for entry in foreign:
                name = entry.path.name
                stem, _, ext = name.rpartition(".")
                if (entry.kind == "symlink" and is_id(stem) and ext in IMAGE_EXTS and folder.name != "thumb"
                        and _our_link(store, entry.path)):
                    files.images.setdefault(stem, []).append(entry.path)
                else:
                    files.foreign.append((entry.path, entry.reason))
            for name in filenames:
                path = folder / name
                stem, _, ext = name.rpartition(".")
                if name.startswith(".") and ext == "tmp":
                    files.temps.append(path)
                elif folder.name == "thumb":
                    (files.thumbs.setdefault(stem, []) if is_id(stem) else files.strays).append(path)
                elif is_id(stem) and ext == "json":
                    files.sidecars.setdefault(stem, []).append(path)
                elif is_id(stem) and ext in IMAGE_EXTS:
                    files.images.setdefault(stem, []).append(path)
                elif trashed:
                    files.strays.append(path)
                elif ext == "json":
                    legacy.append(path)
                else:
                    files.plain.append(path)
    plain_stems = {p.with_suffix("") for p in files.plain}
    files.strays.extend(p for p in legacy if p.with_suffix("") not in plain_stems)
    return files


def _agrees(a: Record, b: Record) -> bool:
    """True when the manifest's view of a record matches its sidecar in what readers use."""
    return (a.kind, a.owner, a.status, a.sha256, a.created_at, a.tags, a.favorite, a.thumb) == (
        b.kind, b.owner, b.status, b.sha256, b.created_at, b.tags, b.favorite, b.thumb
    )


def _read_record(path: Path) -> tuple[Record | None, bool, str]:
    """(record, is_legacy_json, why it is not a record) of a sidecar-named file.

    A JSON object with our record's own fields (``owner``, ``sha256``) that
    does not pass is a bad sidecar, not an older app's JSON.
    """
    try:
        raw = safefs.read_regular(path, safefs.JSON_MAX_BYTES)
    except (OSError, CasvaultError) as exc:
        return None, False, getattr(exc, "message", None) or str(exc)
    try:
        return decode_record(raw), False, ""
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        why = str(exc)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None, False, why
    legacy = isinstance(data, dict) and not ("owner" in data and "sha256" in data)
    return None, legacy, why


def _file_sha256(path: Path, max_bytes: int = 1 << 62) -> str | None:
    """sha256 of a regular file (never following a symlink); None when unreadable or not a regular file."""
    try:
        return digest(safefs.read_regular(path, max_bytes))
    except (OSError, CasvaultError):
        return None


# --- checking one user ---------------------------------------------------------


class _UserCheck:
    """Check (and repair) one user's files under that user's lock."""

    def __init__(self, store: Store, owner: str, report: Report, repair: bool, only: set[str] | None,
                 blob_owners: Callable[[], dict[str, set[str]]] | None = None) -> None:
        self.store = store
        self.blob_owners = blob_owners
        self._shas: set[str] | None = None  # the blobs this user's manifest names (read once, when needed)
        self.layout = store.layout
        self.owner = owner
        self.report = report
        self.repair = repair
        self.only = only
        self.changed = False  # a sidecar was removed or moved: the manifest must follow
        self.records = 0

    def want(self, kind: str) -> bool:
        """True when this kind of problem is checked in this run."""
        return self.only is None or kind in self.only

    def problem(self, kind: str, detail: str, rid: str | None = None, path: Path | None = None) -> Problem | None:
        """Record a problem; returns it when it should be repaired now."""
        if not self.want(kind):
            return None
        p = Problem(kind, detail, self.owner, rid, str(path) if path else None)
        self.report.problems.append(p)
        return p if self.repair else None

    def run(self) -> bool:
        """Check every file; returns True when the manifest must be rebuilt (repair mode)."""
        files = scan_user(self.store, self.owner)
        for path, why in files.foreign:
            self._foreign(path, why)  # NOTE: first: a link swapped in for a projection goes before it is re-made
        state = replay(self.layout.manifest_path(self.owner), self.owner)
        truth: dict[str, Record] = {}
        legacy_ids: set[str] = set()
        for rid in sorted(set(files.sidecars) | set(files.images) | set(files.thumbs)):
            found = self._truth(rid, files, legacy_ids)
            if found is None:
                if rid not in legacy_ids:
                    self._orphans(rid, files, state)
                continue
            record, at = found
            if rid in state.purged:
                fix = self.problem("purge_unfinished", "purged in the manifest, files still there", rid)
                if fix:
                    self.store.remove_files(record)
                    fix.repaired = self.changed = True
                    continue
                if self.want("purge_unfinished"):
                    continue
            self.records += 1
            if self._check_record(record, at, files):
                truth[rid] = record
        self._plain(files, legacy_ids)
        for path in files.temps:
            fix = self.problem("stray_temp", "temporary file left by an interrupted write", path=path)
            if fix:
                fix.repaired = True
                remove(path)
        for path in files.strays:
            self._foreign(path, "a file casvault does not know")
        return self._manifest(state, truth)

    def _foreign(self, path: Path, why: str) -> None:
        """Report a file another program left; with repair, set it aside (never deleted)."""
        fix = self.problem("foreign", f"{why}; set aside under quarantine/foreign on repair", path=path)
        if fix:
            fix.detail = f"{why}; moved to {safefs.set_aside(self.layout.root, path, why)}"
            fix.repaired = True

    def _truth(self, rid: str, files: UserFiles, legacy_ids: set[str]) -> tuple[Record, Path] | None:
        """The record of ``rid`` and its sidecar's path; bad or duplicate sidecars are dealt with."""
        valid: list[tuple[Path, Record]] = []
        for path in files.sidecars.get(rid, []):
            record, legacy, why = _read_record(path)
            if record is not None and record.id == rid and record.owner == self.owner:
                claim = sidecars.refusal(record) or self._claims_foreign_blob(record, files)
                if claim is None:
                    valid.append((path, record))
                    continue
                why = claim
            elif record is None and legacy and path.is_relative_to(self.layout.outputs):
                legacy_ids.add(rid)  # an older app's JSON named like an id: adopted with its image
                continue
            elif record is None:
                why = f"does not parse as a record ({why})"
            else:
                why = f"names {record.owner}/{record.id}"
            fix = self.problem("bad_sidecar", f"sidecar {why}; moved to quarantine/records", rid, path)
            if fix:
                fix.repaired = True
                self._quarantine_sidecar(path)
                self.changed = True
        if not valid:
            return None
        valid.sort(key=lambda pr: pr[0] != self.layout.sidecar_path(pr[1]))
        path, record = valid[0]
        for other, _ in valid[1:]:
            fix = self.problem("duplicate_sidecar", f"a second sidecar; {path} is kept", rid, other)
            if fix:
                fix.repaired = True
                remove(other)
        return record, path

    def _claims_foreign_blob(self, record: Record, files: UserFiles) -> str | None:
        """Why a sidecar naming another user's blob without its bytes is refused (:mod:`casvault.sidecars`)."""
        if self.blob_owners is None:
            return None
        if self._shas is None:
            self._shas = {r.sha256 for r in replay(self.layout.manifest_path(self.owner), self.owner).records.values()}
        return sidecars.blob_claim(self.store, record, self._shas, files.images.get(record.id, []), self.blob_owners)

    def _check_record(self, record: Record, at: Path, files: UserFiles) -> bool:
        """Check one record with a valid sidecar; False when it was found lost (and removed)."""
        rid = record.id
        layout = self.layout
        image, sidecar, thumb = layout.paths(record)
        if at != sidecar:
            fix = self.problem("misplaced", f"status {record.status!r} but files are elsewhere", rid, at)
            if fix:
                self._move_home(record, at)
                fix.repaired = self.changed = True
            elif self.want("misplaced"):
                return True
        if not self._check_blob(record, files):
            return False
        self._check_projection(record, image)
        self._remove_strays(files.images.get(rid, []), image, rid, "stray_projection", "a second projection of this record")
        if record.thumb and not thumb.is_file():
            fix = self.problem("thumb_missing", "thumbnail missing", rid, thumb)
            if fix:
                from .thumbjob import write_thumbnail

                write_thumbnail(self.store, record)
                fix.repaired = True
        self._remove_strays(files.thumbs.get(rid, []), thumb, rid, "orphan_thumb", "a thumbnail outside the record's folder")
        return True

    def _remove_strays(self, paths: list[Path], keep: Path, rid: str, kind: str, detail: str) -> None:
        """Report (and with --repair remove) copies of a record's file found outside ``keep``."""
        for path in paths:
            if path != keep and os.path.lexists(path):
                fix = self.problem(kind, detail, rid, path)
                if fix:
                    fix.repaired = True
                    remove(path)

    def _move_home(self, record: Record, at: Path) -> None:
        """Finish an interrupted trash/restore: image and thumb, then sidecar, to where the status says."""
        image, sidecar, thumb = self.layout.paths(record)
        sources = {at.parent, self.layout.record_dir(record, record.status != "trash")}
        for folder in sources:
            for src, dst in ((folder / image.name, image), (folder / (record.thumb or "thumb/-"), thumb)):
                if src == dst or not os.path.lexists(src):
                    continue
                if os.path.lexists(dst):
                    remove(src)
                    continue
                safefs.make_dirs(self.layout.root, dst.parent)
                os.replace(src, dst)
        safefs.make_dirs(self.layout.root, sidecar.parent)
        write_file(sidecar, encode_record(record), self.layout.tmp, fsync=self.store.config.fsync)
        remove(at)

    def _check_blob(self, record: Record, files: UserFiles) -> bool:
        """The blob exists with the record's size, else is recovered from a projection or the record is lost."""
        blobs = self.store.blobs
        rid = record.id
        path = blobs.path(record.sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = None
        if size == record.bytes:
            return True
        if size is not None:
            fix = self.problem("blob_damaged", f"blob has {size} bytes, the record says {record.bytes}", rid, path)
            if fix:
                where = blobs.quarantine(record.sha256, "size mismatch")
                fix.detail += f"; quarantined to {where}"
                fix.repaired = True
        source = next(
            (p for p in files.images.get(rid, []) if _file_sha256(p) == record.sha256), None
        )
        if source is not None:
            fix = self.problem("blob_missing", f"blob missing; its bytes are in {source.name}", rid, path)
            if fix:
                blobs.put(safefs.read_regular(source, record.bytes), record.sha256)
                fix.repaired = True
            return True
        fix = self.problem("blob_missing", "blob missing and no projection holds its bytes: image lost", rid, path)
        if self.want("blob_missing"):
            self.report.problems[-1].lost = True
        if fix:
            for p in files.images.get(rid, []) + files.thumbs.get(rid, []):
                remove(p)
            for trashed in (False, True):
                side = self.layout.sidecar_path(record, trashed)
                if side.exists():
                    self._quarantine_sidecar(side)
            # NOTE: never "repaired": the image is gone until `casvault restore` brings it back.
            fix.detail += "; sidecar moved to quarantine/records (casvault restore puts it back from a backup)"
            self.changed = True
            return False
        return True

    def _check_projection(self, record: Record, image: Path) -> None:
        blob = self.store.blobs.path(record.sha256)
        if not image.exists():  # missing, or a dangling symlink
            fix = self.problem("projection_missing", "projection missing", record.id, image)
        else:
            st = image.stat()
            same = os.path.samefile(image, blob) if blob.exists() else False
            if same or (st.st_size == record.bytes and not image.is_symlink()):
                return
            fix = self.problem("projection_damaged", f"projection has {st.st_size} bytes, not the blob's", record.id, image)
        if fix:
            if blob.exists():
                self.store.project(record, image)
                fix.repaired = True

    def _orphans(self, rid: str, files: UserFiles, state: ManifestState) -> None:
        """Projections and thumbnails of an id without a sidecar (thumbnails first: an adoption makes its own).

        Only a file that is provably ours is removed: a leftover of a logged
        purge or move, a hardlink of a blob, a symlink into blobs/ (or one
        without a target). Any other image file is another program's and is
        adopted (its bytes dedupe through the blob store), never deleted.
        """
        for path in files.thumbs.get(rid, []):
            fix = self.problem("orphan_thumb", "thumbnail without a sidecar", rid, path)
            if fix:
                remove(path)
                fix.repaired = True
        logged = state.records.get(rid)
        for path in files.images.get(rid, []):
            why = self._ours(rid, path, state, logged.sha256 if logged is not None else None)
            if why is not None:
                fix = self.problem("orphan_projection", f"projection without a sidecar ({why}); removed", rid, path)
                if fix:
                    remove(path)
                    fix.repaired = True
                continue
            if path.is_relative_to(self.layout.outputs):
                fix = self.problem("orphan_projection", "an image without a sidecar, not a link to a blob; adopted",
                                   rid, path)
                if fix:
                    from .adopt import adopt_file

                    result = adopt_file(self.store, path, locked=True)
                    fix.repaired = result.status != "failed"
                    fix.detail += f" ({result.status}{': ' + result.reason if result.reason else ''})"
                    self.changed = True
                continue
            fix = self.problem("orphan_projection", "trashed projection without a sidecar; bytes kept as a blob", rid, path)
            if fix:
                cfg = self.store.config
                data = safefs.read_regular(path, max(cfg.max_upload_bytes, cfg.max_video_bytes))
                self.store.blobs.put(data, digest(data))
                remove(path)
                fix.repaired = True

    def _ours(self, rid: str, path: Path, state: ManifestState, logged_sha: str | None) -> str | None:
        """Why a sidecar-less ``<id>.<ext>`` file is provably a projection of ours; None when it may not be."""
        if rid in state.purged:
            return "purged"
        if rid in state.moved_out:
            return "moved to another user"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            if not path.exists():
                return "a link without a target"  # NOTE: a dangling link holds no bytes to lose
            blobs_dir = os.path.realpath(self.layout.root / "blobs")
            return "a link to a blob" if os.path.realpath(path).startswith(blobs_dir + os.sep) else None
        if st.st_nlink < 2 or not isinstance(self.store.blobs, FileBlobStore):
            return None  # NOTE: a copy (copy link mode) cannot be told from another program's file
        def is_blob(sha: str | None) -> bool:
            try:
                blob = os.stat(self.store.blobs.path(sha)) if sha else None
            except FileNotFoundError:
                return False
            return blob is not None and (blob.st_ino, blob.st_dev) == (st.st_ino, st.st_dev)

        if is_blob(logged_sha) or is_blob(_file_sha256(path)):
            return "a hardlink of its blob"
        return None

    def _plain(self, files: UserFiles, legacy_ids: set[str]) -> None:
        """Files dropped by other programs: adopted on repair."""
        plain = list(files.plain)
        for rid in sorted(legacy_ids):
            plain.extend(p for p in files.images.get(rid, []) if p.is_relative_to(self.layout.outputs))
        for path in plain:
            why = _why_not_adoptable(path)
            if why is not None:
                self._foreign(path, why)
                continue
            fix = self.problem("unadopted", "a plain file not yet in the store (casvault reindex --adopt)", path=path)
            if fix:
                from .adopt import adopt_file

                result = adopt_file(self.store, path, locked=True)
                fix.repaired = result.status != "failed"
                fix.id = result.id
                if result.reason:
                    fix.detail += f": {result.reason}"
                if result.status == "failed" and os.path.lexists(path):
                    # NOTE: it can never be adopted (damaged, too large): set aside, so the next fsck is clean
                    fix.detail += f"; moved to {safefs.set_aside(self.layout.root, path, result.reason or 'failed')}"
                    fix.repaired = True
                self.changed = True

    def _manifest(self, state: ManifestState, truth: dict[str, Record]) -> bool:
        """Compare the manifest's replay with the sidecars; True when a rebuild is due."""
        path = self.layout.manifest_path(self.owner)
        disagree = False
        for lineno in state.bad_lines:
            disagree = True
            self.problem("manifest_corrupt", f"line {lineno} does not parse", path=path)
        if state.torn:
            fix = self.problem("manifest_torn", "the last line is torn (a crash during an append)", path=path)
            if fix and not self.changed:
                self.store.manifest(self.owner).repair_tail()
                fix.repaired = True
            elif fix:
                disagree = True
        for rid, record in truth.items():
            logged = state.records.get(rid)
            if logged is None:
                disagree = True
                self.problem("manifest_missing", "record has a sidecar but no manifest entry", rid, path)
            elif not _agrees(logged, record):
                disagree = True
                self.problem("manifest_stale", f"manifest says status {logged.status!r}, tags {logged.tags}", rid, path)
        for rid in state.records.keys() - truth.keys():
            disagree = True
            self.problem("manifest_extra", "manifest entry without a sidecar", rid, path)
        return self.repair and (disagree or self.changed)

    def _quarantine_sidecar(self, path: Path) -> None:
        dest = self.layout.root / "quarantine" / "records" / self.owner / f"{path.stem}.{int(time.time())}.json"
        safefs.make_dirs(self.layout.root, dest.parent)
        os.replace(path, dest)


# --- the whole store ----------------------------------------------------------


def _merge_journals(store: Store) -> list[Path]:
    folder = store.layout.meta / "merges"
    # NOTE: regular files only: a planted link or FIFO named like a journal is never read
    return [p for p in sorted(folder.glob("*.json")) if safefs.lkind(p) == "file"] if folder.is_dir() else []


def _stray_tmp(store: Store) -> list[Path]:
    cutoff = time.time() - TEMP_AGE
    found = []
    try:
        entries = list(os.scandir(store.layout.tmp))
    except FileNotFoundError:
        return found
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                found.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return found


def _scrub(store: Store, owners: list[str], use_sha256: bool, report: Report, progress: Progress | None) -> None:
    digests: dict[str, str | None] = {}
    for owner in owners:
        for _path, record in store.scan_sidecars(owner):
            if record is not None and (digests.get(record.sha256) is None):
                digests[record.sha256] = record.blake3
    todo = [(sha, b3) for sha, b3 in sorted(digests.items()) if store.blobs.has(sha)]

    def verify(item: tuple[str, str | None]) -> str | None:
        sha, b3 = item
        algo = "sha256" if use_sha256 or not b3 else "blake3"
        try:
            store.blobs.verify(sha, algo=algo, expected=b3)
        except IntegrityError as exc:
            return exc.message
        except NotFound:
            return None
        return None

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = zip(todo, pool.map(verify, todo))
        for (sha, _), damage in (progress(results, len(todo), "scrubbing") if progress else results):
            if damage:
                report.problems.append(Problem("blob_damaged", damage, path=str(store.blobs.path(sha))))
    report.checked["scrubbed"] = len(todo)


@recorded("scrub", when=scrub_of_every_user)
def check(
    store: Store,
    *,
    repair: bool = False,
    scrub: bool = False,
    use_sha256: bool = False,
    owners: Iterable[str] | None = None,
    only: set[str] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check the store (or some users); with ``repair``, fix and re-check.

    The report's ``clean`` is True only when nothing is (left) wrong.
    Raises LockBusy when a user's lock stays taken.
    """
    report = Report()
    if repair:
        _finish_interrupted(store, report, only)
    if owners is None:
        # NOTE: first, so that no user check reads through a planted link or FIFO (a manifest swapped for one).
        _check_foreign_top(store, report, repair, only)
    chosen = sorted(owners) if owners is not None else store.users()
    if scrub:
        _scrub(store, chosen, use_sha256, report, progress)
    _check_users(store, chosen, report, repair, only, progress)
    if owners is None:
        _check_global(store, report, repair, only)
    if repair:
        again = Report()
        if owners is None:
            _check_foreign_top(store, again, False, only)
        _check_users(store, chosen, again, False, only, None)
        if owners is None:
            _check_global(store, again, False, only)
        report.remaining = again.problems
    return report


def _finish_interrupted(store: Store, report: Report, only: set[str] | None) -> None:
    """Finish merges and gc runs a crash interrupted (they touch several users)."""
    from . import gc, merge

    if only is None or "merge_unfinished" in only:
        for journal in _merge_journals(store):
            p = Problem("merge_unfinished", "a merge was interrupted; finished now", path=str(journal))
            report.problems.append(p)
            try:
                merge.resume(store, journal)
                p.repaired = True
            except CasvaultError as exc:
                p.detail += f" (failed: {exc.message})"
    if (only is None or "gc_unfinished" in only) and gc.pending(store):
        try:
            with store.locks.job("gc"):
                restored = gc.recover_pending(store)
        except LockBusy:
            report.notes.append(GC_RUNNING)
            restored = 0
        if restored:
            report.problems.append(Problem("gc_unfinished", f"{restored} blobs put back from an interrupted gc",
                                           repaired=True))


def _check_users(
    store: Store, owners: list[str], report: Report, repair: bool, only: set[str] | None, progress: Progress | None
) -> None:
    records = 0
    items: Iterable[str] = progress(owners, len(owners), "checking") if progress else owners
    cache: dict[str, set[str]] | None = None

    def blob_owners() -> dict[str, set[str]]:
        nonlocal cache
        if cache is None:
            cache = sidecars.blob_owners(store)
        return cache

    for owner in items:
        with store.locks.user(owner):
            user_check = _UserCheck(store, owner, report, repair, only, blob_owners)
            rebuild = user_check.run()
        records += user_check.records
        if rebuild:
            store.rebuild_manifest(owner)
            for p in report.problems:
                if p.user == owner and p.kind.startswith("manifest_") and not p.repaired:
                    p.repaired = True
    report.checked.update(users=len(owners), records=records)


def _why_not_adoptable(path: Path) -> str | None:
    from .adopt import why_not_adoptable  # NOTE: adopt imports store, as fsck does; kept lazy like adopt_file

    return why_not_adoptable(path)


def _foreign_top(store: Store) -> list[tuple[Path, str]]:
    """Entries in outputs/, trash/ and meta/users/ that are not a user's real folder (or outputs/users itself)."""
    found: list[tuple[Path, str]] = []
    layout = store.layout
    for top in (layout.outputs, layout.trash):
        for _folder, dirs, files, foreign in _one_level(top):
            found += [(top / name, "not part of the store's layout") for name in files + [d for d in dirs if d != "users"]]
            found += [(f.path, f.reason) for f in foreign]
    for base in (layout.outputs / "users", layout.trash / "users", layout.meta / "users"):
        for _folder, dirs, files, foreign in _one_level(base):
            found += [(base / name, "not a user folder (the name is not a user id)")
                      for name in dirs if not is_user_id(name)]
            found += [(base / name, "a file where only user folders belong") for name in files]
            found += [(f.path, f.reason) for f in foreign]
    for user in store.users():
        path = layout.manifest_path(user)
        kind = safefs.lkind(path)
        if kind not in (None, "file"):
            found.append((path, f"the manifest is a {kind}, not a regular file"))
    return found


def _one_level(base: Path) -> Iterable[tuple[Path, list[str], list[str], list[safefs.Foreign]]]:
    for entry in safefs.walk(base):
        yield entry
        return


def _check_foreign_top(store: Store, report: Report, repair: bool, only: set[str] | None) -> None:
    """Report (and with repair set aside) what is not a user's real folder in outputs/, trash/, meta/users/."""
    if only is not None and "foreign" not in only:
        return
    for path, why in _foreign_top(store):
        p = Problem("foreign", f"{why}; set aside under quarantine/foreign on repair", path=str(path))
        report.problems.append(p)
        if repair:
            p.detail = f"{why}; moved to {safefs.set_aside(store.layout.root, path, why)}"
            p.repaired = True


def _check_global(store: Store, report: Report, repair: bool, only: set[str] | None) -> None:
    for journal in _merge_journals(store):
        if not repair and (only is None or "merge_unfinished" in only):
            report.problems.append(Problem("merge_unfinished", "a merge was interrupted (fsck --repair finishes it)",
                                           path=str(journal)))
    from . import gc

    if not repair and (only is None or "gc_unfinished" in only) and gc.pending(store):
        if gc.running(store):
            report.notes.append(GC_RUNNING)
        else:
            report.problems.append(Problem("gc_unfinished", "blobs set aside by an interrupted gc"))
    if only is None or "stray_temp" in only:
        for path in _stray_tmp(store):
            p = Problem("stray_temp", "temporary file older than an hour", path=str(path))
            report.problems.append(p)
            if repair:
                p.repaired = remove(path) or True
    report.checked["blobs"] = sum(1 for _ in store.blobs.iter())
