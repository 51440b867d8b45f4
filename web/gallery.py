"""Blueprint 'gallery' (filled in by its issue)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("gallery", __name__)
