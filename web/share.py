"""Blueprint 'share': ``/s/<token>`` shows one shared image to anyone holding the link.

The token (``casvault.shares``) names the owner, the image and the expiry.
Every request re-checks the record: a trashed or purged image is no longer
shared. A dead link answers 404: a small HTML page for ``/s/<token>`` (a
person follows it in a browser) and the usual JSON error for the image.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, current_app

from casvault import shares
from casvault.errors import NotFound
from casvault.records import Record

from .ext import get_store
from .files import send_original

bp = Blueprint("share", __name__, url_prefix="/s")

# NOTE: a share link may be cached by the browser for a short time only: it
# must stop working soon after the owner trashes the image.
SHARE_CACHE = "public, max-age=300"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}}
img{{max-width:100%;height:auto;display:block;margin:0 auto}}p{{white-space:pre-wrap}}</style>
</head><body>
{body}
</body></html>
"""


def _shared(token: str) -> Record:
    """The active record a token names; raises NotFound."""
    share = shares.read_token(current_app.config["SECRET_KEY"], token)
    store = get_store()
    record = store.get(share.owner, share.id, "generated")
    if not shares.alive(share, record):
        raise NotFound("no such share link")
    return record


def _headers(resp: Response) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
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
    body = f'<img src="/s/{escape(token)}/image" alt="{escape(prompt[:200])}">'
    if prompt:
        body += f"\n<p>{escape(prompt)}</p>"
    resp = Response(_PAGE.format(title="Shared image", body=body), mimetype="text/html")
    resp.headers["Cache-Control"] = SHARE_CACHE
    return _headers(resp)


@bp.get("/<token>/image")
def image(token: str):
    """The shared original."""
    return _headers(send_original(get_store(), _shared(token), cache=SHARE_CACHE))
