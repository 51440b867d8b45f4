"""Shared pieces of the maintenance commands: options, store opening, output, progress.

Every report takes ``--json``; long work shows a progress bar on stderr that
``--quiet`` silences (the summary is still printed) and that stays off when
stdout is not a terminal; every
destructive command takes ``--dry-run``. Core errors become one-line
``click.ClickException`` messages with a non-zero exit.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from functools import wraps
from typing import Any, Callable, Iterable, Iterator, TypeVar

import click

from casvault.config import Config
from casvault.errors import CasvaultError, LockBusy
from casvault.store import Store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class LockedOut(click.ClickException):
    """Another run holds the job lock (exit code 75, EX_TEMPFAIL, so cron can tell)."""

    exit_code = 75


def json_option(f: F) -> F:
    """``--json``: print one JSON document instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")(f)


def quiet_option(f: F) -> F:
    """``--quiet``: no progress bar (the summary is still printed)."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary is still printed).")(f)


def dry_run_option(f: F) -> F:
    """``--dry-run``: report what would be done, change nothing."""
    return click.option("--dry-run", is_flag=True, help="Report what would be done; change nothing.")(f)


def day_option(name: str, help: str, required: bool = False) -> Callable[[F], F]:
    """A ``YYYY-MM-DD`` option, checked by Click (``required`` marks it so in the help)."""
    # NOTE: click 8.5 does not enforce ``required`` on an option given an
    # explicit ``default=None``, so a required one gets no default at all.
    extra: dict[str, Any] = {"required": True} if required else {"default": None}
    return click.option(name, type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD", help=help, **extra)


def day_str(value: datetime | None) -> str | None:
    """A parsed day option back to ``YYYY-MM-DD``."""
    return value.strftime("%Y-%m-%d") if value else None


def core_errors(f: F) -> F:
    """Turn core errors into one-line Click errors (LockBusy exits with 75)."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except LockBusy as exc:
            raise LockedOut(exc.message) from None
        except CasvaultError as exc:
            raise click.ClickException(exc.message) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper  # type: ignore[return-value]


def config_from_ctx(ctx: click.Context, **overrides: Any) -> Config:
    """The configuration: environment, with ``--root`` from the group."""
    try:
        return Config.from_env(root=ctx.obj["root"], **overrides)
    except CasvaultError as exc:
        raise click.ClickException(exc.message) from None


def store_from_ctx(ctx: click.Context, **overrides: Any) -> Store:
    """Open the existing store at ``--root`` (never creates one)."""
    config = config_from_ctx(ctx, **overrides)
    try:
        return Store(config, create=False)
    except CasvaultError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(f"cannot open the store at {config.root}: {exc.strerror or exc}") from None


def known_users(store: Store, owners: Iterable[str] | None) -> None:
    """Refuse (one line, exit 1) user ids the store has never seen: a typo must not look like "nothing to do"."""
    unknown = sorted(set(owners or ()) - set(store.users()))
    if unknown:
        raise click.ClickException(f"no such user in {store.layout.root}: {', '.join(unknown)}")


def show_progress(quiet: bool) -> bool:
    """True when a progress bar should be drawn."""
    return not quiet and sys.stdout.isatty()


def progress_for(quiet: bool) -> Callable[[Iterable[T], int | None, str], Iterable[T]]:
    """A progress wrapper for the core's long loops (identity when silent)."""
    if not show_progress(quiet):
        return lambda items, length, label: items

    def bar(items: Iterable[T], length: int | None, label: str) -> Iterator[T]:
        with click.progressbar(items, length=length, label=label, file=sys.stderr) as it:
            yield from it

    return bar


def emit(as_json: bool, data: Any, text: Callable[[], Iterable[str]] | None = None, quiet: bool = False) -> None:
    """Print a report: JSON, or the text lines (``--quiet`` too: it silences only the progress bar)."""
    # NOTE: ``quiet`` is accepted, and ignored, so that every command can pass
    # its flag through; the summary line is what cron mails and scripts read.
    del quiet
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    if text is None:
        return
    for line in text():
        click.echo(line)


def human_bytes(n: int | float) -> str:
    """1536 → '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
