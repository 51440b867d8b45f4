"""The last run of each periodic job: one log line per run, and ``meta/jobs/<job>.json`` for /metrics.

The core function that does a job is marked ``@recorded("<job>")``, so a run
counts the same whichever way it started: cron (``ops/crontab``), ``casvault
scheduler`` or a person at the CLI. Partial runs (a dry run, one user's
trash) are not the job and are not recorded; a run that found its lock
taken did not run.
"""

from __future__ import annotations

import logging
import os
import time
from functools import wraps
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

import msgspec

from .atomic import write_file
from .errors import CasvaultError, LockBusy
from .records import now_iso

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("casvault.jobs")

JOB_NAMES = ("purge-trash", "gc", "thumbnails", "scrub", "backup")
RUN_MAX_BYTES = 64 * 1024
F = TypeVar("F", bound=Callable[..., Any])


class JobRun(msgspec.Struct):
    """One run: ``ok``, ``problems`` (it ran and reported some) or ``error`` (it raised ``error``)."""

    job: str
    result: str
    started_at: str
    finished_at: str
    duration_s: float
    error: str = ""


_run_decoder = msgspec.json.Decoder(JobRun)


def whole_store(kwargs: Mapping[str, Any]) -> bool:
    """A run over every user that changes something (not a dry run, not one user's)."""
    return not kwargs.get("dry_run") and kwargs.get("owners") is None


def scrub_of_every_user(kwargs: Mapping[str, Any]) -> bool:
    """An fsck that re-hashes the blobs of every user (the weekly scrub), not a plain or partial check."""
    return bool(kwargs.get("scrub")) and kwargs.get("owners") is None and kwargs.get("only") is None


def always(kwargs: Mapping[str, Any]) -> bool:
    """Every call is a run of the job."""
    return True


def recorded(job: str, when: Callable[[Mapping[str, Any]], bool] = whole_store) -> Callable[[F], F]:
    """Mark ``fn(store, ...)`` as the job ``job``: each run that ``when(kwargs)`` accepts is logged and kept."""
    if job not in JOB_NAMES:
        raise ValueError(f"unknown job {job!r}")

    def decorate(fn: F) -> F:
        @wraps(fn)
        def run(store: "Store", *args: Any, **kwargs: Any) -> Any:
            if not when(kwargs):
                return fn(store, *args, **kwargs)
            started_at, started = now_iso(), time.monotonic()
            try:
                result = fn(store, *args, **kwargs)
            except LockBusy:
                raise
            except Exception as exc:
                _finish(store, JobRun(job, "error", started_at, now_iso(), time.monotonic() - started,
                                      type(exc).__name__), {"message": str(exc)})
                raise
            problems = getattr(result, "clean", True) is False or bool(getattr(result, "failed", None))
            run = JobRun(job, "problems" if problems else "ok", started_at, now_iso(), time.monotonic() - started)
            _finish(store, run, summary_of(result))
            return result

        return run  # type: ignore[return-value]

    return decorate


def summary_of(report: Any) -> dict[str, Any]:
    """The plain counts of a job's report (its ``as_summary()`` or ``as_dict()``, lists left out)."""
    for name in ("as_summary", "as_dict"):
        method = getattr(report, name, None)
        if callable(method):
            data = method()
            return {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool))}
    return {}


def last_runs(store: "Store") -> list[JobRun]:
    """The last recorded run of each job (jobs that never ran are left out)."""
    runs = []
    for name in JOB_NAMES:
        path = store.layout.meta / "jobs" / f"{name}.json"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            runs.append(_run_decoder.decode(os.read(fd, RUN_MAX_BYTES)))
        except (OSError, msgspec.ValidationError, msgspec.DecodeError):
            log.warning("job %s: its last-run file %s does not parse", name, path)
        finally:
            os.close(fd)
    return runs


def _finish(store: "Store", run: JobRun, extra: Mapping[str, Any]) -> None:
    """Keep ``run`` as its job's last run and log it; a failure to keep it is logged, never raised."""
    fields = {"job": run.job, "result": run.result, "duration_ms": round(run.duration_s * 1000, 1), **extra}
    if run.result == "error":
        log.error("job %s failed after %.1f s: %s", run.job, run.duration_s, run.error, extra={"fields": fields})
    else:
        log.info("job %s %s in %.1f s", run.job, "done" if run.result == "ok" else "found problems", run.duration_s,
                 extra={"fields": fields})
    try:
        folder = store.layout.meta / "jobs"
        folder.mkdir(parents=True, exist_ok=True)
        write_file(folder / f"{run.job}.json", msgspec.json.encode(run) + b"\n", store.layout.tmp,
                   fsync=store.config.fsync)
    except (OSError, CasvaultError) as exc:
        log.warning("job %s: could not record its run: %s", run.job, exc)
