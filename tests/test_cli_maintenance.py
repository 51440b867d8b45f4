"""thumbnails, quota-report, dedupe-report, purge-trash and serve through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from casvault import fsck
from casvault.config import Config
from casvault.records import decode_record, encode_record, evolve
from casvault.store import Store
from cli import main
from tests.conftest import make_png, user
from tests.servers import free_port

A, B = user(1), user(2)


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast)."""
    return Store(config.with_(fsync=False))


def invoke(runner, store: Store, *args: str):
    return runner.invoke(main, ["--root", str(store.layout.root), *args], catch_exceptions=False)


def test_thumbnails_makes_only_missing_ones_unless_forced(fstore, runner):
    recs = [fstore.ingest(make_png(seed=i, width=120, height=60), A).record for i in range(12)]
    old = fstore.ingest(make_png(seed=99), B, created_at="2026-01-01T00:00:00+00:00", make_thumb=False).record
    assert old.thumb is None
    for r in recs[:3]:
        fstore.layout.thumb_path(r).unlink()
    kept = fstore.layout.thumb_path(recs[5])
    before = kept.stat().st_mtime_ns
    res = invoke(runner, fstore, "thumbnails", "--jobs", "2", "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["made"] == 4 and body["present"] == 9 and body["sidecars_updated"] == 1
    assert kept.stat().st_mtime_ns == before  # only missing ones
    for r in recs[:3]:
        assert fstore.layout.thumb_path(r).stat().st_size > 0
    now = decode_record(fstore.layout.sidecar_path(old).read_bytes())
    assert now.thumb and fstore.layout.thumb_path(now).is_file()
    assert Store(fstore.config).get(B, old.id).thumb == now.thumb  # the manifest follows the sidecar
    assert fsck.check(fstore).clean
    res = invoke(runner, fstore, "thumbnails", "--force", "--user", A, "--since", "2026-01-02", "--json")
    assert json.loads(res.output)["made"] == 12
    assert kept.stat().st_mtime_ns != before
    res = invoke(runner, fstore, "thumbnails", "--since", "yesterday")
    assert res.exit_code == 2


def test_quota_report(tmp_path, runner, monkeypatch):
    monkeypatch.setenv("CASVAULT_QUOTA_MAX_COUNT", "4")
    store = Store(Config.from_env(root=tmp_path / "root", fsync=False))
    for i in range(3):
        store.ingest(make_png(seed=i), A)
    t = store.ingest(make_png(seed=5), B).record
    store.trash(B, t.id)
    res = invoke(runner, store, "quota-report", "--json")
    assert res.exit_code == 0
    rows = {r["user"]: r for r in json.loads(res.output)["users"]}
    assert rows[A]["count"] == 3 and rows[A]["percent"] == 75.0
    assert rows[B]["trash_count"] == 1 and rows[B]["trash_bytes"] == t.bytes and rows[B]["percent"] == 25.0
    res = invoke(runner, store, "quota-report", "--over", "50", "--json")
    assert [r["user"] for r in json.loads(res.output)["users"]] == [A]
    res = invoke(runner, store, "quota-report")
    assert A in res.output and "75.0%" in res.output


def test_dedupe_report(fstore, runner):
    same = make_png(seed=1)
    fstore.ingest(same, A)
    fstore.ingest(same, A)
    fstore.ingest(same, B)
    fstore.ingest(make_png(seed=2), B)
    res = invoke(runner, fstore, "dedupe-report", "--top", "1", "--json")
    body = json.loads(res.output)
    other = len(make_png(seed=2))
    assert body["records"] == 4 and body["blobs_referenced"] == 2
    assert body["logical_bytes"] == 3 * len(same) + other
    assert body["stored_bytes"] == len(same) + other
    assert body["savings_bytes"] == 2 * len(same)
    assert body["most_shared"] == [{"sha256": body["most_shared"][0]["sha256"], "records": 3, "users": 2,
                                    "bytes": len(same)}]
    users = {u["user"]: u for u in body["users"]}
    assert users[A]["savings_bytes"] == len(same) and users[A]["blobs_shared_with_others"] == 1


def age_trash(store: Store, owner: str, rid: str, days: float) -> None:
    """Pretend a record went to the trash ``days`` ago (sidecar and manifest)."""
    when = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="milliseconds")
    record = store.get(owner, rid)
    path = store.layout.sidecar_path(record)
    path.write_bytes(encode_record(evolve(record, trashed_at=when)))
    store.rebuild_manifest(owner)


def test_purge_trash(fstore, runner):
    keep = fstore.ingest(make_png(seed=1), A).record
    young = fstore.ingest(make_png(seed=2), A).record
    old = fstore.ingest(make_png(seed=3), B).record
    gone = fstore.ingest(make_png(seed=4), B).record
    for r in (young, old, gone):
        fstore.trash(r.owner, r.id)
    age_trash(fstore, B, old.id, 40)
    age_trash(fstore, B, gone.id, 41)
    fstore.layout.image_path(fstore.get(B, gone.id)).unlink()  # already missing: counts as deleted
    res = invoke(runner, fstore, "purge-trash", "--dry-run", "--json")
    body = json.loads(res.output)
    assert res.exit_code == 0 and body["purged"] == 2 and sorted(body["ids"]) == sorted([old.id, gone.id])
    assert Store(fstore.config).get(B, old.id)
    res = invoke(runner, fstore, "purge-trash", "--json")
    body = json.loads(res.output)
    assert res.exit_code == 0 and body["purged"] == 2 and body["failed"] == []
    assert body["bytes"] == old.bytes + gone.bytes
    fresh = Store(fstore.config)
    assert set(fresh.index(B).records) == set()
    assert set(fresh.index(A).records) == {keep.id, young.id}
    assert fstore.blobs.has(old.sha256)  # blobs wait for gc
    res = invoke(runner, fstore, "purge-trash", "--older-than", "0")
    assert res.exit_code == 0 and "purged 1 records" in res.output


def test_purge_trash_reports_a_failure(fstore, runner, monkeypatch):
    rec = fstore.ingest(make_png(seed=1), A).record
    fstore.trash(A, rec.id)
    monkeypatch.setenv("CASVAULT_FAULTS", "purge.after_sidecar=eio")
    from casvault import faults

    faults.reset()
    try:
        res = invoke(runner, fstore, "purge-trash", "--older-than", "0", "--json")
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert res.exit_code == 1
    failed = json.loads(res.output)["failed"]
    assert failed[0]["id"] == rec.id and "Input/output error" in failed[0]["reason"]
    assert fsck.check(Store(fstore.config), repair=True).remaining == []
    assert Store(fstore.config).index(A).records == {}


def test_serve_runs_the_development_server(tmp_path):
    port = free_port()
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("casvault")), "--root", str(root), "serve",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/api/v1/images", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.json()["items"] == []
        assert (root / "casvault.json").is_file()
    finally:
        proc.terminate()
        proc.wait(10)
