"""watch: files other programs drop into outputs/ are adopted within seconds; our own files never."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvault.config import Config
from casvault.store import Store
from casvault.watch import Watcher
from tests.conftest import make_png, user

OWNER = user(4)
CASVAULT = Path(sys.executable).with_name("casvault")


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def records(root: Path) -> dict:
    return Store(Config(root=root, fsync=False)).index(OWNER).records


def drop(root: Path, name: str, seed: int, meta: dict | None = None) -> Path:
    """Write a file the way another program would: the image in pieces, then its JSON."""
    day = root / "outputs" / "users" / OWNER / "2026" / "11" / "28"
    day.mkdir(parents=True, exist_ok=True)
    path = day / name
    data = make_png(seed=seed, width=90, height=60)
    with open(path, "wb") as fh:
        fh.write(data[:40])
        fh.flush()
        time.sleep(0.1)
        fh.write(data[40:])
    if meta is not None:
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def test_watcher_adopts_dropped_files_and_ignores_ours(config):
    store = Store(config.with_(fsync=False))
    root = store.layout.root
    adopted = []
    watcher = Watcher(store, settle=0.3, on_adopt=adopted.append)
    watcher.start()
    try:
        started = time.monotonic()
        path = drop(root, "ComfyUI_00007_.png", 1, {"prompt": "dropped", "seed": 9})
        found = wait_for(lambda: records(root))
        latency = time.monotonic() - started
        record = next(iter(found.values()))
        assert record.prompt == "dropped" and record.seed == 9 and record.original_filename == path.name
        wait_for(lambda: not path.exists() and not path.with_suffix(".json").exists())
        assert latency < 5, latency
        own = store.ingest(make_png(seed=2), OWNER).record
        store.trash(OWNER, own.id)
        store.restore(OWNER, own.id)
        time.sleep(1.2)  # several settle periods: nothing of ours may be adopted
        assert len(records(root)) == 2
        assert [a.status for a in adopted] == ["adopted"]
    finally:
        watcher.stop()


def test_cli_watch_runs_alone_and_stops_on_sigterm(config, tmp_path):
    store = Store(config.with_(fsync=False))
    root = store.layout.root
    env = {**os.environ, "CASVAULT_ROOT": str(root), "CASVAULT_FSYNC": "0"}
    proc = subprocess.Popen([str(CASVAULT), "watch", "--settle", "0.2", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (root / "locks" / "job-watch.lock").exists())
        time.sleep(0.5)  # the observer is up
        second = subprocess.run([str(CASVAULT), "watch"], env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 75 and "job watch is locked" in second.stderr
        drop(root, "dropped.png", 3)
        wait_for(lambda: records(root))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    line = json.loads(out.strip().splitlines()[0])
    assert line["status"] == "adopted" and line["path"].endswith("dropped.png")


@pytest.mark.timeout(120)
def test_server_with_watch_adopts_in_one_worker(tmp_path):
    from casvault.errors import LockBusy
    from tests.servers import Gunicorn

    root = tmp_path / "root"
    srv = Gunicorn(root, workers=3, env={"CASVAULT_WATCH": "1", "CASVAULT_FSYNC": "0"})
    srv.start()
    try:
        store = Store(Config(root=root, fsync=False))
        with pytest.raises(LockBusy):
            with store.locks.job("watch"):
                pass
        path = drop(root, "from-another-app.png", 4, {"prompt": "via the server's watcher"})
        found = wait_for(lambda: records(root), timeout=20)
        assert next(iter(found.values())).prompt == "via the server's watcher"
        wait_for(lambda: not path.exists())
        log = srv.log.read_text()
        assert "Traceback" not in log
    finally:
        srv.stop()
