"""The gallery page at ``/`` and the admin page at ``/admin``.

Both are one HTML shell each; everything else is plain ES modules under
``web/static/js`` talking to the JSON API. The visitor's identity cookie is
set by the app-wide ``before_request`` in :mod:`web.auth`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from .assets import StaticAssets
from .errors import ApiError
from .ext import get_store

bp = Blueprint("gallery", __name__)
assets = StaticAssets()


@bp.app_context_processor
def _asset_urls() -> dict[str, object]:
    return {"static_url": assets.url, "module_urls": assets.modules}


@bp.get("/assets/<string(length=12):version>/<path:rel>")
def asset(version: str, rel: str) -> Response:
    """A static file under its fingerprinted URL (immutable, gzipped when accepted)."""
    resp = assets.answer(version, rel)
    if resp is None:
        raise ApiError(404, "not_found", "no such asset")
    return resp

# NOTE: the page builds its DOM from API data with textContent only, so a
# strict policy costs nothing and turns a missed escape into a blocked script.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _page(template: str, **context: object) -> Response:
    resp = Response(render_template(template, **context))
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/")
def gallery() -> Response:
    """The visitor's gallery: images, trash and input library in one page."""
    store = get_store()
    return _page(
        "gallery.html",
        partition_tz=store.layout.tz.key,
        retention_days=store.config.trash_retention_days,
        comfy_url=store.config.comfy_url,
        facets=_has_facets(),
    )


def _has_facets() -> bool:
    """Whether this server answers GET /api/v1/images/facets (the page asks for suggestions only then)."""
    return any(rule.rule == "/api/v1/images/facets" for rule in current_app.url_map.iter_rules())


@bp.get("/admin")
def admin() -> Response:
    """The admin page; the admin token is typed in and kept in sessionStorage."""
    return _page("admin.html", partition_tz=get_store().layout.tz.key)
