"""The ComfyUI bridge over HTTP: download an image's workflow, stage inputs for a job.

``GET /api/v1/images/<id>/workflow`` is the visitor's (cookie; a GET needs
no CSRF check): the UI workflow saved in the PNG, ready to drop into
ComfyUI, or with ``?format=api`` the API-format graph that ran. Staging and
release are the JobManager's (ingest bearer token): they name an owner and
a folder in the body, so they are never open to a cookie.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from casvault import comfy

from .auth import check_csrf, current_user
from .errors import ApiError
from .ext import get_store

bp = Blueprint("comfy", __name__, url_prefix="/api/v1")

FORMATS = {"ui": (comfy.workflow_json, "workflow"), "api": (comfy.prompt_json, "workflow-api")}


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.get("/images/<rid>/workflow")
def image_workflow(rid: str) -> Response:
    """The ComfyUI workflow stored in one of the visitor's images or videos, as a JSON download."""
    fmt = request.args.get("format", "ui")
    if fmt not in FORMATS:
        raise ApiError(400, "bad_request", "format must be ui or api", field="format")
    store = get_store()
    record = store.get(current_user(), rid, "generated")
    read, suffix = FORMATS[fmt]
    # NOTE: ComfyUI writes its graph into PNG, APNG, WebP, MP4 and WebM files, never JPEG.
    body = read(store.read_original(record)) if record.mime != "image/jpeg" else None
    if body is None:
        what = "workflow" if fmt == "ui" else "API-format prompt"
        raise ApiError(404, "not_found", f"this image has no ComfyUI {what}", id=rid)
    resp = Response(body, mimetype="application/json")
    resp.headers["Content-Disposition"] = f"attachment; filename={record.id}-{suffix}.json"
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
