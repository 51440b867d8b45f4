"""Blueprint 'outputs' (filled in by its issue)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("outputs", __name__)
