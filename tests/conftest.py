"""Shared fixtures: a store on tmp_path, the Flask app and client, the CLI runner,
the ComfyUI corpus, image factories and a real gunicorn server."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from PIL import Image

from casvault.config import Config
from casvault.store import Store

ROOT = Path(__file__).resolve().parents[1]
# The real ComfyUI PNGs live in the repository (tests/data/comfyui, with their licence);
# CASVAULT_CORPUS may point elsewhere.
CORPUS = Path(os.environ.get("CASVAULT_CORPUS") or ROOT / "tests" / "data" / "comfyui")
REQUIRE_ALL = os.environ.get("CASVAULT_TEST_REQUIRE_ALL") == "1"
INGEST_TOKEN = "test-ingest-token"
ADMIN_TOKEN = "test-admin-token"
SECRET = "test-secret-key-0123456789abcdef-0123"


def need(condition: bool, what: str) -> None:
    """Skip when a real part is missing, but fail in CI (CASVAULT_TEST_REQUIRE_ALL=1)."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required test dependency missing: {what}")
    pytest.skip(f"missing: {what}")


def user(n: int | str) -> str:
    """A deterministic guest id."""
    return "anon-" + f"{n}".rjust(32, "0")[-32:] if isinstance(n, int) else n


def make_png(width: int = 64, height: int = 64, seed: int = 0, text: dict[str, str] | None = None) -> bytes:
    """A small PNG with distinct content per seed."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (width, height), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    img.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    buf = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def make_jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small JPEG."""
    img = Image.new("RGB", (width, height), (seed % 256, 80, 160))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_webp(width: int = 40, height: int = 40, seed: int = 0) -> bytes:
    """A small WebP."""
    img = Image.new("RGB", (width, height), (10, seed % 256, 30))
    buf = io.BytesIO()
    img.save(buf, "WEBP")
    return buf.getvalue()


@pytest.fixture
def corpus() -> Path:
    """The real ComfyUI PNGs (must exist)."""
    assert CORPUS.is_dir(), f"ComfyUI corpus missing at {CORPUS}"
    return CORPUS


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A test configuration over tmp_path/root."""
    return Config(
        root=tmp_path / "root",
        secret_key=SECRET,
        admin_token=ADMIN_TOKEN,
        ingest_token=INGEST_TOKEN,
        thumb_size=64,
    )


@pytest.fixture
def store(config: Config) -> Store:
    """A fresh store."""
    return Store(config)


@pytest.fixture
def app(config: Config):
    """The Flask app over the test store."""
    from web import create_app

    app = create_app(config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    """A test client that sends the same-origin marker header on writes."""
    c = app.test_client()
    c.environ_base["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"
    return c


@pytest.fixture
def runner():
    """Click's CLI runner."""
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def server(tmp_path: Path):
    """A real gunicorn (3 workers) on a free loopback port over tmp_path/root."""
    from tests.servers import Gunicorn

    srv = Gunicorn(tmp_path / "root", workers=3)
    srv.start()
    yield srv
    srv.stop()
