"""The user and pipeline API under ``/api/v1`` (JSON in, JSON out).

Three collections share one shape: ``images`` (generated), ``inputs`` and
``controls``. Every id in a path is checked against the visitor's own
records; an id that is malformed, unknown, of another kind or another
visitor's answers 404, never 403, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from flask import Blueprint, Response, jsonify, request

from casvault.errors import CasvaultError, NotFound
from casvault.quota import percent
from casvault.records import timestamp
from casvault.secondary import FACETS
from casvault.store import Store
from casvault.trash import purge_expired

from . import archive
from .auth import check_csrf, current_user
from .errors import ApiError
from .ext import get_store
from .files import PRIVATE_CACHE, send_original, send_thumb, wants_download
from .openapi import document
from .params import (
    BULK_ACTIONS,
    KIND_OF_COLLECTION,
    LISTING_FILTERS,
    MAX_BULK_IDS,
    MAX_FILTER_IDS,
    MAX_PAGE_SIZE,
    MAX_PREFIX,
    int_arg,
    json_body,
    parse_query,
    parse_since,
    single_form_fields,
    tag_list,
    upload_file,
)
from .serialize import created, created_record, purge_failures, serialize

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Which source kinds each library may copy from, by body field.
COPY_SOURCES = {
    "input": {"image_id": "generated", "control_id": "control"},
    "control": {"image_id": "generated", "input_id": "input"},
}


@bp.before_request
def _csrf() -> None:
    check_csrf()


# --- listings -------------------------------------------------------------------


def listing(store: Store, owner: str, kind: str) -> Response:
    """The JSON answer of a listing endpoint."""
    query = parse_query(store, kind)
    since = parse_since()
    page = store.list(owner, query)
    items, total, next_cursor = page.items, page.total, page.next_cursor
    if since is not None:
        # NOTE: for live updates: what is newer than the newest item a page
        # shows sits at the top of the first page; more than ``size`` of them
        # and the answer is full, which tells the page to reload instead.
        items = [r for r in items if timestamp(r.created_at) > since]
        total, next_cursor = len(items), None
    return jsonify(
        items=[serialize(store, r) for r in items],
        page=query.page,
        size=query.size,
        total=total,
        next_cursor=next_cursor,
    )


# --- one collection: images, inputs or controls ------------------------------------


def _purge_one(store: Store, owner: str, rid: str, kind: str) -> Response:
    store.get(owner, rid, kind)  # NotFound for another kind
    return jsonify(id=rid, purged=True, bytes=store.purge(owner, rid))


# (route suffix, method, answer(store, owner, rid, kind), docstring template)
RECORD_ACTIONS: tuple[tuple[str, str, Callable[..., Response], str], ...] = (
    ("", "GET", lambda store, owner, rid, kind: jsonify(serialize(store, store.get(owner, rid, kind))),
     "One of the visitor's {}."),
    ("file", "GET", lambda store, owner, rid, kind: send_original(
        store, store.get(owner, rid, kind), cache=PRIVATE_CACHE, download=wants_download()),
     "The original of one of the visitor's {}, active or trashed."),
    ("thumb", "GET", lambda store, owner, rid, kind: send_thumb(store, store.get(owner, rid, kind), cache=PRIVATE_CACHE),
     "The thumbnail of one of the visitor's {}, active or trashed."),
    ("delete", "POST", lambda store, owner, rid, kind: jsonify(serialize(store, store.trash(owner, rid, kind))),
     "Move one of the visitor's {} to the trash."),
    ("restore", "POST", lambda store, owner, rid, kind: jsonify(serialize(store, store.restore(owner, rid, kind))),
     "Bring one of the visitor's {} back from the trash."),
    ("purge", "POST", _purge_one, "Delete one of the visitor's trashed {} for good."),
)


def _record_view(collection: str, answer: Callable[..., Response], doc: str) -> Callable:
    """A view answering for one record of the visitor's ``collection``."""
    kind = KIND_OF_COLLECTION[collection]

    def view(rid: str) -> Response:
        return answer(get_store(), current_user(), rid, kind)

    view.__doc__ = doc.format(collection)
    return view


def _copy(collection: str) -> Callable:
    kind = KIND_OF_COLLECTION[collection]
    sources = COPY_SOURCES[kind]

    def view() -> Response:
        store = get_store()
        owner = current_user()
        body = json_body(tuple(sources))
        given = [name for name in sources if name in body]
        if len(given) != 1:
            raise ApiError(400, "bad_request", f"give exactly one of {', '.join(sources)}")
        field = given[0]
        if not isinstance(body[field], str):
            raise ApiError(400, "bad_request", f"{field} must be a string", field=field)
        source = store.get(owner, body[field], sources[field])  # NotFound for another kind
        return created(serialize(store, store.copy_as_input(owner, source.id, kind=kind)))

    view.__doc__ = f"A new {kind} on the blob of one of the visitor's records (no bytes copied)."
    return view


def _register(collection: str) -> None:
    """Add the per-record routes of one collection."""
    base = f"/{collection}/<string(length=32):rid>"
    for suffix, method, answer, doc in RECORD_ACTIONS:
        rule = f"{base}/{suffix}" if suffix else base
        name = f"{collection}_{suffix or 'get'}"
        bp.add_url_rule(rule, name, _record_view(collection, answer, doc), methods=[method])
    if collection != "images":
        bp.add_url_rule(f"/{collection}/copy", f"{collection}_copy", _copy(collection), methods=["POST"])


for _collection in KIND_OF_COLLECTION:
    _register(_collection)


# --- images: listing, metadata, bulk, trash, share, ZIP ------------------------------


@bp.get("/images")
def list_images():
    """The visitor's generated images, newest first."""
    store = get_store()
    return listing(store, current_user(), "generated")


@bp.get("/images/facets")
def image_facets():
    """The visitor's most frequent models, LoRAs, samplers, workflows, aspect ratios and tags, with counts, within the listing's filters."""
    store = get_store()
    query = parse_query(store, "generated")
    field = request.args.get("field") or None
    if field is not None and field not in FACETS:
        raise ApiError(400, "bad_request", f"field must be one of {', '.join(FACETS)}", field="field")
    prefix = request.args.get("prefix", "")
    if len(prefix) > MAX_PREFIX:
        raise ApiError(400, "bad_request", f"prefix is longer than {MAX_PREFIX} characters", field="prefix")
    limit = int_arg("limit", 20, 1, 100)
    fields = (field,) if field else FACETS
    return jsonify(facets=store.facets(current_user(), query, fields, prefix, limit))


@bp.patch("/images/<string(length=32):rid>")
def patch_image(rid: str):
    """Set an image's tags and/or favorite flag."""
    store = get_store()
    body = json_body(("tags", "favorite"))
    tags = tag_list(body["tags"]) if "tags" in body else None
    favorite = body.get("favorite")
    if "favorite" in body and not isinstance(favorite, bool):
        raise ApiError(400, "bad_request", "favorite must be true or false", field="favorite")
    record = store.update_meta(current_user(), rid, tags=tags, favorite=favorite, kind="generated")
    return jsonify(serialize(store, record))


@bp.post("/images/bulk")
def bulk_images():
    """Apply one action to many of the visitor's images; answers per id."""
    store = get_store()
    owner = current_user()
    body = json_body(("action", "ids", "tags", "filter", "except"))
    action = body.get("action")
    if action not in BULK_ACTIONS:
        raise ApiError(400, "bad_request", f"action must be one of {', '.join(BULK_ACTIONS)}", field="action")
    if ("ids" in body) == ("filter" in body):
        raise ApiError(400, "bad_request", "give either ids or filter", field="ids")
    ids = body.get("ids") if "ids" in body else filtered_ids(store, owner, "generated", body)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "bad_request", "ids must be a list of strings", field="ids")
    if "ids" in body and not 1 <= len(ids) <= MAX_BULK_IDS:
        raise ApiError(400, "bad_request", f"give 1 to {MAX_BULK_IDS} ids", field="ids")
    tags: list[str] = []
    if action in ("tag", "untag"):
        if "tags" not in body:
            raise ApiError(400, "bad_request", f"action {action} needs a tags list", field="tags")
        tags = tag_list(body["tags"])
    elif "tags" in body:
        raise ApiError(400, "bad_request", "tags are only used by tag and untag", field="tags")
    results = []
    for rid in dict.fromkeys(ids):
        try:
            results.append({"id": rid, "ok": True, **_bulk_one(store, owner, action, rid, tags)})
        except CasvaultError as exc:
            results.append({"id": rid[:64], "ok": False, "error": {"code": exc.code, "message": exc.message}})
    return jsonify(results=results)


def filtered_ids(store: Store, owner: str, kind: str, body: dict[str, Any]) -> list[str]:
    """The ids a bulk request by ``filter`` names: the whole listing with those filters, less ``except``; raises 400."""
    given = body["filter"]
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise ApiError(400, "bad_request", "filter must be an object of listing parameters (strings)", field="filter")
    unknown = sorted(set(given) - set(LISTING_FILTERS))
    if unknown:
        raise ApiError(400, "bad_request", f"filter: unknown parameter {unknown[0]!r}", field="filter")
    left_out = body.get("except", [])
    if not isinstance(left_out, list) or not all(isinstance(i, str) for i in left_out):
        raise ApiError(400, "bad_request", "except must be a list of ids", field="except")
    args = {k: v for k, v in given.items() if v}
    query = parse_query(store, kind, {**args, "size": str(MAX_PAGE_SIZE)})
    skip = set(left_out)
    ids: list[str] = []
    while True:
        page = store.list(owner, query)
        ids += [r.id for r in page.items if r.id not in skip]
        if len(ids) > MAX_FILTER_IDS:
            raise ApiError(400, "bad_request", f"the filter holds more than {MAX_FILTER_IDS} images", field="filter")
        if not page.next_cursor:
            return ids
        query = replace(query, cursor=page.next_cursor)


def _bulk_one(store: Store, owner: str, action: str, rid: str, tags: list[str]) -> dict[str, Any]:
    """One id of a bulk request; raises the core's errors."""
    if action == "delete":
        return {"item": serialize(store, store.trash(owner, rid, "generated"))}
    if action == "restore":
        return {"item": serialize(store, store.restore(owner, rid, "generated"))}
    if action == "purge":
        store.get(owner, rid, "generated")
        return {"item": None, "bytes": store.purge(owner, rid)}
    if action in ("favorite", "unfavorite"):
        record = store.update_meta(owner, rid, favorite=action == "favorite", kind="generated")
        return {"item": serialize(store, record)}
    if action == "tag":
        record = store.update_meta(owner, rid, add_tags=tags, kind="generated")
    else:
        record = store.update_meta(owner, rid, remove_tags=tags, kind="generated")
    return {"item": serialize(store, record)}


@bp.post("/images/purge-trash")
def purge_trash():
    """Empty the visitor's trash (images, inputs and controls) for good; 200 with ``failed`` listing what was not."""
    owner = current_user()
    json_body((), required=False)
    report = purge_expired(get_store(), 0, owners=[owner])
    return jsonify(
        purged=[p["id"] for p in report.purged], count=report.count, bytes_freed=report.bytes_freed,
        failed=purge_failures(report.failed, with_owner=False),
    )


@bp.post("/images/<string(length=32):rid>/share")
def share_image(rid: str):
    """An opaque, revocable link that shows one active image to anyone holding it, until it expires."""
    store = get_store()
    owner = current_user()
    body = json_body(("expires_in",), required=False)
    record = store.get(owner, rid, "generated")
    if "expires_in" in body and body["expires_in"] is None:
        raise ApiError(400, "bad_request", "expires_in must be an integer number of seconds", field="expires_in")
    return created(store.shares.create(record, body.get("expires_in")).as_dict())


@bp.get("/shares")
def list_shares():
    """The visitor's live share links, newest first."""
    return jsonify(shares=[share.as_dict() for share in get_store().shares.of(current_user())])


@bp.delete("/shares/<share_id>")
def revoke_share(share_id: str):
    """End one of the visitor's share links now."""
    share = get_store().shares.revoke(current_user(), share_id)
    return jsonify(id=share.id, revoked=True)


@bp.get("/images/download.zip")
def download_zip():
    """A streamed ZIP of the visitor's images named in ``ids`` (comma-separated)."""
    return _zip_download(request.args.get("ids", ""))


@bp.post("/images/download.zip")
def download_zip_form():
    """The same ZIP for a form post (``ids`` in the body): selections too long for a URL."""
    # NOTE: a plain <form method="post"> makes the browser save the answer as a
    # normal download; the CSRF check passes on its same-origin Origin header.
    return _zip_download(request.form.get("ids", ""))


def _zip_download(raw: str) -> Response:
    """The ZIP answer for comma-separated ids; 400/404 before any byte is streamed."""
    store = get_store()
    owner = current_user()
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids:
        raise ApiError(400, "bad_request", "ids is required: comma-separated image ids", field="ids")
    ids = list(dict.fromkeys(ids))
    if len(ids) > archive.MAX_IDS:
        raise ApiError(400, "bad_request", f"at most {archive.MAX_IDS} ids per archive", field="ids")
    records = [store.get(owner, rid, "generated") for rid in ids]  # 404 before streaming starts
    members = archive.plan(store, records)
    for member in members:
        if not member.path.is_file():
            raise NotFound("an image's original is missing", id=member.path.name)
    resp = Response(archive.stream_zip(members), mimetype="application/zip", direct_passthrough=True)
    resp.headers["Content-Disposition"] = f'attachment; filename="casvault-{len(members)}-images.zip"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# --- inputs and controls --------------------------------------------------------------


def upload(kind: str) -> Response:
    """Store an uploaded file as the visitor's input or control image."""
    store = get_store()
    single_form_fields()
    data, filename = upload_file()
    result = store.ingest(data, current_user(), kind, original_filename=filename, tags=request.form.get("tags"))
    return created_record(store, result)


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


# --- quota ---------------------------------------------------------------------------


@bp.get("/quota")
def quota():
    """The visitor's usage, limits, and what emptying the trash would free."""
    store = get_store()
    owner = current_user()
    usage, limits = store.usage(owner), store.quota.limits_for(owner)
    return jsonify(
        usage=usage.as_dict(),
        limits=limits.as_dict(),
        percent=percent(usage, limits),
        purge_would_free={"count": usage.trash_count, "bytes": usage.trash_bytes},
        retention_days=store.config.trash_retention_days,
    )


# --- the API's own description -------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document of this API."""
    return jsonify(document())

