"""Who is asking: the signed ``anon_id`` cookie, bearer tokens, and the CSRF check."""

from __future__ import annotations

import hmac
from functools import wraps
from typing import Callable
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request

from casvault import identity

from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie
NO_IDENTITY_PATHS = ("/outputs/", "/s/", "/static/", "/assets/", "/favicon.ico", "/robots.txt")


def init_identity(app: Flask) -> None:
    """Issue a guest identity on the first visit; replace forged or tampered cookies."""

    @app.before_request
    def _identify() -> None:
        secret = current_app.config["SECRET_KEY"]
        raw = request.cookies.get(identity.COOKIE_NAME)
        user_id = identity.verify(raw, secret)
        g.new_cookie = None
        if user_id is None:
            user_id, cookie = identity.issue(secret)
            g.new_cookie = cookie
        g.user_id = user_id

    @app.after_request
    def _set_cookie(resp):
        cookie = g.get("new_cookie")
        # NOTE: static files, thumbnails and share links are the same for
        # everyone and may be cached, so they never issue a guest identity.
        if cookie and not request.path.startswith(NO_IDENTITY_PATHS):
            resp.set_cookie(
                identity.COOKIE_NAME,
                cookie,
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure,
                path="/",
            )
        return resp


def current_user() -> str:
    """The guest id of this request."""
    return g.user_id


def check_csrf() -> None:
    """Refuse a cookie-authenticated write that is not same-origin.

    Accepted: an ``X-Requested-With`` header (a cross-site form cannot set
    it), or an ``Origin``/``Referer`` whose host is this server's.
    """
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("X-Requested-With"):
        return
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc == request.host:
            return
    raise ApiError(403, "csrf_failed", "cross-site request refused: send X-Requested-With or a same-origin Origin header")


def _bearer_ok(expected: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())


def require_token(kind: str) -> Callable:
    """Decorator: the request must carry ``Authorization: Bearer <CASVAULT_<KIND>_TOKEN>``."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            expected = getattr(current_app.config["CASVAULT"], f"{kind}_token")
            if not expected:
                raise ApiError(401, "unauthorized", f"the {kind} API is disabled: CASVAULT_{kind.upper()}_TOKEN is not set")
            if not _bearer_ok(expected):
                raise ApiError(401, "unauthorized", f"missing or wrong {kind} token")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def has_token(kind: str) -> bool:
    """True when the request carries the enabled bearer token of ``kind`` (``admin``, ``ingest``)."""
    return _bearer_ok(getattr(current_app.config["CASVAULT"], f"{kind}_token"))
