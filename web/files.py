"""Sending originals and thumbnails: one place for Content-Type, ETag, caching and nosniff."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from flask import Response, redirect, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from casvault import safefs
from casvault.errors import CasvaultError, NotFound
from casvault.records import Record
from casvault.store import Store
from casvault.validate import strip_bidi

# Internal nginx locations (ops/nginx.conf), reachable only through X-Accel-Redirect.
ACCEL_BLOBS = "/_casvault_blobs/"  # aliases <root>/blobs/sha256/
ACCEL_THUMBS = "/_casvault_thumbs/"  # aliases <root>/outputs/
THUMB_MIMES = {"webp": "image/webp", "jpg": "image/jpeg"}
# Originals never change (content-addressed), so public copies may be kept forever.
PUBLIC_CACHE = "public, max-age=31536000, immutable"
# /outputs when only the owner (or the admin) may see it: the browser keeps it, shared caches do not.
OWNER_CACHE = "private, max-age=31536000, immutable"
# The owner's API: the status of a record can change, so revalidate each time.
PRIVATE_CACHE = "private, no-cache"
# A redirect to a presigned S3 URL lives shorter than the URL (an hour).
REDIRECT_CACHE = "private, max-age=300"


def _accel(resp: Response, target: str, cache: str) -> Response:
    # NOTE: nginx keeps an upstream Cache-Control across X-Accel-Redirect, even
    # on the 404 of a missing file, so the policy travels in X-Casvault-Cache
    # and ops/nginx.conf adds it to file answers only.
    resp.headers["X-Accel-Redirect"] = target
    resp.headers["X-Casvault-Cache"] = cache
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _finish(resp: Response, cache: str) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = cache
    return resp


def send_original(store: Store, record: Record, *, cache: str, download: bool = False) -> Response:
    """The record's original bytes, from its blob (the ETag is the sha256)."""
    # NOTE: the blob, not the projection, is read: its path comes from the
    # record's digest alone, it is 0444 and never moves, so a concurrent
    # trash or restore cannot make this read fail half way.
    url = store.original_url(record, filename=download_name(record), download=download)
    if url is not None:
        # NOTE: originals in S3 are served by a presigned redirect (DESIGN.md 7).
        return _finish(redirect(url, 302), REDIRECT_CACHE)
    opened = open_regular(store.blobs.path(record.sha256))
    if opened is None:
        raise NotFound("the image's original is missing", id=record.id)
    fh, st = opened
    resp = send_file(
        fh,
        mimetype=record.mime,
        as_attachment=download,
        download_name=download_name(record),
        conditional=False,
        etag=record.sha256,
        last_modified=st.st_mtime,
    )
    # NOTE: send_file cannot size an open file, so the conditional answer
    # (304, and 206 for a Range: scrubbing a video) is made here with the size.
    try:
        resp.make_conditional(request.environ, accept_ranges=True, complete_length=st.st_size)
    except RequestedRangeNotSatisfiable:
        fh.close()
        raise
    return _finish(resp, cache)


def send_thumb(store: Store, record: Record, *, cache: str) -> Response:
    """The record's thumbnail, wherever its status puts it now."""
    if not record.thumb:
        raise NotFound("the image has no thumbnail", id=record.id)
    ext = record.thumb.rsplit(".", 1)[-1]
    mime = THUMB_MIMES.get(ext)
    if mime is None:
        raise NotFound("the image has no thumbnail", id=record.id)
    # NOTE: a trash or restore may move the thumbnail between our index read
    # and the open; the other place is tried before giving up.
    trashed = record.status == "trash"
    for place in (trashed, not trashed):
        path = store.layout.thumb_path(record, place)
        if not _inside(path, store.layout.outputs if not place else store.layout.trash):
            continue
        opened = open_regular(path)
        if opened is None:
            continue
        fh, st = opened
        resp = send_file(
            fh,
            mimetype=mime,
            conditional=True,
            etag=f"{record.id}-{st.st_size}-{int(st.st_mtime)}",
            last_modified=st.st_mtime,
        )
        return _finish(resp, cache)
    raise NotFound("the image has no thumbnail", id=record.id)


def accel_original(store: Store, record: Record, *, cache: str) -> Response:
    """Hand the original to nginx: ``X-Accel-Redirect`` to its blob, named by digest."""
    # NOTE: the blob path is built from the record's sha256 alone, so a
    # projection swapped for a symlink (to another user's manifest, to
    # /etc/passwd) is never what nginx sends.
    if store.original_url(record) is not None:
        return send_original(store, record, cache=cache)
    h = record.sha256
    resp = Response(status=200, mimetype=record.mime)
    return _accel(resp, f"{ACCEL_BLOBS}{h[:2]}/{h[2:4]}/{h}", cache)


def accel_thumb(store: Store, record: Record, *, cache: str) -> Response:
    """Hand the active thumbnail to nginx: ``X-Accel-Redirect`` to its path under outputs/."""
    mime = THUMB_MIMES.get(record.thumb.rsplit(".", 1)[-1]) if record.thumb else None
    if mime is None:
        raise NotFound("the image has no thumbnail", id=record.id)
    rel = store.layout.thumb_path(record).relative_to(store.layout.outputs).as_posix()
    return _accel(Response(status=200, mimetype=mime), ACCEL_THUMBS + rel, cache)


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result] | None:
    """``path`` opened for reading if it is a regular file, not through a symlink; else None (casvault.safefs)."""
    try:
        return safefs.open_file(path)
    except (OSError, CasvaultError):
        return None


def _inside(path: Path, base: Path) -> bool:
    """True when ``path`` resolves to a regular file under ``base`` (no symlink escape)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(base))
    except OSError:
        return False


def download_name(record: Record) -> str:
    """A file name for the record: its original name (extension fixed), else ``<date>_<id>.<ext>``."""
    name = record.original_filename or ""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem = name
    stem = strip_bidi("".join(c for c in stem if c not in '/\\:*?"<>|' and ord(c) >= 32)).strip(" .")
    if not stem:
        return f"{record.created_at[:10]}_{record.id}.{record.ext}"
    return f"{stem}.{record.ext}"


def wants_download() -> bool:
    """True when the query asks for an attachment (``download=1``)."""
    return request.args.get("download") in ("1", "true")
