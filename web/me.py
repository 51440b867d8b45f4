"""Blueprint 'me': who the caller is, and the explicit guest → member handover.

``GET /api/v1/me`` answers ``{"user_id", "kind"}`` for a guest or a member;
``POST /api/v1/me/claim`` hands the guest cookie's history to the signed-in
member (the same journaled merge the first signed-in request runs on its own
unless CASVAULT_MEMBER_AUTO_CLAIM=0).
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from .auth import check_csrf, claim_guest, current_kind, current_user
from .errors import ApiError

bp = Blueprint("me", __name__, url_prefix="/api/v1")


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.get("/me")
def me():
    """Who the caller is: ``kind`` is ``guest`` or ``member``."""
    return jsonify(user_id=current_user(), kind=current_kind())


@bp.post("/me/claim")
def claim():
    """Move the guest cookie's history (images, inputs, controls, trash) to the signed-in member, once.

    A history too big for one request answers ``complete: false`` and keeps
    the guest cookie: post again to carry on.
    """
    if current_kind() != "member":
        raise ApiError(401, "unauthorized", "sign in as a member first: no valid member token was sent")
    guest = g.get("guest_id")
    report = claim_guest()
    if guest is not None and report is None:
        raise ApiError(503, "lock_busy", "this guest's handover is running in another request; try again")
    return jsonify(
        user_id=current_user(),
        kind="member",
        claimed=guest,
        moved=(report.moved + report.finished) if report else 0,
        trash=report.trash if report else 0,
        complete=report.complete if report else True,
    )
