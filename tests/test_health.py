"""/healthz and /readyz: what a load balancer polls, and the request log with its X-Request-Id."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from casvault import health
from tests.conftest import INGEST_TOKEN, make_png, need
from tests.servers import Gunicorn, free_port

pytest_plugins = ("tests.services",)


def wait_for_status(url: str, status: int, within: float) -> tuple[float, dict]:
    """Poll ``url`` until it answers ``status``; returns the seconds it took and the body."""
    start = time.monotonic()
    while True:
        resp = requests.get(url, timeout=5)
        if resp.status_code == status:
            return time.monotonic() - start, resp.json()
        assert time.monotonic() - start < within, f"{url} still {resp.status_code} after {within} s: {resp.text}"
        time.sleep(0.05)


@pytest.fixture
def immutable():
    """``chattr +i`` a folder (root ignores permission bits, not this); undone at the end."""
    need(shutil.which("chattr") is not None, "chattr (e2fsprogs)")
    done: list[Path] = []

    def make(path: Path) -> None:
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        need(made, "a filesystem with the immutable attribute (chattr +i) for the test folder")
        done.append(path)

    yield make
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def undo_immutable(path: Path) -> None:
    """Make ``path`` writable again."""
    subprocess.run(["chattr", "-i", str(path)], check=True)


# --- in process -------------------------------------------------------------------


def test_healthz_and_readyz_answer_without_credentials(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready", "checks": {"store": "ok"}}


def test_readyz_leaves_no_probe_file_behind(client, config):
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert [p.name for p in (Path(config.root) / "tmp").iterdir() if p.name.startswith(".readyz")] == []


def test_readyz_names_the_store_when_casvault_json_is_gone(client, config):
    meta = Path(config.root) / "casvault.json"
    meta.rename(meta.with_suffix(".away"))
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"]["code"] == "not_ready" and "store" in body["error"]["message"]
    assert body["checks"] == {"store": "error"}
    assert resp.headers["Retry-After"] == "2"
    meta.with_suffix(".away").rename(meta)
    assert client.get("/readyz").status_code == 200


def test_readyz_names_postgres_at_a_dead_port(app, config):
    pytest.importorskip("psycopg")
    dead = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres"
    result = health.readiness(config.with_(index_backend="postgres", pg_dsn=dead), Path(config.root),
                              Path(config.root) / "tmp")
    assert result.checks == {"store": "ok", "postgres": "error"} and not result.ready


def test_readyz_checks_the_bucket(config, s3_server, s3_bucket):
    root = Path(config.root)
    from casvault.store import Store

    Store(config)
    ok = health.readiness(config.with_(blob_backend="s3", s3_bucket=s3_bucket, s3_endpoint=s3_server.endpoint),
                          root, root / "tmp")
    assert ok.checks == {"store": "ok", "s3": "ok"}
    missing = health.readiness(config.with_(blob_backend="s3", s3_bucket="no-such-bucket-here",
                                            s3_endpoint=s3_server.endpoint), root, root / "tmp")
    assert missing.checks == {"store": "ok", "s3": "error"}
    dead = health.readiness(config.with_(blob_backend="s3", s3_bucket=s3_bucket,
                                         s3_endpoint=f"http://127.0.0.1:{free_port()}"), root, root / "tmp")
    assert dead.checks == {"store": "ok", "s3": "error"}


def test_a_hung_part_is_a_timeout_within_the_budget(config, monkeypatch):
    from casvault.store import Store

    Store(config)
    monkeypatch.setattr(health, "check_postgres", lambda dsn, timeout: time.sleep(3))
    start = time.monotonic()
    result = health.readiness(config.with_(index_backend="postgres", pg_dsn="host=127.0.0.1"), Path(config.root),
                              Path(config.root) / "tmp", timeout=0.5)
    assert time.monotonic() - start < 1.5
    assert result.checks == {"store": "ok", "postgres": "timeout"}


def test_request_id_is_echoed_when_safe_and_made_otherwise(client):
    resp = client.get("/api/v1/quota", headers={"X-Request-Id": "lb-7f3a.9:x_y"})
    assert resp.headers["X-Request-Id"] == "lb-7f3a.9:x_y"
    for bad in ("a" * 65, "two words", "<script>", "ü"):
        rid = client.get("/api/v1/quota", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert rid != bad and len(rid) == 32 and int(rid, 16) >= 0
    first = client.get("/healthz").headers["X-Request-Id"]
    assert first != client.get("/healthz").headers["X-Request-Id"]


def test_one_request_line_each_health_checks_at_debug(client, caplog):
    from casvault.logs import PlainFormatter

    caplog.set_level(logging.DEBUG, logger="web.request")
    resp = client.get("/api/v1/quota", headers={"X-Request-Id": "req-1"})
    client.get("/healthz")
    lines = [r for r in caplog.records if r.name == "web.request"]
    assert [(r.levelno, r.fields["route"]) for r in lines] == [(logging.INFO, "api.quota"), (logging.DEBUG, "health.healthz")]
    text = PlainFormatter().format(lines[0])
    assert "request method=GET route=api.quota status=200 duration_ms=" in text
    assert f"request_id={resp.headers['X-Request-Id']} user=guest" in text and "error=" not in text


# --- a real gunicorn ---------------------------------------------------------------


@pytest.mark.timeout(120)
def test_readyz_turns_503_when_the_root_is_unwritable_and_back(tmp_path, immutable):
    srv = Gunicorn(tmp_path / "root", workers=3)
    srv.start()
    try:
        assert requests.get(srv.url + "/readyz", timeout=5).json()["checks"] == {"store": "ok"}
        immutable(srv.root / "tmp")
        took, body = wait_for_status(srv.url + "/readyz", 503, within=2.0)
        assert body["checks"] == {"store": "error"}
        assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200  # alive, not ready
        # every worker says the same (the probe is not cached per process)
        assert {requests.get(srv.url + "/readyz", timeout=5).status_code for _ in range(9)} == {503}
        undo_immutable(srv.root / "tmp")
        wait_for_status(srv.url + "/readyz", 200, within=2.0)
    finally:
        srv.stop()


@pytest.mark.timeout(180)
def test_readyz_follows_postgres_going_away_and_coming_back(tmp_path):
    from tests.services import Postgres, postgres_bin

    bindir = postgres_bin()
    need(bindir is not None, "postgresql server binaries (/usr/lib/postgresql/*/bin)")
    need(shutil.which("runuser") is not None, "runuser to start postgresql")
    pytest.importorskip("psycopg")
    pg = Postgres(bindir)  # NOTE: its own cluster: this test stops it
    pg.start()
    srv = Gunicorn(tmp_path / "root", workers=3,
                   env={"CASVAULT_INDEX_BACKEND": "postgres", "CASVAULT_PG_DSN": pg.dsn()})
    try:
        srv.start()
        owner = "anon-" + "5" * 32
        resp = requests.post(srv.url + "/api/v1/ingest", files={"file": ("a.png", make_png(seed=5), "image/png")},
                             data={"owner": owner}, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30)
        assert resp.status_code == 201, resp.text
        assert requests.get(srv.url + "/readyz", timeout=5).json()["checks"] == {"store": "ok", "postgres": "ok"}
        pg.halt()
        took, body = wait_for_status(srv.url + "/readyz", 503, within=2.0)
        assert body["checks"]["store"] == "ok" and body["checks"]["postgres"] in ("error", "timeout")
        assert "postgres" in body["error"]["message"]
        pg.resume()
        wait_for_status(srv.url + "/readyz", 200, within=5.0)
        # a PostgreSQL that hangs (SIGSTOP) rather than refuses: a timeout, still within 2 s
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)
        try:
            took, body = wait_for_status(srv.url + "/readyz", 503, within=2.0)
            assert body["checks"] == {"store": "ok", "postgres": "timeout"}
        finally:
            os.kill(postmaster, signal.SIGCONT)
        wait_for_status(srv.url + "/readyz", 200, within=5.0)
    finally:
        srv.stop()
        pg.stop()


@pytest.mark.timeout(120)
def test_json_request_logs_carry_the_request_id_of_the_header(tmp_path):
    srv = Gunicorn(tmp_path / "root", workers=2, env={"CASVAULT_LOG_FORMAT": "json", "CASVAULT_LOG_LEVEL": "info"})
    srv.start()
    try:
        sent = requests.get(srv.url + "/api/v1/images", headers={"X-Request-Id": "trace-42"}, timeout=5)
        made = requests.get(srv.url + "/api/v1/images/" + "0" * 32, timeout=5)
        for _ in range(5):
            requests.get(srv.url + "/healthz", timeout=5)
            requests.get(srv.url + "/readyz", timeout=5)
    finally:
        srv.stop()
    assert sent.headers["X-Request-Id"] == "trace-42"
    assert made.status_code == 404
    lines = [json.loads(line) for line in srv.log.read_text().splitlines() if line.startswith("{")]
    requests_logged = [line for line in lines if line.get("logger") == "web.request"]
    by_id = {line["request_id"]: line for line in requests_logged}
    first = by_id["trace-42"]
    assert first["level"] == "info" and first["msg"] == "request"
    assert (first["method"], first["route"], first["status"], first["user"]) == ("GET", "api.list_images", 200, "guest")
    assert isinstance(first["duration_ms"], float) and first["ts"].endswith("+00:00")
    second = by_id[made.headers["X-Request-Id"]]
    assert second["status"] == 404 and second["error"] == "not_found"
    assert "0" * 32 not in json.dumps(second)  # the route's name is logged, never the path
    assert not [line for line in requests_logged if line["route"].startswith("health.")]
