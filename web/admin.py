"""Blueprint 'admin': the operator's API under ``/api/v1/admin`` (bearer CASVAULT_ADMIN_TOKEN).

Every route of this blueprint needs the admin token (checked before the
view runs, so a new route cannot forget it). Bearer requests carry no
cookie authority, so there is no CSRF check here.
"""

from __future__ import annotations

from itertools import dropwhile, islice, takewhile
from typing import Any, Iterator

from flask import Blueprint, jsonify, request

from casvault.index import Query, decode_cursor, encode_cursor
from casvault.records import Record
from casvault.store import Store
from casvault.trash import purge_expired
from casvault.validate import MEMBER_RE, check_user_id

from .params import COLLECTION_OF_KIND, json_body, parse_query
from .serialize import purge_failures, serialize
from .auth import require_token
from .errors import ApiError
from .ext import get_store
from .files import PRIVATE_CACHE, send_original, send_thumb

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

MAX_PURGE_DAYS = 36_500


@bp.before_request
@require_token("admin")
def _admin_only() -> None:
    """Refuse the request unless it carries the admin token."""


def _kind_arg() -> str:
    kind = request.args.get("kind", "generated")
    if kind not in COLLECTION_OF_KIND:
        raise ApiError(400, "bad_request", "kind must be generated, input or control", field="kind")
    return kind


def admin_item(store: Store, record: Record) -> dict[str, Any]:
    """A record as the admin sees it: files through the admin API (/outputs answers only the owner)."""
    data = serialize(store, record)
    # NOTE: /outputs would answer the admin's token, but the page's <img>
    # cannot send it; the admin API's URLs are fetched with the token.
    if record.status != "active" or not store.config.outputs_public:
        data["url"] = f"/api/v1/admin/images/{record.id}/file"
        data["thumb_url"] = f"/api/v1/admin/images/{record.id}/thumb" if record.thumb else None
    return data


@bp.get("/users")
def users():
    """Every user with counts, bytes and last activity, most recently active first (``kind=member|guest`` filters)."""
    store = get_store()
    kind = request.args.get("kind", "")
    if kind not in ("", "member", "guest"):
        raise ApiError(400, "bad_request", "kind must be member or guest", field="kind")
    rows = []
    for owner in store.users():
        if kind and (MEMBER_RE.fullmatch(owner) is not None) != (kind == "member"):
            continue
        summary = store.user_summary(owner)
        rows.append({
            "user_id": owner,
            "kind": "member" if MEMBER_RE.fullmatch(owner) else "guest",
            **summary["usage"].as_dict(),
            "by_kind": {k: summary["counts"][k] for k in COLLECTION_OF_KIND},
            "last_activity": summary["last_activity"],
        })
    rows.sort(key=lambda r: r["last_activity"] or "", reverse=True)
    return jsonify(users=rows, count=len(rows))


@bp.get("/images")
def images():
    """Records of one user (``user_id``) or of all users, newest first."""
    store = get_store()
    kind = _kind_arg()
    owner = request.args.get("user_id") or None
    if owner is not None:
        check_user_id(owner, "user_id")
        query = parse_query(store, kind)
        page = store.list(owner, query)
        items, total, next_cursor = page.items, page.total, page.next_cursor
    else:
        query = parse_query(store, kind)
        if query.tag or query.words or query.favorite or query.aspect_ratio or query.workflow_id:
            raise ApiError(400, "bad_request", "without user_id only dates, include, kind and cursor filter")
        items, total, next_cursor = _all_users_page(store, query)
    return jsonify(
        items=[admin_item(store, r) for r in items],
        page=query.page,
        size=query.size,
        total=total,
        next_cursor=next_cursor,
    )


def _all_users_page(store: Store, query: Query) -> tuple[list[Record], int, str | None]:
    """One page over every user's records, merged newest first without one big list."""
    owners = store.users()
    merged: Iterator[Record] = store.newest(query.kind, query.include)
    if query.cursor:
        after = decode_cursor(query.cursor)
        merged = dropwhile(lambda r: (r.created_at, r.id) >= after, merged)
    if query.created_before:
        hi = query.created_before
        merged = dropwhile(lambda r: r.created_at >= hi, merged)
    if query.created_from:
        lo = query.created_from
        merged = takewhile(lambda r: r.created_at >= lo, merged)
    skip = 0 if query.cursor else (query.page - 1) * query.size
    window = list(islice(merged, skip, skip + query.size + 1))
    items = window[: query.size]
    more = len(window) > query.size
    next_cursor = encode_cursor((items[-1].created_at, items[-1].id)) if more and items else None
    counting = Query(
        kind=query.kind, include=query.include, created_from=query.created_from,
        created_before=query.created_before, size=1,
    )
    total = sum(store.list(owner, counting).total for owner in owners)
    return items, total, next_cursor


@bp.get("/images/<string(length=32):rid>/file")
def image_file(rid: str):
    """Any record's original, active or trashed."""
    store = get_store()
    return send_original(store, store.find(rid), cache=PRIVATE_CACHE)


@bp.get("/images/<string(length=32):rid>/thumb")
def image_thumb(rid: str):
    """Any record's thumbnail, active or trashed."""
    store = get_store()
    return send_thumb(store, store.find(rid), cache=PRIVATE_CACHE)


@bp.post("/images/<string(length=32):rid>/delete")
def delete_image(rid: str):
    """Move any user's record to the trash."""
    store = get_store()
    record = store.find(rid)
    return jsonify(admin_item(store, store.trash(record.owner, rid)))


@bp.post("/images/<string(length=32):rid>/restore")
def restore_image(rid: str):
    """Bring any user's record back from the trash."""
    store = get_store()
    record = store.find(rid)
    return jsonify(admin_item(store, store.restore(record.owner, rid)))


@bp.post("/purge-trash")
def purge_trash():
    """Purge every user's records trashed more than ``older_than_days`` ago (default: retention).

    ``dry_run: true`` lists what would be purged and changes nothing (like ``casvault purge-trash --dry-run``).
    """
    store = get_store()
    body = json_body(("older_than_days", "dry_run"), required=False)
    days = body.get("older_than_days")
    if "older_than_days" in body and (
        isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= MAX_PURGE_DAYS
    ):
        raise ApiError(400, "bad_request", f"older_than_days must be a number from 0 to {MAX_PURGE_DAYS}", field="older_than_days")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "bad_request", "dry_run must be true or false", field="dry_run")
    report = purge_expired(store, days, dry_run=dry_run)
    # NOTE: 200 even when some record failed: what was purged is in the
    # answer either way, and each failure is listed in ``failed``.
    return jsonify(
        purged=report.purged,
        count=report.count,
        bytes_freed=report.bytes_freed,
        failed=purge_failures(report.failed, with_owner=True),
        older_than_days=store.config.trash_retention_days if days is None else days,
        dry_run=dry_run,
    )


@bp.post("/users/<anon_id>/merge")
def merge_user(anon_id: str):
    """Move every record of guest ``anon_id`` to the member ``{"member_id": ...}`` (crash-safe, resumable)."""
    from casvault.merge import merge_users

    body = json_body(("member_id", "dry_run"))
    member = body.get("member_id")
    if not isinstance(member, str):
        raise ApiError(400, "bad_request", "member_id must be a string", field="member_id")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "bad_request", "dry_run must be true or false", field="dry_run")
    return jsonify(merge_users(get_store(), anon_id, member, dry_run=dry_run).as_dict())
