"""One log line per request, a request id in ``X-Request-Id``, and the request metrics.

The line carries the method, the route (the Flask endpoint's name, never
the raw path, which may hold user ids), the status, the duration in
milliseconds, the request id and the kind of caller. /healthz and /readyz
are logged at debug level only: a load balancer polls them.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from flask import Flask, current_app, g, request
from flask.wrappers import Response

from casvault.logs import configure_logging
from casvault.metrics import guarded

from . import metrics
from .auth import _bearer_ok

log = logging.getLogger("web.request")

HEADER = "X-Request-Id"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
QUIET_ROUTES = frozenset({"health.healthz", "health.readyz"})
UNMATCHED = "unmatched"  # no route: a 404 for an unknown path, or a request refused before routing


def init_request_log(app: Flask) -> None:
    """Configure the log format and level, and log (and count) every request of ``app``."""
    cfg = app.config["CASVAULT"]
    configure_logging(cfg.log_format, cfg.log_level)

    # NOTE: registered before the identity hook, so that a request refused
    # there still has its id and its line.
    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id(request.headers.get(HEADER))

    @app.after_request
    def _finish(resp: Response) -> Response:
        rid = g.get("request_id") or request_id(None)
        resp.headers[HEADER] = rid
        line = _line(resp.status_code, rid)
        started = g.get("request_started", time.perf_counter())
        if resp.is_streamed:
            # NOTE: a streamed answer (a file, a ZIP) is done when its last byte is sent.
            resp.call_on_close(lambda: _log(line, started))
        else:
            _log(line, started)
        return resp


def request_id(incoming: str | None) -> str:
    """The caller's request id when it is a safe token of at most 64 characters, else a new one."""
    if incoming and SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)


def caller_kind() -> str:
    """Who is asking: ``admin`` or ``pipeline`` (by bearer token), ``member``, ``guest`` or ``none``."""
    cfg = current_app.config["CASVAULT"]
    if request.headers.get("Authorization", "").startswith("Bearer "):
        if _bearer_ok(cfg.admin_token):
            return "admin"
        if _bearer_ok(cfg.ingest_token):
            return "pipeline"
    user_id = g.get("user_id") or ""
    if user_id.startswith("u-"):
        return "member"
    if user_id.startswith("anon-"):
        return "guest"
    return "none"


def _line(status: int, rid: str) -> dict[str, Any]:
    rule = request.url_rule
    return {
        "method": request.method,
        "route": rule.endpoint if rule is not None else UNMATCHED,
        "status": status,
        "duration_ms": None,
        "request_id": rid,
        "user": caller_kind(),
        "error": g.get("error_code"),
    }


def _log(line: dict[str, Any], started: float) -> None:
    seconds = time.perf_counter() - started
    line["duration_ms"] = round(seconds * 1000, 1)
    guarded(metrics.observe_request, line["route"], line["method"], line["status"], seconds, line["error"])
    level = logging.DEBUG if line["route"] in QUIET_ROUTES else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "request", extra={"fields": line})
