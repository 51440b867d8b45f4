"""`casvault init` and what every command says on a root that holds no store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from tests.conftest import make_png, user

CASVAULT = str(Path(sys.executable).with_name("casvault"))


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed ``casvault`` executable, as an operator runs it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}
    environ.update(env or {})
    return subprocess.run([CASVAULT, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)


def test_init_creates_then_is_idempotent_and_refuses_conflicts(tmp_path):
    root = tmp_path / "new"
    made = run("--root", str(root), "init", "--partition-tz", "Asia/Seoul", "--link-mode", "hardlink", "--json")
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert body["created"] is True and body["partition_tz"] == "Asia/Seoul" and body["link_mode"] == "hardlink"
    meta = root / "casvault.json"
    before = (meta.read_bytes(), meta.stat().st_mtime_ns, sorted(p.name for p in root.iterdir()))
    again = run("--root", str(root), "init")
    assert again.returncode == 0 and "already a store (nothing changed)" in again.stdout
    same = run("--root", str(root), "init", "--partition-tz", "Asia/Seoul")
    assert same.returncode == 0 and "already" in same.stdout
    for args, word in ((("--partition-tz", "UTC"), "partition time zone Asia/Seoul"),
                       (("--link-mode", "copy"), "link mode hardlink")):
        bad = run("--root", str(root), "init", *args)
        assert bad.returncode == 1 and word in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert (meta.read_bytes(), meta.stat().st_mtime_ns, sorted(p.name for p in root.iterdir())) == before


def test_init_then_ingest_on_a_new_root(tmp_path):
    root = tmp_path / "fresh"
    image = tmp_path / "a.png"
    image.write_bytes(make_png(seed=3))
    assert run("init", env={"CASVAULT_ROOT": str(root)}).returncode == 0
    got = run("--root", str(root), "ingest", str(image), "--owner", user(1))
    assert got.returncode == 0, got.stderr
    assert any(p.suffix == ".png" for p in (root / "outputs" / "users" / user(1)).rglob("*"))


def test_a_bad_time_zone_creates_nothing(tmp_path):
    bad = run("--root", str(tmp_path / "r"), "init", "--partition-tz", "Mars/Olympus")
    assert bad.returncode == 1 and "not a known time zone" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args", [
    ("fsck",), ("ingest", "IMG", "--owner", user(1)), ("reindex", "--adopt"), ("gc",), ("thumbnails",),
    ("quota-report",), ("purge-trash",), ("backup", "--from", "2026-01-01", "--to", "2026-01-01", "--out", "OUT"),
    ("users", "merge", user(1), "u-alice"),
], ids=lambda a: a[0])
def test_every_command_without_a_store_says_run_casvault_init(tmp_path, runner, args):
    root = tmp_path / "empty"
    root.mkdir()
    (tmp_path / "img.png").write_bytes(make_png())
    argv = [a.replace("IMG", str(tmp_path / "img.png")).replace("OUT", str(tmp_path / "out")) for a in args]
    res = runner.invoke(main, ["--root", str(root), *argv])
    assert res.exit_code == 1, res.output
    assert "run `casvault init`" in res.output and "casvault restore" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert sorted(p.name for p in root.iterdir()) == []  # nothing was created
