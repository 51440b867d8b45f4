"""Share links: signed, expiring tokens naming one owner's image.

A token is ``URLSafeSerializer(secret, salt="casvault.share")`` over
``[owner, id, expires_at]`` (expires_at in whole seconds since the epoch).
The token alone proves nothing about the image's state: whoever serves it
must still check that the record exists and is active, so a trashed or
purged image stops being shared at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from itsdangerous import BadSignature, URLSafeSerializer

from .errors import InvalidInput, NotFound
from .records import Record
from .validate import is_id, is_user_id

SALT = "casvault.share"
DEFAULT_EXPIRES_IN = 7 * 24 * 3600
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 365 * 24 * 3600
MAX_TOKEN_LEN = 400


def _now() -> float:
    """The clock used for expiry (tests patch it)."""
    return time.time()


@dataclass(frozen=True)
class Share:
    """What a valid token names."""

    owner: str
    id: str
    expires_at: int
    issued_at: str  # ISO 8601 UTC, milliseconds: compared with the record's trashed_at

    @property
    def expires_iso(self) -> str:
        """The expiry as ISO 8601 UTC."""
        return datetime.fromtimestamp(self.expires_at, timezone.utc).isoformat(timespec="seconds")


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT)


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


def make_token(secret: str, owner: str, rid: str, expires_in: object = None) -> tuple[str, Share]:
    """A signed token sharing ``owner``'s image ``rid`` for ``expires_in`` seconds.

    Raises InvalidInput for a bad owner, id or expiry.
    """
    if not is_user_id(owner) or not is_id(rid):
        raise InvalidInput("owner or id is not valid", field="id")
    seconds = check_expires_in(expires_in)
    now = _now()
    issued = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")
    share = Share(owner, rid, int(now) + seconds, issued)
    token = _serializer(secret).dumps([share.owner, share.id, share.expires_at, share.issued_at])
    return token, share


def read_token(secret: str, token: str) -> Share:
    """The share a token names if its signature is good and it has not expired.

    Raises NotFound for a tampered, malformed or expired token (the caller
    cannot tell which: a share link either works or does not exist).
    """
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LEN:
        raise NotFound("no such share link")
    try:
        payload = _serializer(secret).loads(token)
    except (BadSignature, UnicodeDecodeError, ValueError):
        raise NotFound("no such share link") from None
    if not (isinstance(payload, list) and len(payload) == 4):
        raise NotFound("no such share link")
    owner, rid, expires_at, issued_at = payload
    if not (
        is_user_id(owner) and is_id(rid) and isinstance(expires_at, int) and not isinstance(expires_at, bool)
        and isinstance(issued_at, str) and len(issued_at) <= 40
    ):
        raise NotFound("no such share link")
    if expires_at <= _now():
        raise NotFound("the share link has expired")
    return Share(owner, rid, expires_at, issued_at)


def alive(share: Share, record: Record) -> bool:
    """True while the shared record is active and was not trashed after the link was made.

    A link dies when its image is trashed, and stays dead after a restore
    (``trashed_at`` keeps the time of the last move to the trash).
    """
    return record.status == "active" and not (record.trashed_at and record.trashed_at >= share.issued_at)
