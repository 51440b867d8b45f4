"""The periodic jobs (purge-trash, gc, thumbnails, scrub, backup) and an APScheduler runner for them.

Each job runs under the store's job lock of its name, the same lock the
CLI commands take, so two schedulers (or a scheduler and a cron run) never
run one job at once: a busy lock is logged and the run skipped.

Schedules come from a TOML file (``ops/scheduler.toml``)::

    [jobs.gc]
    cron = "45 3 * * *"     # five-field crontab, in the scheduler's time zone
    grace_hours = 24

or from ``CASVAULT_SCHEDULE_<JOB>`` (``PURGE_TRASH``, ``GC``, ``THUMBNAILS``,
``SCRUB``, ``BACKUP``), which wins: a crontab expression, ``every <N>s`` or ``off``.

The backup job writes yesterday's partition (``days = N``: the last N days)
into its ``out`` folder; it runs only when ``out`` is set, and asking for it
without one is an error, not a silent no-op.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

from . import trash
from .errors import ConfigError, LockBusy
from .store import Store

log = logging.getLogger("casvault.scheduler")

DEFAULT_SCHEDULE = {
    "purge-trash": "15 3 * * *",
    "gc": "45 3 * * *",
    "thumbnails": "*/30 * * * *",
    "scrub": "30 4 * * 0",
    "backup": "30 5 * * *",
}
EVERY_RE = re.compile(r"every\s+(\d+)\s*s")


# --- the jobs -------------------------------------------------------------------


def _run_purge(store: Store, opts: Mapping[str, Any]) -> dict[str, Any]:
    return trash.purge_expired(store, opts.get("older_than_days")).as_summary()


def _run_gc(store: Store, opts: Mapping[str, Any]) -> dict[str, Any]:
    from . import gc

    return gc.collect(store, float(opts.get("grace_hours", gc.DEFAULT_GRACE_HOURS))).as_dict()


def _run_thumbnails(store: Store, opts: Mapping[str, Any]) -> dict[str, Any]:
    from . import thumbjob

    return thumbjob.regenerate(store, jobs=opts.get("jobs")).as_dict()


def _run_scrub(store: Store, opts: Mapping[str, Any]) -> dict[str, Any]:
    from . import fsck

    report = fsck.check(store, scrub=True, use_sha256=bool(opts.get("sha256", False)))
    return {"clean": report.clean, "problems": len(report.problems), "checked": report.checked}


def _run_backup(store: Store, opts: Mapping[str, Any]) -> dict[str, Any]:
    from . import backup

    today = datetime.now(store.layout.tz).date()
    first = today - timedelta(days=int(opts.get("days", 1)))
    last = today - timedelta(days=1)
    return backup.backup(store, Path(opts["out"]), first.isoformat(), last.isoformat()).as_dict()


JOBS: dict[str, tuple[str | None, Callable[[Store, Mapping[str, Any]], dict[str, Any]]]] = {
    # job name → (lock name, runner); the lock names are the CLI commands' own
    "purge-trash": ("purge-trash", _run_purge),
    # NOTE: gc.collect takes the "gc" lock itself; a second flock on it from
    # the same process would find it busy and skip every scheduled gc.
    "gc": (None, _run_gc),
    "thumbnails": ("thumbnails", _run_thumbnails),
    "scrub": ("fsck", _run_scrub),
    "backup": ("backup", _run_backup),
}


def run_job(store: Store, name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Run one job under its lock; None (and a log line) when another run holds it.

    The job's own function logs the run and keeps it for /metrics
    (:mod:`casvault.jobruns`). Errors other than a busy lock propagate
    (APScheduler logs them).
    """
    lock, runner = JOBS[name]
    try:
        with store.locks.job(lock) if lock else nullcontext():
            return runner(store, options or {})
    except LockBusy:
        log.warning("job %s skipped: another run holds its lock", name,
                    extra={"fields": {"job": name, "result": "skipped"}})
        return None


# --- schedules ------------------------------------------------------------------


@dataclass
class JobSpec:
    """When one job runs: a crontab expression or every N seconds."""

    name: str
    cron: str | None = None
    every: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _parse_when(name: str, value: str) -> tuple[str | None, int | None]:
    value = value.strip()
    m = EVERY_RE.fullmatch(value)
    if m:
        return None, int(m.group(1))
    if len(value.split()) != 5:
        raise ConfigError(f"schedule of {name}: {value!r} is not a five-field crontab expression or 'every Ns'")
    return value, None


def load_schedule(path: Path | None = None, env: Mapping[str, str] | None = None) -> list[JobSpec]:
    """The job schedule: defaults, then the TOML file, then ``CASVAULT_SCHEDULE_<JOB>``.

    Raises ConfigError for an unreadable file, an unknown job or a bad expression.
    """
    env = os.environ if env is None else env
    table: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh).get("jobs", {})
        except FileNotFoundError:
            raise ConfigError(f"scheduler config {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"scheduler config {path}: {exc}") from None
    unknown = set(table) - set(JOBS)
    if unknown:
        raise ConfigError(f"unknown job(s) in {path}: {', '.join(sorted(unknown))} (known: {', '.join(JOBS)})")
    specs = []
    for name in JOBS:
        section = dict(table.get(name, {}))
        enabled = section.pop("enabled", True)
        when = section.pop("cron", None) or (f"every {section.pop('every')}s" if "every" in section else None)
        when = env.get("CASVAULT_SCHEDULE_" + name.upper().replace("-", "_")) or when or DEFAULT_SCHEDULE[name]
        if not enabled or when.strip().lower() == "off":
            continue
        if name == "backup" and not section.get("out"):
            if env.get("CASVAULT_SCHEDULE_BACKUP") or "backup" in table:
                raise ConfigError('the backup job needs its folder: out = "/backup/casvault" under [jobs.backup]'
                                  + (f" in {path}" if path else " in a schedule file (--config)"))
            continue  # no folder, not asked for: no backup job
        cron, every = _parse_when(name, when)
        specs.append(JobSpec(name, cron, every, section))
    return specs


def build_scheduler(store: Store, specs: list[JobSpec], *, blocking: bool = True):
    """An APScheduler 3 scheduler with one job per spec (not started)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    )
    for spec in specs:
        try:
            trigger = CronTrigger.from_crontab(spec.cron) if spec.cron else IntervalTrigger(seconds=spec.every)
        except ValueError as exc:
            raise ConfigError(f"schedule of {spec.name}: {exc}") from None
        scheduler.add_job(run_job, trigger, args=(store, spec.name, spec.options), id=spec.name, name=spec.name)
    return scheduler
