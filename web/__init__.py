"""The Flask service: ``create_app()`` for gunicorn (``gunicorn 'web:create_app()'``)."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from casvault.config import Config

from .errors import register_error_handlers
from .auth import init_identity
from .ext import init_app
from .metrics import init_metrics
from .requestlog import init_request_log


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a body nested too deeply is malformed like any other (a 400, not a 500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON; raises ValueError (which request.get_json answers with 400) for any bad body."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def relative_location(resp: Response) -> Response:
    """Make a redirect to this server relative: its host must not come from the client's Host header.

    Werkzeug's routing redirects (``/s//x`` → ``/s/x``, a missing trailing
    slash) build an absolute URL from the Host header, which the client
    chooses; the path alone is the same redirect. Redirects elsewhere (a
    presigned S3 URL) are left alone.
    """
    location = resp.headers.get("Location")
    if location:
        parts = urlsplit(location)
        if parts.netloc and parts.netloc == request.host and parts.scheme == request.scheme:
            # NOTE: "//x" would be a protocol-relative URL: keep one leading slash.
            resp.headers["Location"] = "/" + parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
            if 300 <= resp.status_code < 400:
                resp.set_data(b"")  # Werkzeug's redirect page repeats the absolute URL
    return resp


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` (a Config or a mapping of overrides) wins over the environment.

    Raises ConfigError at start when production mode has no secret key.
    """
    if isinstance(config, Config):
        cfg = config
    else:
        cfg = Config.from_env(**dict(config or {}))
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config["CASVAULT"] = cfg
    app.config["SECRET_KEY"] = cfg.require_secret()
    # NOTE: multipart bodies bigger than the upload limit plus room for the
    # form fields are cut off by Werkzeug with a 413 before we read them.
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes + 1024 * 1024
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024
    app.json.sort_keys = False
    init_request_log(app)
    init_app(app)
    register_error_handlers(app)
    init_identity(app)
    init_metrics(app)
    app.after_request(relative_location)

    from . import admin, api, comfy, gallery, health, me, metrics, outputs, pipeline, share

    app.register_blueprint(api.bp)
    app.register_blueprint(comfy.bp)
    app.register_blueprint(pipeline.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(outputs.bp)
    app.register_blueprint(gallery.bp)
    app.register_blueprint(share.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    if cfg.watch:
        from casvault.watch import serve_in_worker

        # NOTE: every worker starts this; only the one holding the store's
        # "watch" job lock runs the observer, the others wait to take over.
        serve_in_worker(app.extensions["casvault.store"])
    return app
