"""Guest identity: the signed ``anon_id`` cookie.

The value is ``anon-<32 hex>.<signature>``: the id stays readable, the
signature (itsdangerous, keyed by CASVAULT_SECRET_KEY) proves the server
issued it. The host app's JobManager calls :func:`verify` with the same
secret to learn the owner of a request.
"""

from __future__ import annotations

import uuid

from itsdangerous import BadSignature, Signer

from .validate import ANON_RE

COOKIE_NAME = "anon_id"
_SALT = "casvault.anon_id"


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT)


def new_guest_id() -> str:
    """A fresh guest id ``anon-<32 hex>``."""
    return "anon-" + uuid.uuid4().hex


def issue(secret: str, user_id: str | None = None) -> tuple[str, str]:
    """(user_id, cookie value) for a new or given guest id."""
    user_id = user_id or new_guest_id()
    return user_id, _signer(secret).sign(user_id).decode()


def verify(cookie: str | None, secret: str) -> str | None:
    """The guest id in a cookie value, or None when it is missing, forged or tampered."""
    if not cookie or len(cookie) > 200:
        return None
    try:
        user_id = _signer(secret).unsign(cookie).decode()
    except (BadSignature, UnicodeDecodeError):
        return None
    return user_id if ANON_RE.fullmatch(user_id) else None
