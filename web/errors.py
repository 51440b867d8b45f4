"""JSON errors: every API failure answers ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from casvault import errors as E

STATUS = {
    E.InvalidInput: 400,
    E.NotAnImage: 415,
    E.TooLarge: 413,
    E.NotFound: 404,
    E.Conflict: 409,
    E.QuotaExceeded: 507,
    E.StorageFull: 507,
    E.StorageError: 500,
    E.IntegrityError: 500,
    E.ManifestCorrupt: 500,
    E.LockBusy: 503,
    E.Busy: 503,
    E.ConfigError: 500,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

SERVER_MESSAGES = {
    "storage_full": "the server's disk is full; nothing was stored",
    "storage_error": "a storage error stopped the request; nothing was changed",
    "manifest_corrupt": "this library's index is being repaired; try again",
    "lock_busy": "the library is busy; try again",
    "busy": "the server is decoding too many images at once; try again shortly",
}

_PUBLIC_DETAILS = ("field", "usage", "limits", "limit", "id")


class ApiError(Exception):
    """An error raised by the web layer itself (auth, CSRF, bad request shape)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(status: int, code: str, message: str, **extra: Any):
    """A JSON error answer."""
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    if has_request_context():
        g.error_code = code  # NOTE: for the request's log line and the metrics (web/requestlog.py)
    resp = jsonify(body)
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="casvault"'
    return resp


def register_error_handlers(app: Flask) -> None:
    """Translate core errors and HTTP errors into JSON."""

    @app.errorhandler(E.CasvaultError)
    def _core(exc: E.CasvaultError):
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
        extra = {k: v for k, v in exc.details.items() if k in _PUBLIC_DETAILS}
        message = exc.message
        if status >= 500 and not isinstance(exc, E.QuotaExceeded):
            # NOTE: server-side messages may name paths; they go to the log, not the client.
            app.logger.error("%s: %s", exc.code, exc.message)
            message = SERVER_MESSAGES.get(exc.code, "internal server error")
        resp = error_response(status, exc.code, message, **extra)
        if "retry_after" in exc.details:
            resp.headers["Retry-After"] = str(exc.details["retry_after"])
        return resp

    @app.errorhandler(ApiError)
    def _api(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        if status == 404 and not request.path.startswith(("/api/", "/outputs/", "/s/")):
            return exc  # HTML 404 for pages
        resp = error_response(status, HTTP_CODES.get(status, "http_error"), exc.description or exc.name)
        allow = getattr(exc, "valid_methods", None)
        if status == 405 and allow:
            resp.headers["Allow"] = ", ".join(allow)  # RFC 9110: a 405 names the allowed methods
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
