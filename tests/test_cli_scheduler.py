"""casvault scheduler through the CLI: --list, a real scheduler process (the core: tests/test_scheduler.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from casvault.config import Config
from casvault.store import Store
from cli import main
from tests.conftest import ROOT, make_png, user

OPS = ROOT / "ops" / "scheduler.toml"


def test_list_option_is_readable(runner):
    res = runner.invoke(main, ["scheduler", "--config", str(OPS), "--list"], catch_exceptions=False)
    assert res.exit_code == 0 and "purge-trash" in res.output and "45 3 * * *" in res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()}
    assert lines["gc"].endswith("grace_hours=24") and "{" not in res.output and "'" not in res.output
    assert "out=/srv/backup/casvault, days=1" in lines["backup"]
    every = runner.invoke(main, ["scheduler", "--list"], env={"CASVAULT_SCHEDULE_GC": "every 60s"})
    assert "every 60 s" in every.output


def test_the_scheduler_process_runs_jobs_and_stops(tmp_path):
    root = tmp_path / "root"
    store = Store(Config(root=root, fsync=False))
    owner = user(2)
    rec = store.ingest(make_png(seed=2), owner).record
    store.trash(owner, rec.id)
    cfg = tmp_path / "s.toml"
    cfg.write_text('[jobs.purge-trash]\nevery = 1\nolder_than_days = 0\n'
                   '[jobs.gc]\nenabled = false\n[jobs.thumbnails]\nenabled = false\n[jobs.scrub]\nenabled = false\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}, "CASVAULT_FSYNC": "0"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("casvault")), "--root", str(root), "scheduler",
                             "--config", str(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while Store(Config(root=root, fsync=False)).index(owner).records:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "job purge-trash done" in err
