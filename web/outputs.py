"""Blueprint 'outputs': ``/outputs/...`` serves active image projections and thumbnails only.

The path is parsed strictly and every part validated; the record it names
is then looked up in the owner's index and must be active, of the kind its
folder says, and live at exactly that path (``Layout.paths``). Nothing is
served because it merely exists on disk: sidecars, manifests, trash, blobs,
dotfiles and temporary names all answer 404 JSON.

Who may see it: the owner (``auth.current_user()``) or the admin (bearer
CASVAULT_ADMIN_TOKEN); anyone else gets the same 404 as for a missing file,
so an image URL is not a permanent capability. ``CASVAULT_OUTPUTS_PUBLIC=1``
serves them to everyone (public, immutable caching) for sites that want
public image URLs.

With ``CASVAULT_ACCEL=nginx`` the answer is an ``X-Accel-Redirect`` that
names the blob by its digest (originals) or the thumbnail's path, both
internal nginx locations with ``disable_symlinks on`` (see ops/nginx.conf).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, redirect

from casvault.errors import NotFound
from casvault.records import Record
from casvault.validate import is_user_id

from .auth import current_user, has_token
from .ext import get_store
from .files import OWNER_CACHE, PUBLIC_CACHE, THUMB_MIMES, accel_original, accel_thumb, send_original, send_thumb

bp = Blueprint("outputs", __name__)

PATH_RE = re.compile(
    r"users/(?P<owner>[a-z0-9_-]{3,70})/"
    r"(?:(?P<kind_dir>controls|inputs)/)?"
    r"(?P<y>[0-9]{4})/(?P<m>[0-9]{2})/(?P<d>[0-9]{2})/"
    r"(?:(?P<thumb>thumb)/)?"
    r"(?P<id>[0-9a-f]{32})\.(?P<ext>png|jpg|webp|mp4|webm)"
)
KIND_OF_DIR = {None: "generated", "controls": "control", "inputs": "input"}


def may_see(owner: str) -> bool:
    """True when this request may see ``owner``'s /outputs files."""
    if get_store().config.outputs_public:
        return True
    return current_user() == owner or has_token("admin")


def resolve(subpath: str) -> tuple[Record, bool]:
    """(record, is_thumbnail) for a path under outputs/ this request may see; raises NotFound otherwise."""
    m = PATH_RE.fullmatch(subpath)
    if m is None or not is_user_id(m["owner"]):
        raise NotFound("not found")
    is_thumb = m["thumb"] is not None
    if is_thumb and m["ext"] not in THUMB_MIMES:
        raise NotFound("not found")
    owner = m["owner"]
    # NOTE: a stranger gets the same answer as for a missing file, before any
    # lookup, so /outputs says nothing about who has which image.
    if not may_see(owner):
        raise NotFound("not found")
    store = get_store()
    # NOTE: no index is built for an owner who has no manifest: probing random
    # user ids must not fill this process's memory.
    if not store.layout.manifest_path(owner).is_file():
        raise NotFound("not found")
    record = store.index(owner).get(m["id"])
    if record is None or record.status != "active" or record.kind != KIND_OF_DIR[m["kind_dir"]]:
        raise NotFound("not found")
    image, _, thumb = store.layout.paths(record)
    expected = thumb if is_thumb else image
    if (is_thumb and not record.thumb) or expected.relative_to(store.layout.outputs).as_posix() != subpath:
        raise NotFound("not found")
    return record, is_thumb


LEGACY_RE = re.compile(r"users/(?P<owner>[a-z0-9_-]{3,70})/[^\x00]+")
# owner -> (index version, {legacy_path: record id}); rebuilt when the owner's manifest grows.
_legacy_paths: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}
_LEGACY_OWNERS = 1024


def legacy_target(subpath: str) -> str | None:
    """The current URL of the active record adopted from ``outputs/<subpath>``, or None."""
    m = LEGACY_RE.fullmatch(subpath)
    if m is None or not is_user_id(m["owner"]):
        return None
    store = get_store()
    owner = m["owner"]
    if not may_see(owner) or not store.layout.manifest_path(owner).is_file():
        return None  # NOTE: a stranger learns nothing, as in resolve()
    index = store.index(owner)
    version = (id(index), index.manifest_offset)
    cached = _legacy_paths.get(owner)
    if cached is None or cached[0] != version:
        # NOTE: one scan of the owner's records per change of their manifest,
        # paid only by URLs that matched nothing else (old links).
        paths = {r.legacy_path: r.id for r in list(index.records.values()) if getattr(r, "legacy_path", None)}
        if len(_legacy_paths) >= _LEGACY_OWNERS:
            _legacy_paths.clear()
        cached = _legacy_paths[owner] = (version, paths)
    record = index.get(cached[1].get(subpath, ""))
    if record is None or record.status != "active":
        return None
    return store.layout.rel_url(store.layout.image_path(record))


@bp.get("/outputs/<path:subpath>")
def serve(subpath: str) -> Response:
    """An active original or thumbnail, to its owner or the admin (anyone with CASVAULT_OUTPUTS_PUBLIC=1).

    An adopted file's old URL answers 301 with its record's URL.
    """
    try:
        record, is_thumb = resolve(subpath)
    except NotFound:
        target = legacy_target(subpath)
        if target is None:
            raise
        return redirect(target, 301)
    store = get_store()
    cache = PUBLIC_CACHE if store.config.outputs_public else OWNER_CACHE
    if store.config.accel == "nginx":
        return accel_thumb(store, record, cache=cache) if is_thumb else accel_original(store, record, cache=cache)
    if is_thumb:
        return send_thumb(store, record, cache=cache)
    return send_original(store, record, cache=cache)
