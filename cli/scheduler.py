"""``casvault scheduler``: APScheduler runner for the periodic jobs (an alternative to cron)."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from casvault import scheduler as jobs
from casvault.logs import configure_logging

from .common import core_errors, json_option, store_from_ctx


@click.command("scheduler")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Schedule file (TOML, e.g. ops/scheduler.toml); default: built-in schedule.")
@click.option("--list", "list_only", is_flag=True, help="Print the schedule and exit.")
@json_option
@click.pass_context
@core_errors
def scheduler_cmd(ctx: click.Context, config_path: Path | None, list_only: bool, as_json: bool) -> None:
    """Run purge-trash, gc, thumbnails, a scrub and the backup (when its folder is set) until stopped.

    Schedules: the TOML file, overridden by CASVAULT_SCHEDULE_<JOB> (a
    crontab expression, "every Ns" or "off"). Each job takes its lock, so
    two schedulers (or cron) never run the same job at once.

    Example: casvault scheduler --config ops/scheduler.toml
    """
    specs = jobs.load_schedule(config_path)
    if list_only:
        rows = [{"job": s.name, "cron": s.cron, "every": s.every, "options": s.options} for s in specs]
        if as_json:
            import json

            click.echo(json.dumps(rows, indent=2))
        else:
            for r in rows:
                when = f"cron {r['cron']}" if r["cron"] else f"every {r['every']} s"
                options = ", ".join(f"{k}={v}" for k, v in r["options"].items())
                click.echo(f"{r['job']:<12} {when:<22} {options}".rstrip())
        return
    store = store_from_ctx(ctx)
    configure_logging(store.config.log_format, store.config.log_level)
    sched = jobs.build_scheduler(store, specs)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    click.echo(f"scheduler: {len(specs)} jobs over {store.layout.root}", err=True)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass


def register(group: click.Group) -> None:
    """Add ``scheduler``."""
    group.add_command(scheduler_cmd)
