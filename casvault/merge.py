"""Merging a guest's namespace into a member's: every record changes owner, once.

Per record, under both users' locks (taken in sorted order): the member's
sidecar (``owner`` = member, same status, so trash stays trash), the
projection, the thumbnail, a ``move`` line with the record in the member's
manifest; then the guest's sidecar, projection and thumbnail go and a
``move`` line without record ends the guest's entry.

Crash-safe and resumable: a journal ``meta/merges/<guest>.json`` is written
first and removed last (``fsck --repair`` finishes a merge it finds), and
every step is idempotent: the member's files are rewritten with the same
content, the member's line is appended only when its manifest does not hold
the id yet, and a record whose guest sidecar is gone only has its leftovers
cleaned. Rerunning after a crash at any step leaves each record exactly
once, under the member. Records the member already had are untouched, so
both histories are kept. Quotas are not applied to a merge.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from . import faults
from .atomic import remove, write_file
from .errors import Conflict, InvalidInput
from .manifest import replay
from .records import MoveEvent, Record, evolve, now_iso
from .store import Store
from .validate import ANON_RE, MEMBER_RE, check_user_id

Progress = Callable[[Iterable[Any], "int | None", str], Iterable[Any]]
_journal_decoder = msgspec.json.Decoder(dict)


@dataclass
class MergeReport:
    """What a merge did."""

    guest: str
    member: str
    records: int = 0
    moved: int = 0
    finished: int = 0  # leftovers of records moved by an interrupted run
    skipped: int = 0  # manifest entries without a sidecar that were never moved (see fsck)
    trash: int = 0
    dry_run: bool = False
    complete: bool = True  # False: stopped at its deadline, the journal stays for the next run

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def journal_path(store: Store, guest: str) -> Path:
    """``meta/merges/<guest>.json``."""
    return store.layout.meta / "merges" / f"{check_user_id(guest, 'anon_id')}.json"


def _check_pair(guest: str, member: str) -> None:
    check_user_id(guest, "anon_id")
    check_user_id(member, "member_id")
    if not ANON_RE.fullmatch(guest):
        raise InvalidInput("the merged user must be a guest (anon-<32 hex>)", field="anon_id")
    if not MEMBER_RE.fullmatch(member):
        raise InvalidInput("the target must be a member (u-...)", field="member_id")


def merge_users(store: Store, guest: str, member: str, *, dry_run: bool = False,
                progress: Progress | None = None, deadline: float | None = None) -> MergeReport:
    """Move every record of ``guest`` to ``member``; safe to rerun after a crash.

    With ``deadline`` (a ``time.monotonic()`` value) it stops after the
    record during which that passed, leaves the journal and reports
    ``complete=False``; the next run carries on.

    Raises InvalidInput (bad ids), Conflict (an unfinished merge of this
    guest into another member), LockBusy, StorageError.
    """
    _check_pair(guest, member)
    report = MergeReport(guest, member, dry_run=dry_run)
    journal = journal_path(store, guest)
    try:
        started = _journal_decoder.decode(journal.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        started = None
    if started is not None and started.get("member") != member:
        raise Conflict(f"an unfinished merge of {guest} into {started.get('member')} must be finished first",
                       id=guest)
    known = _guest_records(store, guest)
    report.records = len(known)
    report.trash = sum(1 for r in known.values() if r.status == "trash")
    if dry_run:
        return report
    if started is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        body = msgspec.json.encode({"guest": guest, "member": member, "started_at": now_iso()})
        write_file(journal, body, store.layout.tmp, fsync=store.config.fsync)
    faults.point("merge.after_journal")
    items: Iterable[Record] = list(known.values())
    if progress:
        items = progress(items, len(known), "merging")
    for n, record in enumerate(items, 1):
        with store.user_lock(guest, member):  # NOTE: taken in sorted order
            outcome = _move_one(store, record, member)
        if outcome == "moved":
            report.moved += 1
        elif outcome == "finished":
            report.finished += 1
        elif outcome == "skipped":
            report.skipped += 1
        # NOTE: checked after a record, so every run makes progress.
        if deadline is not None and n < len(known) and time.monotonic() > deadline:
            report.complete = False
            return report
    # NOTE: the records keep their ids, so the guest's share links follow them
    # (before the journal goes: a crash here is finished by the rerun).
    store.shares.move_all(guest, member)
    _remove_empty_dirs(store, guest)
    remove(journal)
    return report


def hand_over(store: Store, guest: str, member: str, *, lock_timeout: float = 10.0,
              seconds: float | None = None) -> MergeReport:
    """The sign-up handover: merge ``guest`` into ``member`` under both users' locks, held throughout.

    Run on the first request that carries both identities; a second run
    (another worker, a retry, the request after a crash) finds the journal
    and finishes it, or finds nothing left. A guest whose unfinished merge
    names another member has that merge finished first: it was started
    with that member's sign-in. Quotas are not applied (nothing is lost).
    With ``seconds``, a big history is moved in slices: the report says
    ``complete=False`` and the next run carries on. Raises LockBusy
    (another run holds the locks longer than ``lock_timeout``), StorageError.
    """
    deadline = time.monotonic() + seconds if seconds is not None else None
    _check_pair(guest, member)
    with store.user_lock(guest, member, timeout=lock_timeout):
        journal = journal_path(store, guest)
        if not journal.is_file() and not _guest_records(store, guest):
            return MergeReport(guest, member)  # nothing to hand over: no journal is written
        try:
            return merge_users(store, guest, member, deadline=deadline)
        except Conflict:
            resume(store, journal)
            return merge_users(store, guest, member, deadline=deadline)


def resume(store: Store, journal: Path) -> MergeReport:
    """Finish the merge a journal describes."""
    data = _journal_decoder.decode(journal.read_bytes())
    return merge_users(store, data["guest"], data["member"])


def _guest_records(store: Store, guest: str) -> dict[str, Record]:
    """The guest's records: every sidecar, plus manifest entries whose sidecar is already gone."""
    found: dict[str, Record] = {}
    for _path, record in store.scan_sidecars(guest):
        if record is not None and record.owner == guest:
            found[record.id] = record
    for rid, record in replay(store.layout.manifest_path(guest), guest).records.items():
        found.setdefault(rid, record)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].created_at, kv[0])))


def _move_one(store: Store, known: Record, member: str) -> str:
    """Move one record (both locks held); returns 'moved', 'finished', 'gone' or 'skipped'."""
    guest = known.owner
    now = store.current_sidecar(known)
    if now is None and store.logged(member, known.id) is None:
        return "skipped"  # a guest record without sidecar that was never moved: fsck's to judge
    if now is not None:
        record, guest_sidecar = now
        new = evolve(record, owner=member)
        moved = new

        def event() -> MoveEvent | None:
            # NOTE: asked after the member's files: a member without a manifest
            # gets it rebuilt from the sidecars here, the new one included.
            if store.logged(member, moved.id) is not None:
                return None
            return MoveEvent(at=now_iso(), id=moved.id, owner_from=guest, owner_to=member, record=moved)

        store.writer.place(new, event, point="merge", thumb=lambda: _guest_thumb(store, record))
        faults.point("merge.after_member_manifest")
        remove(guest_sidecar)
        faults.point("merge.after_guest_sidecar")
    store.remove_files(known, point=None)  # the guest's projection, thumbnail and sidecar, either place
    faults.point("merge.after_guest_files")
    logged = store.logged(guest, known.id) is not None
    if logged:
        store.log_events(guest, MoveEvent(at=now_iso(), id=known.id, owner_from=guest, owner_to=member))
    faults.point("merge.after_guest_manifest")
    if now is not None:
        return "moved"
    return "finished" if logged else "gone"


def _guest_thumb(store: Store, record: Record) -> bytes:
    """The guest's thumbnail bytes of ``record``, or a new one from its blob."""
    try:
        return store.layout.thumb_path(record).read_bytes()
    except FileNotFoundError:
        return store.thumbnailer.make(store.blobs.read(record.sha256))


def _remove_empty_dirs(store: Store, owner: str) -> None:
    for trashed in (False, True):
        base = store.layout.user_base(owner, trashed)
        for dirpath, _dirnames, _filenames in os.walk(base, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty
