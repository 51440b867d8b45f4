"""scheduler: schedules from TOML and environment, jobs under their locks, a real run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvault import scheduler
from casvault.config import Config
from casvault.errors import ConfigError
from casvault.store import Store
from cli import main
from tests.conftest import ROOT, make_png, user

OPS = ROOT / "ops" / "scheduler.toml"


def test_the_shipped_schedule_loads_and_env_overrides_it():
    specs = {s.name: s for s in scheduler.load_schedule(OPS, env={})}
    assert set(specs) == {"purge-trash", "gc", "thumbnails", "scrub", "backup"}
    assert specs["backup"].options == {"out": "/srv/backup/casvault", "days": 1}
    assert specs["gc"].cron == "45 3 * * *" and specs["gc"].options == {"grace_hours": 24}
    env = {"CASVAULT_SCHEDULE_GC": "every 5s", "CASVAULT_SCHEDULE_SCRUB": "off"}
    specs = {s.name: s for s in scheduler.load_schedule(OPS, env=env)}
    assert specs["gc"].every == 5 and specs["gc"].cron is None and "scrub" not in specs


def test_bad_schedules_are_refused(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('[jobs.backups]\ncron = "* * * * *"\n')
    with pytest.raises(ConfigError, match="unknown job"):
        scheduler.load_schedule(bad, env={})
    with pytest.raises(ConfigError, match="five-field"):
        scheduler.load_schedule(None, env={"CASVAULT_SCHEDULE_GC": "sometimes"})
    with pytest.raises(ConfigError, match="not found"):
        scheduler.load_schedule(tmp_path / "missing.toml", env={})


def test_build_scheduler_has_one_job_per_spec(config):
    store = Store(config)
    sched = scheduler.build_scheduler(store, scheduler.load_schedule(OPS, env={}), blocking=False)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"purge-trash", "gc", "thumbnails", "scrub", "backup"}
    assert "hour='3'" in str(jobs["gc"].trigger) and "minute='45'" in str(jobs["gc"].trigger)


def test_a_busy_job_is_skipped(config, caplog):
    store = Store(config.with_(fsync=False))
    rec = store.ingest(make_png(seed=1), user(1)).record
    store.trash(user(1), rec.id)
    with store.locks.job("purge-trash"):
        assert scheduler.run_job(store, "purge-trash", {"older_than_days": 0}) is None
    assert "skipped" in caplog.text
    assert scheduler.run_job(store, "purge-trash", {"older_than_days": 0})["purged"] == 1
    assert scheduler.run_job(store, "scrub")["clean"] is True


def test_list_option_is_readable(runner):
    res = runner.invoke(main, ["scheduler", "--config", str(OPS), "--list"], catch_exceptions=False)
    assert res.exit_code == 0 and "purge-trash" in res.output and "45 3 * * *" in res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()}
    assert lines["gc"].endswith("grace_hours=24") and "{" not in res.output and "'" not in res.output
    assert "out=/srv/backup/casvault, days=1" in lines["backup"]
    every = runner.invoke(main, ["scheduler", "--list"], env={"CASVAULT_SCHEDULE_GC": "every 60s"})
    assert "every 60 s" in every.output


def test_backup_job_writes_yesterday_and_its_schedule_is_never_silently_ignored(config, tmp_path):
    from datetime import datetime, timedelta

    # without a folder, asking for the backup job is an error, not a no-op
    with pytest.raises(ConfigError, match="backup job needs its folder"):
        scheduler.load_schedule(None, env={"CASVAULT_SCHEDULE_BACKUP": "every 60s"})
    assert "backup" not in {s.name for s in scheduler.load_schedule(None, env={})}
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[jobs.backup]\nout = "{tmp_path / "bk"}"\n')
    specs = {s.name: s for s in scheduler.load_schedule(cfg, env={"CASVAULT_SCHEDULE_BACKUP": "every 60s"})}
    assert specs["backup"].every == 60
    store = Store(config.with_(fsync=False))
    yesterday = (datetime.now(store.layout.tz) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    rec = store.ingest(make_png(seed=8), user(3), created_at=yesterday.isoformat()).record
    store.ingest(make_png(seed=9), user(3))  # today: not in yesterday's backup
    result = scheduler.run_job(store, "backup", specs["backup"].options)
    assert result["records"] == 1
    assert (tmp_path / "bk").is_dir() and any(p.name == rec.sha256 for p in (tmp_path / "bk").rglob("*"))


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


def test_the_scheduled_gc_runs_and_is_not_skipped_by_its_own_lock(config):
    store = Store(config.with_(fsync=False))
    assert scheduler.run_job(store, "gc", {"grace_hours": 0}) is not None
