"""ops/: every job line of the crontab and every systemd ExecStart is a valid casvault command."""

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
            words = shlex.split(part)
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
    assert timers == {"casvault-purge-trash", "casvault-gc", "casvault-thumbnails", "casvault-scrub"}
    for name in timers:
        assert (OPS / "systemd" / f"{name}.service").is_file()
    assert "gunicorn -c ops/gunicorn.conf.py" in (OPS / "systemd" / "casvault.service").read_text()


@pytest.mark.parametrize(("unit", "argv"), systemd_commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_systemd_exec_start_parses(unit, argv):
    parse(argv)
