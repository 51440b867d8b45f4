"""The one accessor for the store, set up in ``init_app``."""

from __future__ import annotations

from flask import Flask, current_app

from casvault.store import Store


def init_app(app: Flask) -> None:
    """Open (or create) the store for this app."""
    app.extensions["casvault.store"] = Store(app.config["CASVAULT"])


def get_store() -> Store:
    """The store of the current app."""
    return current_app.extensions["casvault.store"]
