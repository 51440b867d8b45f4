"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the store and its services answer).

Both are unauthenticated and cheap, for load balancers and orchestrators;
the request log writes them at debug level only.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from casvault import health

from .errors import error_response
from .ext import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process serves requests."""
    return _no_store(jsonify({"status": "ok"}))


@bp.get("/readyz")
def readyz():
    """200 when the store (and PostgreSQL and the bucket, when configured) answer; 503 naming what failed."""
    store = get_store()
    result = health.readiness(current_app.config["CASVAULT"], store.layout.root, store.layout.tmp)
    if result.ready:
        return _no_store(jsonify({"status": "ready", "checks": result.checks}))
    failed = ", ".join(f"{name} {state}" for name, state in result.checks.items() if state != health.OK)
    resp = error_response(503, "not_ready", f"not ready: {failed}")
    resp.set_data(current_app.json.dumps({**resp.get_json(), "checks": result.checks}) + "\n")
    resp.headers["Retry-After"] = "2"
    return _no_store(resp)


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp
