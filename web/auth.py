"""Who is asking: a member (the site's JWT or a trusted proxy's header) or a guest
(the signed ``anon_id`` cookie); bearer tokens; the CSRF check; the sign-up handover."""

from __future__ import annotations

import hmac
from functools import wraps
from typing import Callable
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request

from casvault import identity
from casvault.errors import LockBusy
from casvault.merge import MergeReport, hand_over

from .errors import ApiError
from .ext import get_store

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_IDENTITY_PATHS = ("/outputs/", "/s/", "/static/", "/assets/", "/favicon.ico", "/robots.txt")
# NOTE: a request moves a guest's history for at most this long (about 150
# records a second with fsync); a bigger history goes over the next requests,
# far inside gunicorn's timeout.
HANDOVER_SECONDS = 5.0


def init_identity(app: Flask) -> None:
    """Learn who asks: a member first, else a guest (issued on the first visit, re-issued while it ages)."""
    cfg = app.config["CASVAULT"]
    app.extensions["casvault.members"] = identity.MemberTokens.from_config(cfg)
    app.extensions["casvault.proxies"] = identity.parse_proxies(cfg.trusted_proxies)

    @app.before_request
    def _identify() -> None:
        cfg = current_app.config["CASVAULT"]
        secret = current_app.config["SECRET_KEY"]
        guest = identity.read_guest(request.cookies.get(identity.COOKIE_NAME), secret, cfg.anon_cookie_max_age)
        g.new_cookie = None
        g.clear_guest = False
        g.handover = None
        g.guest_id = guest.user_id if guest else None
        g.member_source = None
        member = _member()
        if member is not None:
            g.user_id, g.kind = member, "member"
            # NOTE: a forged or expired guest cookie beside a member has nothing to hand over: drop it.
            g.clear_guest = guest is None and identity.COOKIE_NAME in request.cookies
            if guest is not None and cfg.member_auto_claim and not request.path.startswith(NO_IDENTITY_PATHS):
                claim_guest()
            return
        g.kind = "guest"
        if guest is None:
            g.user_id, g.new_cookie = identity.issue(secret)
        else:
            g.user_id = guest.user_id
            if identity.needs_refresh(guest, cfg.anon_cookie_max_age):
                g.new_cookie = identity.issue(secret, guest.user_id)[1]

    @app.after_request
    def _set_cookie(resp):
        cookie = g.get("new_cookie")
        # NOTE: static files, thumbnails and share links are the same for
        # everyone and may be cached, so they never issue a guest identity.
        if cookie and not request.path.startswith(NO_IDENTITY_PATHS):
            resp.set_cookie(
                identity.COOKIE_NAME,
                cookie,
                max_age=current_app.config["CASVAULT"].anon_cookie_max_age,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure,
                path="/",
            )
        if g.get("clear_guest"):
            resp.delete_cookie(identity.COOKIE_NAME, path="/", httponly=True, samesite="Lax", secure=request.is_secure)
        return resp


def _token_route() -> bool:
    """True on routes whose ``Authorization`` header is the admin or ingest token, not a member's."""
    view = current_app.view_functions.get(request.endpoint or "")
    return request.blueprint == "admin" or getattr(view, "casvault_token", None) is not None


def _member() -> str | None:
    """The member this request is signed in as, or None; sets ``g.member_source``."""
    cfg = current_app.config["CASVAULT"]
    if cfg.trusted_user_header:
        # NOTE: the socket peer as the WSGI server gives it (no ProxyFix): only
        # the proxy itself may vouch; from anyone else the header is ignored.
        if current_app.extensions["casvault.proxies"].trusts(request.remote_addr):
            found = identity.member_from_header(request.headers.get(cfg.trusted_user_header))
            if found:
                g.member_source = "proxy"
                return found
    tokens: identity.MemberTokens | None = current_app.extensions["casvault.members"]
    if tokens is None:
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and not _token_route():
        found = tokens.member(header[7:].strip())
        if found:
            g.member_source = "bearer"
            return found
    found = tokens.member(request.cookies.get(cfg.member_cookie))
    if found:
        g.member_source = "cookie"
    return found


def claim_guest() -> MergeReport | None:
    """Hand this request's guest history to its member (once); the answer clears the guest cookie.

    Returns the merge report, or None when there is no guest cookie or
    another worker is doing the same handover right now (this request then
    sees the member's namespace as it is, and a later one finishes). A
    history too big for one request's slice keeps the guest cookie, so the
    next request carries on (``report.complete`` is False).
    """
    if g.get("handover") is not None:
        return g.handover
    guest = g.get("guest_id")
    if guest is None or g.get("kind") != "member":
        return None
    try:
        report = hand_over(get_store(), guest, g.user_id, seconds=HANDOVER_SECONDS)
    except LockBusy:
        current_app.logger.warning("handover of %s to %s is running elsewhere; not waiting", guest, g.user_id)
        return None
    g.handover = report
    g.clear_guest = report.complete
    return report


def current_user() -> str:
    """The user id of this request: the member when one is signed in, else the guest."""
    return g.user_id


def current_kind() -> str:
    """``member`` or ``guest``."""
    return g.kind


def check_csrf() -> None:
    """Refuse a cookie-authenticated write that is not same-origin.

    Accepted: an ``X-Requested-With`` header (a cross-site form cannot set
    it), or an ``Origin``/``Referer`` whose host is this server's.
    """
    if request.method in SAFE_METHODS:
        return
    if g.get("member_source") == "bearer":
        return  # a bearer header is not sent by the browser on its own: no CSRF risk
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

        wrapper.casvault_token = kind  # type: ignore[attr-defined]
        return wrapper

    return decorate


def has_token(kind: str) -> bool:
    """True when the request carries the enabled bearer token of ``kind`` (``admin``, ``ingest``)."""
    return _bearer_ok(getattr(current_app.config["CASVAULT"], f"{kind}_token"))
