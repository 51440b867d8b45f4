"""`make serve` as a newcomer runs it: from a copy of the checkout, relative ``./data``, dev mode.

Every image URL the API hands out answers with the image's bytes (an original through
/outputs, its /file, its thumbnail, a share link's image); and production mode without a
secret stops in gunicorn's master with one line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, INGEST_TOKEN, ROOT, make_png, need
from tests.servers import free_port

XHR = {"X-Requested-With": "XMLHttpRequest"}
VENV = Path(sys.executable).parent.parent


def _checkout_copy(dest: Path) -> Path:
    """The files `make serve` needs, copied with their times (so make sees nothing to rebuild)."""
    dest.mkdir()
    for name in ("casvault", "web", "cli", "ops"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def _make_serve(cwd: Path, port: int, **env: str) -> subprocess.Popen:
    need(shutil.which("make") is not None, "make")
    stamp = VENV / ".installed"
    need(stamp.exists(), f"{stamp} (the .venv that `make serve` builds)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}
    environ.update({"CASVAULT_BIND": f"127.0.0.1:{port}", "CASVAULT_WORKERS": "2", **env})
    # NOTE: `-o` tells make that the venv stamp is up to date: the test's
    # environment is the .venv, and nothing is installed from the copy.
    log = open(cwd.parent / "make-serve.log", "wb")
    return subprocess.Popen(["make", "-s", "-o", str(stamp), "serve", f"VENV={VENV}"], cwd=cwd, env=environ,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _log(cwd: Path) -> str:
    return (cwd.parent / "make-serve.log").read_text(errors="replace")


def _wait(proc: subprocess.Popen, base: str, cwd: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, _log(cwd)[-3000:]
        try:
            if requests.get(base + "/api/v1/quota", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError("make serve did not answer in time")


@pytest.mark.timeout(180)
def test_make_serve_with_relative_data_serves_every_image_url(tmp_path):
    repo = _checkout_copy(tmp_path / "casvault")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _make_serve(repo, port, CASVAULT_INGEST_TOKEN=INGEST_TOKEN, CASVAULT_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        _wait(proc, base, repo)
        assert (repo / "data" / "casvault.json").is_file()  # the relative ./data of the Makefile
        browser = requests.Session()
        browser.headers.update(XHR)
        assert browser.get(base + "/api/v1/quota", timeout=10).status_code == 200
        me = browser.cookies["anon_id"].split(".")[0]
        data = make_png(96, 64, seed=11)
        made = requests.post(base + "/api/v1/ingest", files={"file": ("gen.png", data, "image/png")},
                             data={"owner": me, "prompt": "relative root"},
                             headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30)
        assert made.status_code == 201, made.text
        item = browser.get(base + "/api/v1/images", timeout=10).json()["items"][0]
        assert item["url"].startswith("/outputs/users/")
        original = browser.get(base + item["url"], timeout=10)
        assert original.status_code == 200 and original.content == data
        file = browser.get(base + f"/api/v1/images/{item['id']}/file", timeout=10)
        assert file.status_code == 200 and file.content == data
        admin = requests.get(base + f"/api/v1/admin/images/{item['id']}/file",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert admin.status_code == 200 and admin.content == data
        thumb = browser.get(base + item["thumb_url"], timeout=10)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
        share = browser.post(base + f"/api/v1/images/{item['id']}/share", json={}, timeout=10)
        assert share.status_code == 201, share.text
        shared = requests.get(base + share.json()["url"] + "/image", timeout=10)
        assert shared.status_code == 200 and shared.content == data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.timeout(120)
def test_production_without_secret_stops_in_the_master_with_one_line(tmp_path):
    repo = _checkout_copy(tmp_path / "casvault")
    proc = _make_serve(repo, free_port(), CASVAULT_DEV="0")
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = _log(repo)
    assert proc.returncode != 0
    assert "Error: casvault: CASVAULT_SECRET_KEY is not set" in text
    assert "Traceback" not in text and "Booting worker" not in text
    assert not (repo / "data").exists()  # nothing was created
