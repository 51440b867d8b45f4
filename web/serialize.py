"""Records and results as the web API shows them."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify

from casvault.records import Record, to_dict
from casvault.store import IngestResult, Store

from .errors import SERVER_MESSAGES
from .params import COLLECTION_OF_KIND


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


def created(body: dict[str, Any]) -> Response:
    """A 201 JSON answer."""
    resp = jsonify(body)
    resp.status_code = 201
    return resp


def created_record(store: Store, result: IngestResult) -> Response:
    """The 201 answer of a new record, naming its trashed twins (``duplicate_in_trash``)."""
    body = serialize(store, result.record)
    if result.in_trash:
        body["duplicate_in_trash"] = result.in_trash
    return created(body)


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
