"""The installed ``casvault`` executable against a root a running 3-worker gunicorn is writing to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import requests

from casvault.config import Config
from casvault.store import Store
from tests.conftest import ADMIN_TOKEN, INGEST_TOKEN, make_png, user

CASVAULT = Path(sys.executable).with_name("casvault")
OWNER = user(6)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}
    return subprocess.run([str(CASVAULT), "--root", str(root), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_maintenance_commands_while_the_server_writes(server, tmp_path):
    root = server.root
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def upload_loop() -> None:
        n = 0
        with requests.Session() as http:
            while not stop.is_set() and n < 200:
                n += 1
                resp = http.post(server.url + "/api/v1/ingest", headers=auth,
                                 data={"owner": OWNER, "prompt": f"live {n}"},
                                 files={"file": (f"ComfyUI_{n:05d}_.png", make_png(seed=n % 7))})
                if resp.status_code != 201:
                    errors.append(f"{resp.status_code} {resp.text}")
                    return
                made.append(resp.json()["id"])
                if n % 3 == 0:
                    r = http.post(server.url + f"/api/v1/admin/images/{made[-1]}/delete", headers=admin)
                    if r.status_code != 200:
                        errors.append(f"trash {r.status_code} {r.text}")

    uploader = threading.Thread(target=upload_loop)
    uploader.start()
    try:
        runs = {}
        for args in (
            ("fsck", "--json"),
            ("purge-trash", "--older-than", "0", "--json"),
            ("gc", "--grace", "0", "--json"),
            ("thumbnails", "--jobs", "2", "--json"),
            ("quota-report", "--json"),
            ("dedupe-report", "--json"),
            ("backup", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(tmp_path / "bk"), "--json"),
            ("fsck", "--scrub", "--json"),
        ):
            proc = cli(root, *args)
            runs[args[0]] = proc
            assert "Traceback" not in proc.stderr, proc.stderr
            assert proc.returncode in (0, 1), (args, proc.returncode, proc.stderr)
            json.loads(proc.stdout)
    finally:
        stop.set()
        uploader.join(60)
    assert not errors, errors
    assert len(made) > 5
    assert json.loads(runs["purge-trash"].stdout)["failed"] == []
    final = cli(root, "fsck", "--json")
    assert final.returncode == 0, final.stdout
    store = Store(Config(root=root, fsync=False))
    alive = store.index(OWNER).records
    for rid in alive:
        record = alive[rid]
        assert store.blobs.read(record.sha256) == store.layout.image_path(record).read_bytes()
    listing = requests.get(server.url + f"/api/v1/admin/images?user_id={OWNER}&include=all&size=200",
                           headers=admin).json()
    assert {i["id"] for i in listing["items"]} == set(alive)
    untouched = [rid for i, rid in enumerate(made, 1) if i % 3]
    assert set(untouched) <= set(alive)  # only trashed ones were purged
