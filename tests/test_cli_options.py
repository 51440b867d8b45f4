"""Options every operator meets: --root anywhere, --version, required options in help, -q, unknown users."""

from __future__ import annotations

import json

import pytest

from casvault.config import Config
from casvault.store import Store
from cli import main
from tests.conftest import make_png, user


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync, with one image."""
    store = Store(config.with_(fsync=False))
    store.ingest(make_png(seed=1), user(1))
    return store


def test_root_is_accepted_after_the_command_name(fstore, runner, tmp_path, monkeypatch):
    root = str(fstore.layout.root)
    monkeypatch.delenv("CASVAULT_ROOT", raising=False)
    for argv in (["--root", root, "fsck", "--json"], ["fsck", "--root", root, "--json"],
                 ["fsck", "--json", f"--root={root}"], ["users", "merge", "--root", root, user(1), "u-x", "--dry-run"]):
        res = runner.invoke(main, argv)
        assert res.exit_code == 0, (argv, res.output)
    assert json.loads(runner.invoke(main, ["fsck", "--root", root, "--json"]).output)["clean"] is True
    # after the command wins over before it and over CASVAULT_ROOT
    elsewhere = tmp_path / "nothing-here"
    res = runner.invoke(main, ["--root", str(elsewhere), "fsck", "--root", root])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["fsck", "--root", root], env={"CASVAULT_ROOT": str(elsewhere)})
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["fsck"], env={"CASVAULT_ROOT": root})
    assert res.exit_code == 0, res.output
    assert "--root DIR" in runner.invoke(main, ["gc", "--help"]).output


def test_version(runner):
    from importlib.metadata import version

    res = runner.invoke(main, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"casvault {version('casvault')}"


def test_backup_marks_from_and_to_required(runner, fstore, tmp_path):
    text = runner.invoke(main, ["backup", "--help"]).output
    for name in ("--from", "--to", "--out"):
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert "[required]" in line, line
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "backup", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "Missing option '--from'" in res.output
    assert not (tmp_path / "b").exists()


def test_quiet_silences_only_the_progress_bar(fstore, runner):
    root = str(fstore.layout.root)
    for argv in (["thumbnails", "-q"], ["gc", "--quiet"], ["purge-trash", "-q"], ["fsck", "-q"]):
        res = runner.invoke(main, ["--root", root, *argv])
        assert res.exit_code == 0 and res.output.strip(), (argv, res.output)  # the summary line is there


def test_thumbnails_for_an_unknown_user_is_an_error(fstore, runner):
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "thumbnails", "--user", "u-nobody"])
    assert res.exit_code == 1 and res.output.strip() == f"Error: no such user in {fstore.layout.root}: u-nobody"
    ok = runner.invoke(main, ["--root", str(fstore.layout.root), "thumbnails", "--user", user(1)])
    assert ok.exit_code == 0, ok.output
    bk = runner.invoke(main, ["--root", str(fstore.layout.root), "backup", "--from", "2026-01-01", "--to",
                              "2026-01-01", "--out", str(fstore.layout.root.parent / "bk"), "--user", "u-nobody"])
    assert bk.exit_code == 1 and bk.output.strip() == f"Error: no such user in {fstore.layout.root}: u-nobody"


def test_quota_report_over_without_limits_says_so(fstore, runner, monkeypatch):
    for name in ("CASVAULT_QUOTA_MAX_BYTES", "CASVAULT_QUOTA_MAX_COUNT"):
        monkeypatch.delenv(name, raising=False)
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "quota-report", "--over", "50"])
    assert res.exit_code == 0 and res.output.startswith("no quota limits are set"), res.output
    limited = runner.invoke(main, ["--root", str(fstore.layout.root), "quota-report", "--over", "99"],
                            env={"CASVAULT_QUOTA_MAX_COUNT": "100"})
    assert limited.output.strip() == "no users at or over 99%"
    full = runner.invoke(main, ["--root", str(fstore.layout.root), "quota-report", "--over", "1"],
                         env={"CASVAULT_QUOTA_MAX_COUNT": "100"})
    assert user(1) in full.output and full.output.startswith("user")
