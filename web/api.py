"""The user and pipeline API under ``/api/v1`` (JSON in, JSON out)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from casvault.index import Query
from casvault.records import Record, to_dict
from casvault.store import Store

from .auth import check_csrf, current_user, require_token
from .errors import ApiError
from .ext import get_store

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE_SIZE = 200
# Endpoints authenticated by a bearer token, not the cookie: no CSRF check.
TOKEN_ENDPOINTS = {"api.ingest"}
KIND_OF_COLLECTION = {"images": "generated", "inputs": "input", "controls": "control"}


@bp.before_request
def _csrf() -> None:
    if request.endpoint not in TOKEN_ENDPOINTS:
        check_csrf()


# --- serialisation -----------------------------------------------------------


def serialize(store: Store, record: Record) -> dict[str, Any]:
    """A record as the API shows it, with ``url`` and ``thumb_url``.

    Active images are served from /outputs (static, cacheable); trashed ones
    only through the owner's API (``/api/v1/images/<id>/file|thumb``).
    """
    data = to_dict(record)
    if record.status == "active":
        image, _, thumb = store.layout.paths(record)
        data["url"] = store.layout.rel_url(image)
        data["thumb_url"] = store.layout.rel_url(thumb) if record.thumb else None
    else:
        data["url"] = f"/api/v1/images/{record.id}/file"
        data["thumb_url"] = f"/api/v1/images/{record.id}/thumb" if record.thumb else None
    return data


# --- query parsing -------------------------------------------------------------


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within bounds; raises a 400 ApiError."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"{name} must be between {lo} and {hi}", field=name)
    return value


def parse_query(store: Store, kind: str) -> Query:
    """The listing parameters of this request as a Query; raises 400 on bad values."""
    args = request.args
    include = args.get("include", "active")
    if include not in ("active", "trash", "all"):
        raise ApiError(400, "bad_request", "include must be active, trash or all", field="include")
    lo, hi = store.day_bounds(args.get("from_date") or None, args.get("to_date") or None)
    favorite = args.get("favorite", "")
    if favorite not in ("", "0", "1", "true", "false"):
        raise ApiError(400, "bad_request", "favorite must be 1 or 0", field="favorite")
    q = args.get("q", "")
    if len(q) > 500:
        raise ApiError(400, "bad_request", "q is longer than 500 characters", field="q")
    return Query(
        kind=kind,
        include=include,
        created_from=lo,
        created_before=hi,
        aspect_ratio=args.get("aspect_ratio") or None,
        tag=args.get("tag") or None,
        workflow_id=args.get("workflow_id") or None,
        words=tuple(q.split()),
        favorite=favorite in ("1", "true"),
        cursor=args.get("cursor") or None,
        page=int_arg("page", 1, 1, 1_000_000),
        size=int_arg("size", 50, 1, MAX_PAGE_SIZE),
    )


def listing(store: Store, owner: str, kind: str):
    """The JSON answer of a listing endpoint."""
    query = parse_query(store, kind)
    page = store.list(owner, query)
    return jsonify(
        items=[serialize(store, r) for r in page.items],
        page=query.page,
        size=query.size,
        total=page.total,
        next_cursor=page.next_cursor,
    )


# --- user API ------------------------------------------------------------------


@bp.get("/images")
def list_images():
    """The visitor's generated images, newest first."""
    store = get_store()
    return listing(store, current_user(), "generated")


@bp.get("/images/<rid>")
def get_image(rid: str):
    """One of the visitor's images."""
    store = get_store()
    return jsonify(serialize(store, store.get(current_user(), rid, "generated")))


def _upload_file() -> tuple[bytes, str | None]:
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "bad_request", "multipart field 'file' is missing", field="file")
    data = upload.read()
    return data, upload.filename


def _created(store: Store, result) -> Any:
    body = serialize(store, result.record)
    if result.in_trash:
        body["duplicate_in_trash"] = result.in_trash
    resp = jsonify(body)
    resp.status_code = 201
    return resp


def upload(kind: str):
    """Store an uploaded file as the visitor's input or control image."""
    store = get_store()
    data, filename = _upload_file()
    result = store.ingest(data, current_user(), kind, original_filename=filename, tags=request.form.get("tags"))
    return _created(store, result)


@bp.post("/inputs/upload")
def upload_input():
    """Upload an image to the visitor's input library."""
    return upload("input")


@bp.post("/controls/upload")
def upload_control():
    """Upload a control image."""
    return upload("control")


@bp.get("/inputs")
def list_inputs():
    """The visitor's input library, newest first."""
    return listing(get_store(), current_user(), "input")


@bp.get("/controls")
def list_controls():
    """The visitor's control images, newest first."""
    return listing(get_store(), current_user(), "control")


# --- pipeline --------------------------------------------------------------------

INGEST_FIELDS = ("workflow_id", "aspect_ratio", "seed", "prompt", "negative_prompt", "created_at")


@bp.post("/ingest")
@require_token("ingest")
def ingest():
    """The JobManager's path: store a generated (or control/input) image for ``owner``."""
    store = get_store()
    data, filename = _upload_file()
    form = request.form
    owner = form.get("owner")
    if not owner:
        raise ApiError(400, "bad_request", "form field 'owner' is missing", field="owner")
    kind = form.get("kind") or "generated"
    fields = {k: form.get(k) or None for k in INGEST_FIELDS} if kind == "generated" else {}
    if kind != "generated" and form.get("created_at"):
        fields["created_at"] = form.get("created_at")
    result = store.ingest(
        data,
        owner,
        kind,
        original_filename=form.get("original_filename") or filename,
        tags=form.get("tags"),
        **fields,
    )
    return _created(store, result)
