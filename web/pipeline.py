"""The JobManager's endpoints under ``/api/v1``: ingest, stage an input for ComfyUI, release staged names.

Every route here is authenticated by the ingest bearer token (checked once,
in ``before_request``, as ``admin`` does), never by the cookie: they name an
owner (and a folder) in the request, so they are never open to a visitor and
need no CSRF check.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from casvault import staging
from casvault.blobs import digest
from casvault.records import Record
from casvault.store import Store
from casvault.validate import check_filename, check_user_id

from .auth import require_token
from .errors import ApiError
from .ext import get_store
from .params import single_form_fields, upload_file
from .serialize import created_record, serialize

bp = Blueprint("pipeline", __name__, url_prefix="/api/v1")

MAX_RELEASE_NAMES = 1000


@bp.before_request
@require_token("ingest")
def _pipeline_only() -> None:
    """Refuse the request unless it carries the ingest token."""


INGEST_FIELDS = ("workflow_id", "aspect_ratio", "seed", "prompt", "negative_prompt", "created_at")


@bp.post("/ingest")
def ingest():
    """The JobManager's path: store a generated (or control/input) image for ``owner``."""
    store = get_store()
    single_form_fields()
    data, filename = upload_file()
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
    return created_record(store, result)


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
