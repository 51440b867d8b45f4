"""The ComfyUI bridge over HTTP: download an image's workflow, stage inputs for a job.

``GET /api/v1/images/<id>/workflow`` is the visitor's (cookie; a GET needs
no CSRF check): the UI workflow saved in the PNG, ready to drop into
ComfyUI, or with ``?format=api`` the API-format graph that ran. Staging and
release are the JobManager's (ingest bearer token): they name an owner and
a folder in the body, so they are never open to a cookie.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from casvault import comfy, staging

from .auth import check_csrf, current_user, require_token
from .errors import ApiError
from .ext import get_store

bp = Blueprint("comfy", __name__, url_prefix="/api/v1")

# Endpoints authenticated by a bearer token, not the cookie: no CSRF check.
TOKEN_ENDPOINTS = {"comfy.stage_input", "comfy.release_staged"}
MAX_RELEASE_NAMES = 1000
FORMATS = {"ui": (comfy.workflow_json, "workflow"), "api": (comfy.prompt_json, "workflow-api")}


@bp.before_request
def _csrf() -> None:
    if request.endpoint not in TOKEN_ENDPOINTS:
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


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


def _input_dir(body: dict[str, Any]) -> str:
    """The folder named in the body, else the configured one; raises a 400 when there is none."""
    # NOTE: the body may name the folder because the ingest token is the
    # JobManager's, as trusted as the server's own configuration; only
    # staged names (casvault_<id>_<hex>.<ext>) are ever written or removed.
    raw = body.get("comfy_input_dir")
    if raw is not None and not isinstance(raw, str):
        raise ApiError(400, "bad_request", "comfy_input_dir must be a string", field="comfy_input_dir")
    folder = raw or staging.input_dir_from(get_store().config)
    if not folder:
        raise ApiError(
            400, "bad_request", "no ComfyUI input folder: set COMFY_INPUT_DIR or send comfy_input_dir",
            field="comfy_input_dir",
        )
    return folder


@bp.post("/inputs/<rid>/stage")
@require_token("ingest")
def stage_input(rid: str):
    """Place one of ``owner``'s images in ComfyUI's input folder; answer the name for LoadImage."""
    body = _json_body()
    owner = body.get("owner")
    if not owner:
        raise ApiError(400, "bad_request", "owner is missing", field="owner")
    folder = _input_dir(body)
    name = staging.stage_for_comfy(get_store(), owner, rid, folder)
    resp = jsonify(name=name, dir=folder)
    resp.status_code = 201
    return resp


@bp.post("/staged/release")
@require_token("ingest")
def release_staged():
    """Remove staged names after a job (best-effort: missing names are fine)."""
    body = _json_body()
    names = body.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ApiError(400, "bad_request", "names must be a list of strings", field="names")
    if len(names) > MAX_RELEASE_NAMES:
        raise ApiError(400, "bad_request", f"at most {MAX_RELEASE_NAMES} names at once", field="names")
    folder = _input_dir(body)
    return jsonify(removed=staging.release_staged(names, folder))
