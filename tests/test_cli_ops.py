"""ops/: every job line of the crontab and every systemd ExecStart is a valid casvault command;
crontab, timers and scheduler run the same jobs (backup included) over one root."""

from __future__ import annotations

import configparser
import re
import shlex

import click
import pytest

from cli import main
from tests.conftest import ROOT

OPS = ROOT / "ops"


def parse(argv: list[str]) -> click.Context:
    """Parse a casvault command line the way the executable would, without running it."""
    ctx = click.Context(main, info_name="casvault")
    group: click.Command = main
    words = list(argv)
    while isinstance(group, click.Group):
        name, cmd, words = group.resolve_command(ctx, words)
        assert cmd is not None, f"no command {name!r}"
        if isinstance(cmd, click.Group):
            ctx, group, words = click.Context(cmd, info_name=name, parent=ctx), cmd, words
            continue
        return cmd.make_context(name, words, parent=ctx)
    raise AssertionError(argv)


def crontab_commands() -> list[list[str]]:
    commands = []
    for line in (OPS / "crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        command = line.split(None, 5)[5]
        command = re.sub(r'"\$\(date [^)]*\)"', "2026-11-27", command).replace("\\%", "%")
        for part in command.split("||"):
            words = [w for w in shlex.split(part) if not w.startswith(">")]  # output redirections
            if words[0] == "casvault":
                commands.append(words[1:])
    return commands


def systemd_commands() -> list[tuple[str, list[str]]]:
    found = []
    for unit in sorted((OPS / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(unit)
        words = shlex.split(parser["Service"]["ExecStart"])
        if words[:2] == ["/bin/sh", "-c"]:  # a shell line, for the date arithmetic
            line = re.sub(r'"\$\(date [^)]*\)"', "2026-11-27", words[2]).replace("%%", "%")
            words = shlex.split(line)[1:] if line.startswith("exec ") else shlex.split(line)
        if words[0].endswith("/casvault"):
            found.append((unit.name, words[1:]))
    return found


def test_crontab_has_every_periodic_job():
    names = [c[0] for c in crontab_commands()]
    assert {"purge-trash", "gc", "thumbnails", "fsck", "backup"} <= set(names)


@pytest.mark.parametrize("argv", crontab_commands(), ids=lambda a: a[0])
def test_crontab_line_parses(argv):
    parse(argv)


def test_every_timer_has_its_service():
    timers = {p.stem for p in (OPS / "systemd").glob("*.timer")}
    assert timers == {"casvault-purge-trash", "casvault-gc", "casvault-thumbnails", "casvault-scrub", "casvault-backup"}
    for name in timers:
        assert (OPS / "systemd" / f"{name}.service").is_file()
    assert "gunicorn -c ops/gunicorn.conf.py" in (OPS / "systemd" / "casvault.service").read_text()


@pytest.mark.parametrize(("unit", "argv"), systemd_commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_systemd_exec_start_parses(unit, argv):
    parse(argv)


def test_one_root_and_the_same_jobs_everywhere():
    """nginx, systemd, cron and the scheduler name one root, and each runs every job the README lists."""
    from casvault import scheduler

    root = "/srv/casvault/data"
    texts = {p.relative_to(OPS).as_posix(): p.read_text() for p in OPS.rglob("*") if p.is_file()}
    for name, text in texts.items():
        for found in re.findall(r"/srv/casvault/[\w./-]*", text):
            assert found.startswith(root), (name, found)
    assert "CASVAULT_ROOT=/srv/casvault/data" in texts["crontab"]
    for name, text in texts.items():
        if name.startswith("systemd/") and name.endswith(".service"):
            assert "Environment=CASVAULT_ROOT=/srv/casvault/data" in text, name
    assert "alias /srv/casvault/data/blobs/sha256/;" in texts["nginx.conf"]
    jobs = {"purge-trash", "gc", "thumbnails", "fsck", "backup"}
    assert {c[0] for c in crontab_commands()} == jobs
    assert {argv[0] for _, argv in systemd_commands()} == jobs | {"scheduler"}
    specs = {s.name: s for s in scheduler.load_schedule(OPS / "scheduler.toml", env={})}
    assert set(specs) == {"purge-trash", "gc", "thumbnails", "scrub", "backup"}
    # the same times in the three: thumbnails every 30 minutes, backup nightly at 05:30
    assert specs["thumbnails"].cron == "*/30 * * * *" and "*/30 * * * * casvault thumbnails" in texts["crontab"]
    assert "OnCalendar=*:0/30" in texts["systemd/casvault-thumbnails.timer"]
    assert specs["backup"].cron == "30 5 * * *" and "30 5 * * *   casvault backup" in texts["crontab"]
    assert "OnCalendar=*-*-* 05:30:00" in texts["systemd/casvault-backup.timer"]
    readme = (ROOT / "README.md").read_text()
    assert "`thumbnails` every 30 minutes" in readme and "hourly" not in readme
