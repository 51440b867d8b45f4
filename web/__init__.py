"""The Flask service: ``create_app()`` for gunicorn (``gunicorn 'web:create_app()'``)."""

from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from casvault.config import Config

from .errors import register_error_handlers
from .auth import init_identity
from .ext import init_app


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` (a Config or a mapping of overrides) wins over the environment.

    Raises ConfigError at start when production mode has no secret key.
    """
    if isinstance(config, Config):
        cfg = config
    else:
        cfg = Config.from_env(**dict(config or {}))
    app = Flask(__name__)
    app.config["CASVAULT"] = cfg
    app.config["SECRET_KEY"] = cfg.require_secret()
    # NOTE: multipart bodies bigger than the upload limit plus room for the
    # form fields are cut off by Werkzeug with a 413 before we read them.
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes + 1024 * 1024
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024
    app.json.sort_keys = False
    init_app(app)
    register_error_handlers(app)
    init_identity(app)

    from . import admin, api, comfy, gallery, me, outputs, share

    app.register_blueprint(api.bp)
    app.register_blueprint(comfy.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(outputs.bp)
    app.register_blueprint(gallery.bp)
    app.register_blueprint(share.bp)
    if cfg.watch:
        from casvault.watch import serve_in_worker

        # NOTE: every worker starts this; only the one holding the store's
        # "watch" job lock runs the observer, the others wait to take over.
        serve_in_worker(app.extensions["casvault.store"])
    return app
