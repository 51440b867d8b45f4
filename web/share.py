"""Blueprint 'share': ``/s/<token>`` shows one shared image to anyone holding the link.

The token is opaque (``casvault.shares``): every request looks up its row,
its expiry and the record, so a revoked, expired, trashed or purged share
answers 404 at once. A dead link answers 404: a small HTML page for
``/s/<token>`` (a person follows it in a browser) and the usual JSON error
for the image. Nothing handed out outlives the link: the image bytes are
served by this route itself (never an /outputs path or a presigned URL),
and nothing is cached (``private, no-store``).
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response

from casvault.errors import NotFound
from casvault.records import Record

from .ext import get_store
from .files import send_original

bp = Blueprint("share", __name__, url_prefix="/s")

# NOTE: no copy may outlive the link (revocation is immediate), so neither
# the browser nor a shared cache keeps one.
SHARE_CACHE = "private, no-store"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}}
img,video{{max-width:100%;height:auto;display:block;margin:0 auto}}p{{white-space:pre-wrap}}</style>
</head><body>
{body}
</body></html>
"""


def _shared(token: str) -> Record:
    """The active record a live token names; raises NotFound."""
    return get_store().shares.find(token)[1]


def _headers(resp: Response) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


@bp.get("/<token>")
def page(token: str):
    """A minimal page: the image and its prompt (escaped)."""
    try:
        record = _shared(token)
    except NotFound:
        html = _PAGE.format(title="Link not found", body="<h1>This link has expired or no longer exists.</h1>")
        resp = Response(html, status=404, mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return _headers(resp)
    prompt = getattr(record, "prompt", None) or ""
    src = f"/s/{escape(token)}/image"
    if record.mime.startswith("video/"):
        body = f'<video src="{src}" controls loop muted playsinline aria-label="{escape(prompt[:200])}"></video>'
    else:
        body = f'<img src="{src}" alt="{escape(prompt[:200])}">'
    if prompt:
        body += f"\n<p>{escape(prompt)}</p>"
    resp = Response(_PAGE.format(title="Shared image", body=body), mimetype="text/html")
    resp.headers["Cache-Control"] = SHARE_CACHE
    return _headers(resp)


@bp.get("/<token>/image")
def image(token: str):
    """The shared original, served by this route (never a URL that outlives the link)."""
    store = get_store()
    record = _shared(token)
    if store.original_url(record) is None:
        return _headers(send_original(store, record, cache=SHARE_CACHE))
    # NOTE: remote blobs are otherwise served by a presigned redirect valid for
    # an hour; a share passes the bytes itself so revocation is immediate.
    resp = Response(store.read_original(record), mimetype=record.mime)
    resp.headers["Cache-Control"] = SHARE_CACHE
    return _headers(resp)
