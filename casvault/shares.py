"""Share links: opaque, revocable, expiring tokens, each naming a row of a share table.

A token is ``secrets.token_urlsafe(24)`` (32 characters, 192 random bits):
it carries nothing, so it reveals neither the owner nor the image. The token
is also the share's id, which its owner uses to list and revoke it.

On disk (all written by the store, atomically, under the owner's lock):

- ``meta/users/<owner>/shares.json``: the owner's share table, a JSON list
  of rows ``{id, image, created_at, expires_at}``; the truth. Expired rows
  are dropped whenever the table is written.
- ``meta/shares/<token>``: a pointer holding the owner's id, so that a token
  finds its table. A pointer without a row is a dead link.

A link is alive while its row exists, has not expired, and the image is
active and was not trashed after the link was made (``trashed_at`` keeps
the last trashing, so a restore does not bring old links back). Revoking
removes the row, then the pointer.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import msgspec

from .atomic import remove, write_file
from .errors import Conflict, InvalidInput, NotFound
from .locks import Locks
from .records import Record
from .validate import check_user_id, is_id, is_user_id

DEFAULT_EXPIRES_IN = 7 * 24 * 3600
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 365 * 24 * 3600
MAX_LIVE_SHARES = 1000  # per user: bounds the table a request reads
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
_MAX_TABLE_BYTES = 1024 * 1024


def _now() -> float:
    """The clock used for expiry (tests patch it)."""
    return time.time()


class ShareRow(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One row of an owner's share table."""

    id: str
    image: str
    created_at: str  # ISO 8601 UTC, milliseconds: compared with the record's trashed_at
    expires_at: int  # seconds since the epoch


_table_decoder = msgspec.json.Decoder(list[ShareRow])
_table_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Share:
    """A share link: its token (also its id), whose image it shows, and until when."""

    id: str
    owner: str
    image: str
    created_at: str
    expires_at: int

    @property
    def expires_iso(self) -> str:
        """The expiry as ISO 8601 UTC."""
        return datetime.fromtimestamp(self.expires_at, timezone.utc).isoformat(timespec="seconds")

    @property
    def url(self) -> str:
        """The public address of the link."""
        return f"/s/{self.id}"

    def as_dict(self) -> dict[str, object]:
        """What the API shows the owner."""
        return {"id": self.id, "url": self.url, "image_id": self.image, "created_at": self.created_at,
                "expires_at": self.expires_iso}


def check_expires_in(value: object) -> int:
    """Seconds until expiry: an integer from 60 s to 365 days (None: 7 days).

    Raises InvalidInput.
    """
    if value is None:
        return DEFAULT_EXPIRES_IN
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("expires_in must be an integer number of seconds", field="expires_in")
    if not MIN_EXPIRES_IN <= value <= MAX_EXPIRES_IN:
        raise InvalidInput(
            f"expires_in must be between {MIN_EXPIRES_IN} and {MAX_EXPIRES_IN} seconds", field="expires_in"
        )
    return value


def alive(share: Share, record: Record) -> bool:
    """True while the shared record is active and was not trashed after the link was made."""
    return record.status == "active" and not (record.trashed_at and record.trashed_at >= share.created_at)


class Shares:
    """The share tables of one store root.

    ``get(owner, id, kind)`` is the store's record lookup (raising NotFound):
    a link is only as alive as its image.
    """

    def __init__(
        self, meta: Path, tmp: Path, locks: Locks, get: Callable[[str, str, str], Record], *, fsync: bool = True
    ) -> None:
        self.meta = meta
        self.tmp = tmp
        self.locks = locks
        self.get = get
        self.fsync = fsync

    # --- paths and files ------------------------------------------------------

    def table_path(self, owner: str) -> Path:
        """meta/users/<owner>/shares.json."""
        return self.meta / "users" / check_user_id(owner) / "shares.json"

    def pointer_path(self, token: str) -> Path:
        """meta/shares/<token> (the token was checked against TOKEN_RE)."""
        return self.meta / "shares" / token

    def _rows(self, owner: str) -> list[ShareRow]:
        """The owner's table as stored (a missing or damaged table reads as empty)."""
        data = _read_small(self.table_path(owner), _MAX_TABLE_BYTES)
        if data is None:
            return []
        try:
            return _table_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return []  # NOTE: a damaged table only kills its links; the next write replaces it

    def _write(self, owner: str, rows: list[ShareRow]) -> None:
        """Replace the owner's table, keeping only unexpired rows; call under the owner's lock."""
        now = _now()
        rows = [r for r in rows if r.expires_at > now]
        path = self.table_path(owner)
        if not rows:
            remove(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, _table_encoder.encode(rows), self.tmp, fsync=self.fsync)

    def _point(self, token: str, owner: str) -> None:
        pointer = self.pointer_path(token)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        write_file(pointer, owner.encode() + b"\n", self.tmp, fsync=self.fsync)

    def _drop_pointers(self, before: list[ShareRow], after: list[ShareRow]) -> None:
        """Remove the pointers of rows that left the table (revoked, expired or dead)."""
        kept = {r.id for r in after if r.expires_at > _now()}
        for row in before:
            if row.id not in kept:
                remove(self.pointer_path(row.id))

    def _record(self, owner: str, row: ShareRow) -> Record | None:
        """The shared image if the link is alive (unexpired, image active and not trashed since), else None."""
        if row.expires_at <= _now():
            return None
        try:
            record = self.get(owner, row.image, "generated")
        except NotFound:
            return None
        return record if alive(_share(owner, row), record) else None

    # --- the API ----------------------------------------------------------------

    def create(self, record: Record, expires_in: object = None) -> Share:
        """A new link to an active record of its owner, for ``expires_in`` seconds.

        Raises InvalidInput (expiry), Conflict (the record is in the trash, or
        its owner has MAX_LIVE_SHARES live links), LockBusy, StorageError.
        """
        seconds = check_expires_in(expires_in)
        if record.status != "active":
            raise Conflict("a trashed image cannot be shared", id=record.id)
        owner = record.owner
        now = _now()
        created = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")
        row = ShareRow(secrets.token_urlsafe(24), record.id, created, int(now) + seconds)
        with self.locks.user(owner):
            rows = self._rows(owner)
            # NOTE: dead links (expired, image trashed or purged) leave the table here.
            live = [r for r in rows if self._record(owner, r) is not None]
            if len(live) >= MAX_LIVE_SHARES:
                raise Conflict(f"at most {MAX_LIVE_SHARES} live share links: revoke some first")
            # NOTE: pointer first: a pointer without a row is a dead link, a row
            # without its pointer would be a link that cannot be followed.
            self._point(row.id, owner)
            try:
                self._write(owner, live + [row])
            except Exception:
                remove(self.pointer_path(row.id))
                raise
            self._drop_pointers(rows, live)
        return _share(owner, row)

    def find(self, token: object) -> tuple[Share, Record]:
        """The live share a token names and its image.

        Raises NotFound for a malformed, unknown, revoked or expired token, or
        one whose image was trashed or purged (the caller cannot tell which).
        """
        if not isinstance(token, str) or TOKEN_RE.fullmatch(token) is None:
            raise NotFound("no such share link")
        data = _read_small(self.pointer_path(token), 200)
        owner = data.decode("ascii", "replace").strip() if data is not None else ""
        if not is_user_id(owner):
            raise NotFound("no such share link")
        row = next((r for r in self._rows(owner) if r.id == token), None)
        record = self._record(owner, row) if row is not None and is_id(row.image) else None
        if row is None or record is None:
            raise NotFound("no such share link")
        return _share(owner, row), record

    def of(self, owner: str) -> list[Share]:
        """The owner's live links, newest first."""
        rows = [r for r in self._rows(owner) if self._record(owner, r) is not None]
        return [_share(owner, r) for r in sorted(rows, key=lambda r: r.created_at, reverse=True)]

    def revoke(self, owner: str, share_id: object) -> Share:
        """End one of the owner's links now; raises NotFound for an unknown (or another owner's) id."""
        if not isinstance(share_id, str) or TOKEN_RE.fullmatch(share_id) is None:
            raise NotFound("no such share link")
        with self.locks.user(owner):
            rows = self._rows(owner)
            row = next((r for r in rows if r.id == share_id), None)
            if row is None or row.expires_at <= _now():
                raise NotFound("no such share link", id=share_id)
            kept = [r for r in rows if r.id != share_id]
            self._write(owner, kept)
            self._drop_pointers(rows, kept)
        return _share(owner, row)

    def move_all(self, source: str, target: str) -> int:
        """Hand every unexpired link of ``source`` to ``target`` (a merge moved the images, same ids).

        Idempotent and crash-safe: the target's table gains the rows, the
        pointers are turned to the target, then the source's table goes.
        Returns how many links moved.
        """
        first, second = sorted((source, target))
        with self.locks.user(first), self.locks.user(second):
            rows = self._rows(source)
            now = _now()
            moving = [r for r in rows if r.expires_at > now]
            if moving:
                held = self._rows(target)
                have = {r.id for r in held}
                self._write(target, held + [r for r in moving if r.id not in have])
                for row in moving:
                    self._point(row.id, target)
            self._drop_pointers(rows, moving)
            remove(self.table_path(source))
        return len(moving)


def _share(owner: str, row: ShareRow) -> Share:
    return Share(row.id, owner, row.image, row.created_at, row.expires_at)


def _read_small(path: Path, cap: int) -> bytes | None:
    """A regular file's bytes, up to ``cap``, never through a symlink; None when missing or unfit."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_size <= cap):
            return None
        return os.read(fd, cap + 1)[:cap]
    finally:
        os.close(fd)
