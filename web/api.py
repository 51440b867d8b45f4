"""The user and pipeline API under ``/api/v1`` (JSON in, JSON out).

Three collections share one shape: ``images`` (generated), ``inputs`` and
``controls``. Every id in a path is checked against the visitor's own
records; an id that is malformed, unknown, of another kind or another
visitor's answers 404, never 403, so ids cannot be probed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable, Mapping

from flask import Blueprint, Response, current_app, jsonify, request

from casvault.blobs import digest
from casvault.errors import CasvaultError, NotFound
from casvault.index import Query
from casvault.quota import percent
from casvault.records import Record, timestamp, to_dict
from casvault.secondary import FACETS
from casvault.store import Store
from casvault.trash import purge_expired
from casvault.validate import check_filename, check_tags, check_user_id

from . import archive
from .auth import check_csrf, current_user, require_token
from .errors import SERVER_MESSAGES, ApiError
from .ext import get_store
from .files import PRIVATE_CACHE, send_original, send_thumb, wants_download

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE_SIZE = 200
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_BULK_IDS = 500
MAX_PREFIX = 200
# Endpoints authenticated by a bearer token, not the cookie: no CSRF check.
TOKEN_ENDPOINTS = {"api.ingest"}
KIND_OF_COLLECTION = {"images": "generated", "inputs": "input", "controls": "control"}
COLLECTION_OF_KIND = {kind: name for name, kind in KIND_OF_COLLECTION.items()}
BULK_ACTIONS = ("delete", "restore", "purge", "favorite", "unfavorite", "tag", "untag")
# A bulk request by filter acts on at most this many records.
MAX_FILTER_IDS = 10_000
# The listing parameters a bulk request's filter may carry.
LISTING_FILTERS = (
    "from_date", "to_date", "aspect_ratio", "tag", "workflow_id", "model", "lora", "sampler", "q", "favorite", "include",
)
# Which source kinds each library may copy from, by body field.
COPY_SOURCES = {
    "input": {"image_id": "generated", "control_id": "control"},
    "control": {"image_id": "generated", "input_id": "input"},
}


@bp.before_request
def _csrf() -> None:
    if request.endpoint not in TOKEN_ENDPOINTS:
        check_csrf()


# --- serialisation -----------------------------------------------------------


def serialize(store: Store, record: Record) -> dict[str, Any]:
    """A record as the API shows it, with ``url`` and ``thumb_url``.

    Active images are served from /outputs (static, cacheable); trashed ones
    only through the owner's API (``/api/v1/<collection>/<id>/file|thumb``).
    """
    data = to_dict(record)
    if record.status == "active":
        image, _, thumb = store.layout.paths(record)
        data["url"] = store.layout.rel_url(image)
        data["thumb_url"] = store.layout.rel_url(thumb) if record.thumb else None
    else:
        base = f"/api/v1/{COLLECTION_OF_KIND[record.kind]}/{record.id}"
        data["url"] = f"{base}/file"
        data["thumb_url"] = f"{base}/thumb" if record.thumb else None
    return data


# --- request parsing -------------------------------------------------------------


def int_arg(name: str, default: int, lo: int, hi: int, args: Mapping[str, str] | None = None) -> int:
    """An integer query parameter (of ``args``, default the request's) within bounds; raises a 400 ApiError."""
    raw = (request.args if args is None else args).get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"{name} must be between {lo} and {hi}", field=name)
    return value


def parse_query(store: Store, kind: str, args: Mapping[str, str] | None = None) -> Query:
    """The listing parameters of this request (or of ``args``) as a Query; raises 400 on bad values."""
    args = request.args if args is None else args
    include = args.get("include", "active")
    if include not in ("active", "trash", "all"):
        raise ApiError(400, "bad_request", "include must be active, trash or all", field="include")
    for name in ("from_date", "to_date"):
        if args.get(name) and not DATE_RE.fullmatch(args[name]):
            raise ApiError(400, "bad_request", f"{name} must be YYYY-MM-DD", field=name)
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
        model=args.get("model") or None,
        lora=args.get("lora") or None,
        sampler=args.get("sampler") or None,
        words=tuple(q.split()),
        favorite=favorite in ("1", "true"),
        cursor=args.get("cursor") or None,
        page=int_arg("page", 1, 1, 1_000_000, args),
        size=int_arg("size", 50, 1, MAX_PAGE_SIZE, args),
    )


def json_body(allowed: tuple[str, ...], *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; raises 400 for anything else or an unknown field.

    With ``required=False`` an empty body counts as ``{}``.
    """
    if not required and not request.get_data(cache=True):
        return {}
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field {unknown[0]!r}", field=unknown[0])
    return data


def tag_list(value: Any) -> list[str]:
    """A JSON tag list (strings only); raises 400."""
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ApiError(400, "bad_request", "tags must be a list of strings", field="tags")
    return check_tags(value)


def parse_since() -> float | None:
    """The ``since`` parameter (an ISO 8601 time) as epoch seconds, or None; raises 400."""
    raw = request.args.get("since")
    if not raw:
        return None
    try:
        return timestamp(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "since must be an ISO 8601 time", field="since") from None


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


def created(body: dict[str, Any]) -> Response:
    """A 201 JSON answer."""
    resp = jsonify(body)
    resp.status_code = 201
    return resp


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


def purge_failures(failed: list[dict[str, Any]], *, with_owner: bool) -> list[dict[str, Any]]:
    """A purge report's failures as the API shows them: the reason goes to the log, a generic message out."""
    shown = []
    for f in failed:
        current_app.logger.error("purge of %s/%s failed: %s", f["owner"], f["id"], f["reason"])
        item = {"id": f["id"], "code": f["code"], "message": SERVER_MESSAGES.get(f["code"], "internal server error")}
        if with_owner:
            item["owner"] = f["owner"]
        shown.append(item)
    return shown


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


def _upload_file() -> tuple[bytes, str | None]:
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "bad_request", "multipart field 'file' is missing", field="file")
    data = upload.read()
    return data, upload.filename


def _created(store: Store, result) -> Response:
    body = serialize(store, result.record)
    if result.in_trash:
        body["duplicate_in_trash"] = result.in_trash
    return created(body)


def _single_form_fields() -> None:
    """Refuse a multipart form that repeats a field (which value would count is ambiguous)."""
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            raise ApiError(400, "bad_request", f"form field {name!r} is repeated", field=name)
    if len(request.files.getlist("file")) > 1:
        raise ApiError(400, "bad_request", "send one file per request", field="file")


def upload(kind: str) -> Response:
    """Store an uploaded file as the visitor's input or control image."""
    store = get_store()
    _single_form_fields()
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


# --- pipeline --------------------------------------------------------------------

INGEST_FIELDS = ("workflow_id", "aspect_ratio", "seed", "prompt", "negative_prompt", "created_at")


@bp.post("/ingest")
@require_token("ingest")
def ingest():
    """The JobManager's path: store a generated (or control/input) image for ``owner``."""
    store = get_store()
    _single_form_fields()
    data, filename = _upload_file()
    form = request.form
    owner = form.get("owner")
    if not owner:
        raise ApiError(400, "bad_request", "form field 'owner' is missing", field="owner")
    kind = form.get("kind") or "generated"
    fields = {k: form.get(k) or None for k in INGEST_FIELDS} if kind == "generated" else {}
    if kind != "generated" and form.get("created_at"):
        fields["created_at"] = form.get("created_at")
    original_filename = form.get("original_filename") or filename
    existing = _existing_for_if_exists(store, data, owner, kind, original_filename)
    if existing is not None:
        return jsonify({**serialize(store, existing), "skipped_duplicate": True})
    result = store.ingest(
        data,
        owner,
        kind,
        original_filename=original_filename,
        tags=form.get("tags"),
        **fields,
    )
    return _created(store, result)


def _existing_for_if_exists(store: Store, data: bytes, owner: str, kind: str, filename: str | None) -> Record | None:
    """With ``if_exists=skip``, the owner's record of the same bytes, file name and kind; else None.

    ``new`` (the default) makes a record for every call: each generation is
    an event. ``skip`` is the CLI's rerun rule, for a pipeline that retries.
    """
    mode = request.form.get("if_exists") or "new"
    if mode not in ("new", "skip"):
        raise ApiError(400, "bad_request", "if_exists must be 'new' or 'skip'", field="if_exists")
    if mode == "new":
        return None
    rid = store.find_duplicate(check_user_id(owner), digest(data), check_filename(filename), kind)
    return store.get(owner, rid) if rid is not None else None


# --- the API's own description -------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document of this API."""
    from .openapi import document

    return jsonify(document())

