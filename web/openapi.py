"""The OpenAPI 3.0 document of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand next to the code it describes; ``tests/test_openapi.py``
checks the running app against it with schemathesis and checks that every
Flask route under /api/v1 is documented.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from casvault.secondary import FACETS
from casvault.shares import MAX_EXPIRES_IN, MIN_EXPIRES_IN

from .params import BULK_ACTIONS, LISTING_FILTERS, MAX_BULK_IDS, MAX_FILTER_IDS, MAX_PAGE_SIZE, MAX_PREFIX
from .archive import MAX_IDS

JSON = "application/json"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/webm")  # ComfyUI's video outputs, stored as generated records
COLLECTIONS = {"images": "generated image", "inputs": "input image", "controls": "control image"}

Schema = dict[str, Any]
USER_ID_PATTERN = "^(anon-[0-9a-f]{32}|u-[a-z0-9_-]{1,64})$"


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ERRORS = {
    400: "A field or parameter is malformed",
    401: "No or wrong bearer token",
    403: "Cross-site write refused (send X-Requested-With or a same-origin Origin)",
    404: "Unknown id, another user's id, or no such path",
    405: "Method not allowed",
    409: "The record's state does not allow this (e.g. already in the trash)",
    413: "Too large",
    415: "Not a PNG, JPEG or WebP image",
    500: "Internal error",
    503: ("The user's lock is busy (lock_busy), the decode budget is full (busy, with Retry-After), or, for "
          "/readyz, a part of the store does not answer (not_ready, with checks); retry"),
    507: "Quota exceeded (code quota_exceeded, with usage) or disk full",
}


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _op(summary: str, responses: dict[str, Schema], *, params: list[Schema] | None = None,
        body: Schema | None = None, tag: str, security: str | None = None, write: bool = False,
        op_id: str) -> Schema:
    op: Schema = {"summary": summary, "operationId": op_id, "tags": [tag], "responses": dict(responses)}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if security:
        op["security"] = [{security: []}]
        op["responses"].update(_errors(401))
    if write and not security:
        op["responses"].update(_errors(403))
    op["responses"].update(_errors(405, 500))
    return op


def _json_body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _q(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


DATE = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]}
ID_PARAM = {
    "name": "rid", "in": "path", "required": True, "description": "Record id: 32 lowercase hex",
    "schema": {"type": "string"},
}
LIST_PARAMS = [
    _q("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}, "Page number (1-based)"),
    _q("size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50}, "Page size"),
    _q("cursor", {"type": "string"}, "Opaque cursor from next_cursor: stable while images are added"),
    _q("include", {"type": "string", "enum": ["active", "trash", "all"], "default": "active"}, "Status filter"),
    _q("from_date", DATE, "First day (YYYY-MM-DD, partition time zone; empty: none)"),
    _q("to_date", DATE, "Last day, inclusive"),
]
SINCE_PARAM = _q(
    "since", {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]},
    "ISO 8601 time: only the first page's records created after it (total is their count, no cursor); "
    "the gallery polls with it for live updates",
)
FILTER_PARAMS = [
    _q("aspect_ratio", {"type": "string"}, "Exact aspect ratio, e.g. 16:9"),
    _q("tag", {"type": "string"}, "Only records with this tag"),
    _q("workflow_id", {"type": "string"}, "Only records of this workflow"),
    _q("model", {"type": "string"}, "Only images made with this model (exact name)"),
    _q("lora", {"type": "string"}, "Only images made with this LoRA (exact name)"),
    _q("sampler", {"type": "string"}, "Only images made with this sampler (exact name)"),
    _q("q", {"type": "string", "maxLength": 500},
       "Search prompt, negative prompt, model, LoRA names, sampler, seed and original file name: every word "
       "must match a word by prefix, or within one typo for words of 4 or more characters; case-insensitive"),
    _q("favorite", {"type": "string", "enum": ["", "0", "1", "true", "false"]}, "1: favorites only"),
]


def _bulk_by_filter(actions: list[str], tags: Schema | None) -> Schema:
    """A bulk request by filter: every image the listing with these parameters holds, less ``except``."""
    properties: dict[str, Schema] = {
        "action": {"type": "string", "enum": actions},
        "filter": {"type": "object", "additionalProperties": False, "properties": {
            p["name"]: p["schema"] for p in LIST_PARAMS + FILTER_PARAMS if p["name"] in LISTING_FILTERS
        }},
        "except": {"type": "array", "items": {"type": "string"}},
    }
    if tags is not None:
        properties["tags"] = tags
    return {
        "description": f"By filter: the whole listing (at most {MAX_FILTER_IDS} images) less the ids in except",
        "type": "object", "additionalProperties": False, "properties": properties,
        "required": ["action", "filter", "tags"] if tags is not None else ["action", "filter"],
    }


def _binary(types: tuple[str, ...], description: str) -> Schema:
    return {"description": description, "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in types}}


def _file_responses() -> dict[str, Schema]:
    return {
        "200": _binary((*IMAGE_TYPES, *VIDEO_TYPES), "The image bytes (nosniff; ETag is the sha256 for originals)"),
        "206": _binary(VIDEO_TYPES + IMAGE_TYPES, "The requested byte range of an original (Range: bytes=...)"),
        "304": {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        **_errors(404),
    }


def _collection_paths(name: str, what: str) -> dict[str, Schema]:
    tag = name
    paths: dict[str, Schema] = {}
    paths[f"/api/v1/{name}"] = {"get": _op(
        f"List the visitor's {what}s, newest first", {"200": _json(ref("Page"), "One page"), **_errors(400)},
        params=LIST_PARAMS + [SINCE_PARAM] + (FILTER_PARAMS if name == "images" else []), tag=tag, op_id=f"list_{name}",
    )}
    one = f"/api/v1/{name}/{{rid}}"
    paths[one] = {"get": _op(
        f"One {what}", {"200": _json(ref("Record"), "The record"), **_errors(404)},
        params=[ID_PARAM], tag=tag, op_id=f"get_{name}",
    )}
    paths[f"{one}/file"] = {"get": _op(
        f"The original of a {what} (active or trashed)", _file_responses(),
        params=[ID_PARAM, _q("download", {"type": "string", "enum": ["0", "1"]}, "1: as an attachment")],
        tag=tag, op_id=f"file_{name}",
    )}
    paths[f"{one}/thumb"] = {"get": _op(
        f"The thumbnail of a {what} (active or trashed)", _file_responses(), params=[ID_PARAM], tag=tag,
        op_id=f"thumb_{name}",
    )}
    for action, summary, codes in (
        ("delete", "Move to the trash", (404, 409, 503)),
        ("restore", "Bring back from the trash", (404, 409, 503)),
    ):
        paths[f"{one}/{action}"] = {"post": _op(
            f"{summary} ({what})", {"200": _json(ref("Record"), "The record now"), **_errors(*codes)},
            params=[ID_PARAM], tag=tag, write=True, op_id=f"{action}_{name}",
        )}
    paths[f"{one}/purge"] = {"post": _op(
        f"Delete a trashed {what} for good", {"200": _json(ref("Purged"), "Purged"), **_errors(404, 409, 503)},
        params=[ID_PARAM], tag=tag, write=True, op_id=f"purge_{name}",
    )}
    if name != "images":
        kind = "input" if name == "inputs" else "control"
        paths[f"/api/v1/{name}/upload"] = {"post": _op(
            f"Upload a {what}", {"201": _json(ref("Record"), "Stored"), **_errors(400, 413, 415, 503, 507)},
            body={"required": True, "content": {"multipart/form-data": {"schema": ref("Upload")}}},
            tag=tag, write=True, op_id=f"upload_{name}",
        )}
        paths[f"/api/v1/{name}/copy"] = {"post": _op(
            f"Make a {what} from one of the visitor's records (same blob, no bytes copied)",
            {"201": _json(ref("Record"), "The new record"), **_errors(400, 404, 409, 503, 507)},
            body=_json_body(ref(f"Copy{kind.title()}")), tag=tag, write=True, op_id=f"copy_{name}",
        )}
    return paths


def _image_paths() -> dict[str, Schema]:
    tag = "images"
    one = "/api/v1/images/{rid}"
    return {
        one: {"patch": _op(
            "Set tags and/or favorite", {"200": _json(ref("Record"), "The record now"), **_errors(400, 404, 503)},
            params=[ID_PARAM], body=_json_body(ref("MetaChange")), tag=tag, write=True, op_id="patch_images",
        )},
        f"{one}/share": {"post": _op(
            "An opaque, revocable, expiring share link (409: trashed, or too many live links)",
            {"201": _json(ref("Share"), "The link"), **_errors(400, 404, 409, 503)},
            params=[ID_PARAM], body=_json_body(ref("ShareRequest"), required=False), tag=tag, write=True,
            op_id="share_images",
        )},
        "/api/v1/shares": {"get": _op(
            "The visitor's live share links, newest first",
            {"200": _json({"type": "object", "required": ["shares"], "properties": {
                "shares": {"type": "array", "items": ref("Share")}}}, "The live links")},
            tag="share", op_id="list_shares",
        )},
        "/api/v1/shares/{share_id}": {"delete": _op(
            "Revoke one of the visitor's share links now",
            {"200": _json({"type": "object", "required": ["id", "revoked"], "properties": {
                "id": {"type": "string"}, "revoked": {"type": "boolean"}}}, "Revoked"), **_errors(404, 503)},
            params=[{"name": "share_id", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": "The share's id (its token)"}],
            tag="share", write=True, op_id="revoke_share",
        )},
        "/api/v1/images/facets": {"get": _op(
            "The most frequent models, LoRAs, samplers, workflows, aspect ratios and tags, with counts, "
            "among the visitor's images that the listing's filters select",
            {"200": _json(ref("Facets"), "Top values per field, counts descending"), **_errors(400)},
            params=LIST_PARAMS[3:] + FILTER_PARAMS + [
                _q("field", {"type": "string", "enum": list(FACETS)}, "Only this field"),
                _q("prefix", {"type": "string", "maxLength": MAX_PREFIX},
                   "Only values starting with this (case-insensitive; for autocomplete)"),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Values per field"),
            ],
            tag=tag, op_id="facets_images",
        )},
        "/api/v1/images/bulk": {"post": _op(
            "One action on many images; answers per id", {"200": _json(ref("BulkAnswer"), "Per-id results"), **_errors(400)},
            body=_json_body(ref("BulkRequest")), tag=tag, write=True, op_id="bulk_images",
        )},
        "/api/v1/images/purge-trash": {"post": _op(
            "Empty the visitor's trash (all kinds) for good",
            {"200": _json(ref("PurgeTrashAnswer"),
                          "What was purged; 200 also when some record failed, each listed in `failed`"),
             **_errors(400, 503)},
            body=_json_body({"type": "object", "maxProperties": 0}, required=False), tag=tag, write=True,
            op_id="purge_trash_images",
        )},
        "/api/v1/images/download.zip": {"get": _op(
            "A streamed ZIP of the named images (originals, byte for byte)",
            {"200": _binary(("application/zip",), "The archive"), **_errors(400, 404)},
            params=[_q(
                "ids", {"type": "string", "pattern": "^[0-9a-f]{32}(,[0-9a-f]{32})*$"},
                f"Comma-separated image ids, at most {MAX_IDS}", required=True,
            )],
            tag=tag, op_id="download_zip",
        ), "post": _op(
            "The same streamed ZIP for a form post: selections too long for a URL",
            {"200": _binary(("application/zip",), "The archive"), **_errors(400, 404)},
            body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["ids"], "properties": {"ids": {
                    "type": "string", "pattern": "^[0-9a-f]{32}(,[0-9a-f]{32})*$",
                    "description": f"Comma-separated image ids, at most {MAX_IDS}",
                }},
            }}}},
            tag=tag, write=True, op_id="download_zip_form",
        )},
    }


INGEST_RULE = (
    "Every call makes a new record by default (if_exists=new), even for bytes the owner already has: each "
    "generation is an event. A pipeline that retries a call sends if_exists=skip: when the owner already has a "
    "record of the same bytes, original file name and kind, that record is answered (200, skipped_duplicate: "
    "true) and nothing is stored; this is the rule `casvault ingest` and comfy-sync always follow. The "
    "aspect_ratio, when not sent, is derived from the pixels."
)


def _other_paths() -> dict[str, Schema]:
    admin = "adminToken"
    return {
        "/api/v1/quota": {"get": _op(
            "The visitor's usage, limits and what emptying the trash would free",
            {"200": _json(ref("Quota"), "Usage and limits")}, tag="quota", op_id="quota",
        )},
        "/api/v1/ingest": {"post": {**_op(
            "Store a generated (or input/control) image for a user (the pipeline)",
            {"201": _json(ref("Record"), "Stored"),
             "200": _json(ref("Record"), "if_exists=skip: the existing record (with skipped_duplicate: true)"),
             **_errors(400, 413, 415, 503, 507)},
            body={"required": True, "content": {"multipart/form-data": {"schema": ref("Ingest")}}},
            tag="pipeline", security="ingestToken", op_id="ingest",
        ), "description": INGEST_RULE}},
        "/api/v1/openapi.json": {"get": _op(
            "This document", {"200": _json({"type": "object"}, "OpenAPI 3.0")}, tag="meta", op_id="openapi",
        )},
        "/api/v1/admin/users": {"get": _op(
            "Every user with counts, bytes and last activity",
            {"200": _json(ref("AdminUsers"), "Users, most recently active first"), **_errors(400)},
            params=[_q("kind", {"type": "string", "enum": ["member", "guest"]}, "Only members or only guests")],
            tag="admin", security=admin, op_id="admin_users",
        )},
        "/api/v1/admin/images": {"get": _op(
            "Records of one user or of all users, newest first",
            {"200": _json(ref("Page"), "One page"), **_errors(400)},
            params=[
                _q("user_id", {"anyOf": [{"type": "string", "pattern": USER_ID_PATTERN}, {"type": "string", "maxLength": 0}]},
                   "Only this user (empty or absent: all users)"),
                _q("kind", {"type": "string", "enum": ["generated", "input", "control"], "default": "generated"}, "Kind"),
                *LIST_PARAMS,
            ],
            tag="admin", security=admin, op_id="admin_images",
        )},
        "/api/v1/admin/images/{rid}/file": {"get": _op(
            "Any record's original", _file_responses(), params=[ID_PARAM], tag="admin", security=admin,
            op_id="admin_file",
        )},
        "/api/v1/admin/images/{rid}/thumb": {"get": _op(
            "Any record's thumbnail", _file_responses(), params=[ID_PARAM], tag="admin", security=admin,
            op_id="admin_thumb",
        )},
        "/api/v1/admin/images/{rid}/delete": {"post": _op(
            "Move any record to the trash", {"200": _json(ref("Record"), "The record now"), **_errors(404, 409, 503)},
            params=[ID_PARAM], tag="admin", security=admin, op_id="admin_delete",
        )},
        "/api/v1/admin/images/{rid}/restore": {"post": _op(
            "Bring any record back from the trash",
            {"200": _json(ref("Record"), "The record now"), **_errors(404, 409, 503)},
            params=[ID_PARAM], tag="admin", security=admin, op_id="admin_restore",
        )},
        "/api/v1/admin/purge-trash": {"post": _op(
            "Purge records trashed more than N days ago (default: the retention)",
            {"200": _json(ref("AdminPurgeAnswer"),
                          "What was purged; 200 also when some record failed, each listed in `failed`"),
             **_errors(400, 503)},
            body=_json_body(ref("AdminPurgeRequest"), required=False), tag="admin", security=admin,
            op_id="admin_purge_trash",
        )},
        "/api/v1/admin/users/{anon_id}/merge": {"post": _op(
            "Move every record of a guest to a member (crash-safe, resumable)",
            {"200": _json(ref("MergeReport"), "What the merge did"), **_errors(400, 409, 503)},
            params=[{"name": "anon_id", "in": "path", "required": True, "description": "The guest",
                     "schema": {"type": "string", "pattern": "^anon-[0-9a-f]{32}$"}}],
            body=_json_body({"type": "object", "required": ["member_id"], "additionalProperties": False, "properties": {
                "member_id": {"type": "string", "pattern": "^u-[a-z0-9_-]{1,64}$"}, "dry_run": {"type": "boolean"}}}),
            tag="admin", security=admin, op_id="admin_merge_user",
        )},
        "/s/{token}": {"get": _op(
            "The share page: the image and its prompt",
            {
                "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                "404": {"description": "Unknown, expired, revoked or trashed", "content": {"text/html": {"schema": {"type": "string"}}}},
            },
            params=[{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            tag="share", op_id="share_page",
        )},
        "/s/{token}/image": {"get": _op(
            "The shared original", {"200": _binary(IMAGE_TYPES, "The image"), "304": {"description": "Not modified"},
                                    **_errors(404)},
            params=[{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            tag="share", op_id="share_image",
        )},
    }


def _me_paths() -> dict[str, Schema]:
    """Who the caller is, and the explicit guest → member handover (web/me.py)."""
    who = {"user_id": {"type": "string", "pattern": USER_ID_PATTERN}, "kind": {"type": "string", "enum": ["guest", "member"]}}
    return {
        "/api/v1/me": {"get": _op(
            "Who the caller is: a guest (anon_id cookie) or a member (the site's JWT or proxy header)",
            {"200": _json({"type": "object", "required": ["user_id", "kind"], "properties": who}, "The caller")},
            tag="identity", op_id="me",
        )},
        "/api/v1/me/claim": {"post": _op(
            "Move the guest cookie's history to the signed-in member (once; clears the guest cookie)",
            {"200": _json({"type": "object", "required": ["user_id", "kind", "claimed", "moved", "trash", "complete"], "properties": {
                **who, "claimed": {"type": "string", "nullable": True, "description": "The guest id handed over"},
                "moved": {"type": "integer", "minimum": 0}, "trash": {"type": "integer", "minimum": 0},
                "complete": {"type": "boolean", "description": "false: a big history; post again to carry on"}}},
                "What was handed over (claimed null: no guest cookie)"),
             **_errors(401, 503)},
            body=_json_body({"type": "object", "additionalProperties": False}, required=False),
            tag="identity", write=True, op_id="me_claim",
        )},
    }


def _ops_paths() -> dict[str, Schema]:
    """Health, readiness and metrics (web/health.py, web/metrics.py): for load balancers and monitoring."""
    checks = {"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "error", "timeout"]},
              "description": "Each part probed: store, and postgres and s3 when configured"}
    metrics = _op(
        "Prometheus text format (CASVAULT_METRICS=1; the admin token or a CASVAULT_METRICS_NETWORKS address)",
        {"200": {"description": "Metrics of every worker", "content": {"text/plain": {"schema": {"type": "string"}}}},
         **_errors(401, 404)},
        tag="ops", op_id="metrics",
    )
    metrics["security"] = [{"adminToken": []}, {}]  # NOTE: an allowed network needs no token
    return {
        "/healthz": {"get": _op(
            "The process answers (liveness)",
            {"200": _json({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}},
                          "Alive")},
            tag="ops", op_id="healthz",
        )},
        "/readyz": {"get": _op(
            "The store answers, and PostgreSQL and the bucket when configured, within 1.5 s (readiness)",
            {"200": _json({"type": "object", "required": ["status", "checks"], "properties": {
                "status": {"type": "string", "enum": ["ready"]}, "checks": checks}}, "Ready"),
             **_errors(503)},
            tag="ops", op_id="readyz",
        )},
        "/metrics": {"get": metrics},
    }


def _comfy_paths() -> dict[str, Schema]:
    """The ComfyUI bridge's routes (web/comfy.py)."""
    folder = {"type": "string", "description": "ComfyUI input folder (default: COMFY_INPUT_DIR)"}
    return {
        "/api/v1/images/{rid}/workflow": {"get": _op(
            "The ComfyUI workflow saved in an image (format=api: the prompt graph that ran)",
            {"200": _json({"type": "object"}, "The workflow, as a download"), **_errors(400, 404)},
            params=[ID_PARAM, _q("format", {"type": "string", "enum": ["ui", "api"], "default": "ui"}, "Which graph")],
            tag="comfy", op_id="image_workflow",
        )},
        "/api/v1/inputs/{rid}/stage": {"post": _op(
            "Place one of owner's images in ComfyUI's input folder (the JobManager)",
            {"201": _json({"type": "object", "required": ["name", "dir"], "properties": {
                "name": {"type": "string"}, "dir": {"type": "string"}}}, "The name for LoadImage"),
             **_errors(400, 404, 409, 503)},
            params=[ID_PARAM],
            body=_json_body({"type": "object", "required": ["owner"], "properties": {
                "owner": {"type": "string", "pattern": USER_ID_PATTERN}, "comfy_input_dir": folder}}),
            tag="comfy", security="ingestToken", op_id="stage_input",
        )},
        "/api/v1/staged/release": {"post": _op(
            "Remove staged names after a job (best-effort)",
            {"200": _json({"type": "object", "required": ["removed"], "properties": {"removed": {"type": "integer"}}},
                          "How many were removed"), **_errors(400)},
            body=_json_body({"type": "object", "required": ["names"], "properties": {
                "names": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}, "comfy_input_dir": folder}}),
            tag="comfy", security="ingestToken", op_id="release_staged",
        )},
    }


def _record_schema() -> Schema:
    nullable_str = {"type": "string", "nullable": True}
    return {
        "type": "object",
        "required": ["id", "owner", "kind", "mime", "bytes", "sha256", "created_at", "status", "tags", "url", "thumb_url"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "owner": {"type": "string"},
            "kind": {"type": "string", "enum": ["generated", "input", "control"]},
            "original_filename": nullable_str,
            "mime": {"type": "string", "enum": [*IMAGE_TYPES, *VIDEO_TYPES]},
            "bytes": {"type": "integer", "minimum": 0},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "created_at": {"type": "string", "format": "date-time"},
            "status": {"type": "string", "enum": ["active", "trash"]},
            "thumb": nullable_str,
            "tags": {"type": "array", "items": {"type": "string"}},
            "width": {"type": "integer", "nullable": True},
            "height": {"type": "integer", "nullable": True},
            "favorite": {"type": "boolean"},
            "trashed_at": {"type": "string", "format": "date-time", "nullable": True},
            "workflow_id": nullable_str,
            "aspect_ratio": nullable_str,
            "seed": {"type": "integer", "nullable": True},
            "prompt": nullable_str,
            "negative_prompt": nullable_str,
            "blake3": nullable_str,
            "source": {"type": "object", "nullable": True},
            "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$", "description": "Average colour of the thumbnail"},
            "url": {"type": "string"},
            "thumb_url": nullable_str,
            "duplicate_in_trash": {"type": "array", "items": {"type": "string"}},
            "frames": {"type": "integer", "description": "An animated image's or a video's frame count"},
            "duration_ms": {"type": "integer", "description": "How long it plays once"},
            "legacy_path": {"type": "string", "description": "An adopted file's old path under /outputs (redirects)"},
            "skipped_duplicate": {"type": "boolean", "description": "if_exists=skip answered an existing record"},
        },
    }


def _schemas() -> dict[str, Schema]:
    count_bytes = {
        "type": "object", "required": ["count", "bytes"],
        "properties": {"count": {"type": "integer"}, "bytes": {"type": "integer"}},
    }
    usage = {
        "type": "object", "required": ["count", "bytes", "trash_count", "trash_bytes"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in ("count", "bytes", "trash_count", "trash_bytes")},
    }
    limits = {
        "type": "object", "required": ["max_bytes", "max_count"],
        "properties": {"max_bytes": {"type": "integer", "nullable": True}, "max_count": {"type": "integer", "nullable": True}},
    }
    tags = {
        "type": "array", "maxItems": 64,
        "items": {"type": "string", "maxLength": 64, "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
    }
    record_id = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    bulk_ids = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_BULK_IDS}
    return {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                    "id": {"type": "string"}, "usage": usage, "limits": limits, "limit": {"type": "integer"},
                },
            }},
        },
        "Record": _record_schema(),
        "Facets": {
            "type": "object", "required": ["facets"], "additionalProperties": False,
            "properties": {"facets": {
                "type": "object", "additionalProperties": False,
                "properties": {name: {"type": "array", "items": ref("FacetValue")} for name in FACETS},
            }},
        },
        "FacetValue": {
            "type": "object", "required": ["value", "count"], "additionalProperties": False,
            "properties": {"value": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
        },
        "Page": {
            "type": "object", "required": ["items", "page", "size", "total", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": ref("Record")},
                "page": {"type": "integer"}, "size": {"type": "integer"}, "total": {"type": "integer"},
                "next_cursor": {"type": "string", "nullable": True},
            },
        },
        "MetaChange": {
            "type": "object", "additionalProperties": False,
            "properties": {"tags": tags, "favorite": {"type": "boolean"}},
        },
        "BulkRequest": {
            "description": "tag and untag need tags; the other actions take none",
            "oneOf": [
                {
                    "type": "object", "required": ["action", "ids", "tags"], "additionalProperties": False,
                    "properties": {"action": {"type": "string", "enum": ["tag", "untag"]}, "ids": bulk_ids, "tags": tags},
                },
                {
                    "type": "object", "required": ["action", "ids"], "additionalProperties": False,
                    "properties": {
                        "action": {"type": "string", "enum": [a for a in BULK_ACTIONS if a not in ("tag", "untag")]},
                        "ids": bulk_ids,
                    },
                },
                _bulk_by_filter(["tag", "untag"], tags),
                _bulk_by_filter([a for a in BULK_ACTIONS if a not in ("tag", "untag")], None),
            ],
        },
        "BulkAnswer": {
            "type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": {
                "type": "object", "required": ["id", "ok"],
                "properties": {
                    "id": {"type": "string"}, "ok": {"type": "boolean"},
                    "item": {"allOf": [ref("Record")], "nullable": True},
                    "bytes": {"type": "integer"},
                    "error": {"type": "object", "required": ["code", "message"],
                              "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                },
            }}},
        },
        "Purged": {
            "type": "object", "required": ["id", "purged", "bytes"],
            "properties": {"id": record_id, "purged": {"type": "boolean"}, "bytes": {"type": "integer"}},
        },
        "PurgeTrashAnswer": {
            "type": "object", "required": ["purged", "count", "bytes_freed", "failed"],
            "properties": {"purged": {"type": "array", "items": record_id}, "count": {"type": "integer"},
                           "bytes_freed": {"type": "integer"},
                           "failed": {"type": "array", "items": ref("PurgeFailure")}},
        },
        "PurgeFailure": {
            "type": "object", "required": ["id", "code", "message"],
            "description": "A record (or, with id null, a whole user) the purge could not delete; it stays in the trash",
            "properties": {"id": {"anyOf": [record_id, {"type": "null"}]}, "owner": {"type": "string"},
                           "code": {"type": "string"}, "message": {"type": "string"}},
        },
        "ShareRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"expires_in": {"type": "integer", "minimum": MIN_EXPIRES_IN, "maximum": MAX_EXPIRES_IN,
                                          "description": "Seconds; default 7 days"}},
        },
        "Share": {
            "type": "object", "required": ["id", "url", "image_id", "created_at", "expires_at"],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$", "description": "The token; revoke by it"},
                "url": {"type": "string", "pattern": "^/s/[A-Za-z0-9_-]{32}$"},
                "image_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
            },
        },
        "CopyInput": _copy_schema(("image_id", "control_id")),
        "CopyControl": _copy_schema(("image_id", "input_id")),
        "Upload": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}, "tags": {"type": "string",
                           "description": "Comma-separated tags"}},
        },
        "Ingest": {
            "type": "object", "required": ["file", "owner"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "owner": {"type": "string", "pattern": USER_ID_PATTERN},
                "kind": {"type": "string", "enum": ["generated", "input", "control"]},
                **{k: {"type": "string"} for k in (
                    "workflow_id", "aspect_ratio", "seed", "prompt", "negative_prompt", "created_at",
                    "original_filename", "tags",
                )},
                "if_exists": {"type": "string", "enum": ["new", "skip"], "default": "new",
                              "description": "What the same bytes, file name and kind already stored for the owner "
                                             "do: new (another record) or skip (answer the existing one, 200)"},
            },
        },
        "Quota": {
            "type": "object", "required": ["usage", "limits", "percent", "purge_would_free", "retention_days"],
            "properties": {
                "usage": usage, "limits": limits, "percent": {"type": "number", "nullable": True},
                "purge_would_free": count_bytes, "retention_days": {"type": "integer"},
            },
        },
        "AdminUsers": {
            "type": "object", "required": ["users", "count"],
            "properties": {"count": {"type": "integer"}, "users": {"type": "array", "items": {
                "type": "object",
                "required": ["user_id", "count", "bytes", "trash_count", "trash_bytes", "by_kind", "last_activity"],
                "properties": {
                    "user_id": {"type": "string"}, "kind": {"type": "string", "enum": ["member", "guest"]},
                    **usage["properties"],
                    "by_kind": {"type": "object", "additionalProperties": {
                        "type": "object", "properties": {"active": {"type": "integer"}, "trash": {"type": "integer"}}}},
                    "last_activity": {"type": "string", "format": "date-time", "nullable": True},
                },
            }}},
        },
        "MergeReport": {
            "type": "object", "required": ["guest", "member", "records", "moved", "dry_run"],
            "properties": {
                "guest": {"type": "string"}, "member": {"type": "string"}, "dry_run": {"type": "boolean"},
                **{k: {"type": "integer", "minimum": 0} for k in ("records", "moved", "finished", "skipped", "trash")},
            },
        },
        "AdminPurgeRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"older_than_days": {"type": "number", "minimum": 0, "maximum": 36500},
                           "dry_run": {"type": "boolean", "description": "List what would be purged; change nothing"}},
        },
        "AdminPurgeAnswer": {
            "type": "object", "required": ["purged", "count", "bytes_freed", "older_than_days", "failed"],
            "properties": {
                "purged": {"type": "array", "items": {
                    "type": "object", "required": ["id", "owner", "bytes"],
                    "properties": {"id": record_id, "owner": {"type": "string"}, "bytes": {"type": "integer"}}}},
                "count": {"type": "integer"}, "bytes_freed": {"type": "integer"}, "older_than_days": {"type": "number"},
                "failed": {"type": "array", "items": ref("PurgeFailure")}, "dry_run": {"type": "boolean"},
            },
        },
    }


def _copy_schema(fields: tuple[str, ...]) -> Schema:
    return {
        "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
        "properties": {f: {"type": "string"} for f in fields},
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once)."""
    paths: dict[str, Schema] = {}
    for name, what in COLLECTIONS.items():
        for path, item in _collection_paths(name, what).items():
            paths.setdefault(path, {}).update(item)
    for path, item in {**_image_paths(), **_other_paths(), **_comfy_paths(), **_me_paths(), **_ops_paths()}.items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "casvault",
            "version": "1",
            "description": (
                "Content-addressed image history. Visitors are guests, identified by the signed anon_id cookie "
                "issued on the first request, or members the site vouches for (a JWT in the member cookie or "
                "an Authorization bearer, or a trusted proxy's header); cookie-authenticated writes need X-Requested-With or a "
                "same-origin Origin. Errors are {\"error\": {\"code\", \"message\"}}; another user's id "
                "answers 404."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": {f"E{s}": _json(ref("Error"), text) for s, text in ERRORS.items()},
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "CASVAULT_ADMIN_TOKEN"},
                "ingestToken": {"type": "http", "scheme": "bearer", "description": "CASVAULT_INGEST_TOKEN"},
            },
        },
    }
