"""Request parsing shared by the web blueprints: limits, listing queries, JSON bodies, uploads."""

from __future__ import annotations

import re
from typing import Any, Mapping

from flask import request

from casvault.index import Query
from casvault.records import timestamp
from casvault.store import Store
from casvault.validate import check_tags

from .errors import ApiError

MAX_PAGE_SIZE = 200
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_BULK_IDS = 500
MAX_PREFIX = 200
KIND_OF_COLLECTION = {"images": "generated", "inputs": "input", "controls": "control"}
COLLECTION_OF_KIND = {kind: name for name, kind in KIND_OF_COLLECTION.items()}
BULK_ACTIONS = ("delete", "restore", "purge", "favorite", "unfavorite", "tag", "untag")
# A bulk request by filter acts on at most this many records.
MAX_FILTER_IDS = 10_000
# The listing parameters a bulk request's filter may carry.
LISTING_FILTERS = (
    "from_date", "to_date", "aspect_ratio", "tag", "workflow_id", "model", "lora", "sampler", "q", "favorite", "include",
)


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


def upload_file() -> tuple[bytes, str | None]:
    """The multipart ``file`` field's bytes and file name; raises 400 when it is missing."""
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "bad_request", "multipart field 'file' is missing", field="file")
    data = upload.read()
    return data, upload.filename


def single_form_fields() -> None:
    """Refuse a multipart form that repeats a field (which value would count is ambiguous)."""
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            raise ApiError(400, "bad_request", f"form field {name!r} is repeated", field=name)
    if len(request.files.getlist("file")) > 1:
        raise ApiError(400, "bad_request", "send one file per request", field="file")
