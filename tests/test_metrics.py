"""/metrics: off by default, restricted, and under gunicorn the sum of every worker's counts."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from casvault import jobruns, scheduler
from casvault.config import Config
from casvault.locks import Locks
from casvault.logs import JsonFormatter
from casvault.store import Store
from tests.conftest import ADMIN_TOKEN, INGEST_TOKEN, make_png, user
from tests.servers import Gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PIPELINE = {"Authorization": f"Bearer {INGEST_TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is absent (a counter never incremented)."""
    return scrape.get((name, frozenset(labels.items())), 0.0)


# --- in process -------------------------------------------------------------------


def test_metrics_are_off_by_default(client):
    resp = client.get("/metrics", headers=ADMIN)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"


def test_metrics_need_the_admin_token_or_an_allowed_network(config):
    from web import create_app

    app = create_app(config.with_(metrics=True, metrics_networks="10.0.0.0/8, fd00::/8"))
    c = app.test_client()
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    resp = c.get("/metrics", headers=ADMIN)
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    assert c.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200
    assert c.get("/metrics", environ_base={"REMOTE_ADDR": "11.0.0.1"}).status_code == 401
    # a forwarding header is not the socket peer
    assert c.get("/metrics", headers={"X-Forwarded-For": "10.1.1.1"}).status_code == 401


def test_a_bad_metrics_network_is_a_config_error():
    from casvault.errors import ConfigError

    with pytest.raises(ConfigError, match="CASVAULT_METRICS_NETWORKS"):
        Config.from_env({"CASVAULT_METRICS_NETWORKS": "10.0.0.0/8,not-a-net"})
    assert Config.from_env({"CASVAULT_METRICS": "1", "CASVAULT_METRICS_NETWORKS": "127.0.0.1/32"}).metrics


def test_503s_are_counted_by_cause(config):
    from web import create_app

    app = create_app(config.with_(metrics=True))
    c = app.test_client()
    before = samples(c.get("/metrics", headers=ADMIN).text)
    meta = Path(config.root) / "casvault.json"
    meta.rename(meta.with_suffix(".away"))
    assert c.get("/readyz").status_code == 503
    meta.with_suffix(".away").rename(meta)
    after = samples(c.get("/metrics", headers=ADMIN).text)
    assert value(after, "casvault_http_unavailable_total", cause="not_ready") == \
        value(before, "casvault_http_unavailable_total", cause="not_ready") + 1
    assert value(after, "casvault_http_requests_total", route="health.readyz", method="GET", status="503") == \
        value(before, "casvault_http_requests_total", route="health.readyz", method="GET", status="503") + 1


def test_a_job_run_leaves_its_outcome_and_one_log_line(config, caplog):
    store = Store(config.with_(fsync=False))
    caplog.set_level(logging.INFO, logger="casvault.jobs")
    assert scheduler.run_job(store, "gc", {"grace_hours": 0}) is not None
    (run,) = jobruns.last_runs(store)
    assert (run.job, run.result) == ("gc", "ok") and run.duration_s >= 0
    assert json.loads((store.layout.meta / "jobs" / "gc.json").read_text())["result"] == "ok"
    (line,) = [r for r in caplog.records if r.name == "casvault.jobs"]
    parsed = json.loads(JsonFormatter().format(line))
    assert parsed["job"] == "gc" and parsed["result"] == "ok" and "duration_ms" in parsed and "swept" in parsed


def test_cron_runs_of_the_cli_are_recorded_and_partial_runs_are_not(config, runner):
    from cli import main

    store = Store(config.with_(fsync=False))
    rec = store.ingest(make_png(seed=3), user(3)).record
    base = ["--root", str(config.root)]
    for args in (["purge-trash", "--dry-run"], ["gc", "--dry-run"], ["fsck"]):
        assert runner.invoke(main, base + args + ["--quiet"], catch_exceptions=False).exit_code == 0
    assert jobruns.last_runs(store) == []
    store.trash(user(3), rec.id)
    for args in (["purge-trash", "--older-than", "0"], ["gc", "--grace", "0"], ["thumbnails"], ["fsck", "--scrub"],
                 ["backup", "--from", "2000-01-01", "--to", "2000-01-01", "--out", str(config.root.parent / "bk")]):
        res = runner.invoke(main, base + args + ["--quiet"], catch_exceptions=False)
        assert res.exit_code == 0, (args, res.output)
    runs = {run.job: run.result for run in jobruns.last_runs(store)}
    assert runs == {"purge-trash": "ok", "gc": "ok", "thumbnails": "ok", "scrub": "ok", "backup": "ok"}
    assert not store.index(user(3)).records  # the purge really ran


def test_a_failing_job_is_recorded_as_an_error(config):
    store = Store(config.with_(fsync=False))

    @jobruns.recorded("gc")
    def broken_gc(store):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        broken_gc(store)
    (run,) = jobruns.last_runs(store)
    assert run.result == "error" and run.error == "RuntimeError"


def test_a_broken_metrics_system_never_fails_a_request(client, monkeypatch):
    import web.metrics
    from casvault import metrics as core_metrics

    class Broken(core_metrics.Sink):
        def ingested(self, kind, nbytes, new_blob):
            raise OSError("the metrics folder is gone")

    def broken_observe(*args):
        raise OSError("the metrics folder is gone")

    monkeypatch.setattr(core_metrics, "_sink", Broken())
    monkeypatch.setattr(web.metrics, "observe_request", broken_observe)
    resp = client.post("/api/v1/ingest", data={"file": (__import__("io").BytesIO(make_png(seed=9)), "a.png"),
                                               "owner": user(9)}, headers=PIPELINE)
    assert resp.status_code == 201
    store = client.application.extensions["casvault.store"]
    assert store.get(user(9), resp.get_json()["id"]).sha256 == resp.get_json()["sha256"]


# --- a real gunicorn ---------------------------------------------------------------


def scrape(srv: Gunicorn) -> dict:
    resp = requests.get(srv.url + "/metrics", headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    return samples(resp.text)


def ingest(srv: Gunicorn, owner: str, seed: int) -> requests.Response:
    return requests.post(srv.url + "/api/v1/ingest", files={"file": ("g.png", make_png(seed=seed), "image/png")},
                         data={"owner": owner}, headers=PIPELINE, timeout=60)


@pytest.mark.timeout(240)
def test_metrics_sum_every_worker(tmp_path):
    root = tmp_path / "root"
    env = {"CASVAULT_METRICS": "1", "CASVAULT_QUOTA_MAX_COUNT": "15"}
    srv = Gunicorn(root, workers=3, env=env)
    srv.start()
    owner, other = user(1), user(2)
    try:
        # NOTE: in parallel, so that several workers serve them
        with ThreadPoolExecutor(6) as pool:
            statuses = [r.status_code for r in pool.map(lambda seed: ingest(srv, owner, seed), range(12))]
            statuses += [r.status_code for r in pool.map(lambda seed: ingest(srv, owner, seed), range(3))]  # again
        statuses += [ingest(srv, owner, 100 + seed).status_code for seed in range(2)]  # over the quota
        assert statuses == [201] * 15 + [507] * 2
        sizes = sum(len(make_png(seed=s)) for s in range(12)) + sum(len(make_png(seed=s)) for s in range(3))

        # a write that has to wait for the user's lock, held here by another process
        locks = Locks(root / "locks")
        waited: list[int] = []
        with locks.user(other):
            t = threading.Thread(target=lambda: waited.append(ingest(srv, other, 500).status_code))
            t.start()
            time.sleep(0.5)
        t.join(60)
        assert waited == [201]

        # a scheduled job's last run, recorded by another process over the same root
        assert scheduler.run_job(Store(Config(root=root)), "gc") is not None

        folder = root / "tmp" / "metrics"
        # NOTE: a worker's histogram file appears with its first answered request
        pids = {int(p.stem[10:]) for p in folder.glob("histogram_*.db") if p.stem[10:].isdigit()}
        assert len(pids) >= 2, "the requests were all served by one worker; nothing was summed"
        first = scrape(srv)
        for _ in range(6):  # whichever worker answers, the same sums
            again = scrape(srv)
            assert value(again, "casvault_ingests_total", kind="generated") == 16
        m = first
        assert value(m, "casvault_ingests_total", kind="generated") == 16
        assert value(m, "casvault_duplicates_total", kind="generated") == 3
        assert value(m, "casvault_ingest_bytes_total", kind="generated") == sizes + len(make_png(seed=500))
        assert value(m, "casvault_quota_refusals_total", route="api.ingest") == 2
        assert value(m, "casvault_http_requests_total", route="api.ingest", method="POST", status="201") == 16
        assert value(m, "casvault_http_requests_total", route="api.ingest", method="POST", status="507") == 2
        assert value(m, "casvault_http_request_duration_seconds_count", route="api.ingest", method="POST") == 18
        assert value(m, "casvault_lock_waits_total", lock="user", outcome="acquired") >= 1
        assert value(m, "casvault_lock_wait_seconds_sum", lock="user") >= 0.3
        assert value(m, "casvault_job_last_success", job="gc") == 1
        assert value(m, "casvault_job_last_run_timestamp_seconds", job="gc") > time.time() - 120

        # a worker killed: the master folds its files into the archive, its counts stay in the sums
        worker = sorted(pids)[0]
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (folder / f"counter_{worker}.db").exists():
            assert time.monotonic() < deadline, "the dead worker's file was not folded"
            time.sleep(0.05)
        assert (folder / "counter_archive.db").is_file() and (folder / "histogram_archive.db").is_file()
        for _ in range(4):
            m = scrape(srv)
            assert value(m, "casvault_ingests_total", kind="generated") == 16
            assert value(m, "casvault_http_request_duration_seconds_count", route="api.ingest", method="POST") == 18
    finally:
        srv.stop()

    # a new server over the same root starts counting from zero (the master empties the folder)
    srv = Gunicorn(root, workers=2, env=env)
    srv.start()
    try:
        m = scrape(srv)
        assert value(m, "casvault_ingests_total", kind="generated") == 0
        assert value(m, "casvault_job_last_success", job="gc") == 1  # kept in the store, not in the folder
    finally:
        srv.stop()
