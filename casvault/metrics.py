"""What the core reports to a metrics system: ingests, duplicates, lock waits.

The core never imports a metrics library. It calls the functions below,
which do nothing until a :class:`Sink` is installed (``web/metrics.py``
installs one backed by prometheus_client when ``CASVAULT_METRICS=1``), so the
CLI and library users pay nothing.

Under gunicorn the workers' numbers are summed through prometheus_client's
multiprocess mode: the folder it writes to is chosen and emptied here, in
the master, before any worker imports prometheus_client
(``ops/gunicorn.conf.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from .config import Config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Sink:
    """The events the core reports; this base class ignores them all."""

    def ingested(self, kind: str, nbytes: int, new_blob: bool) -> None:
        """An image of ``kind`` was stored; ``new_blob`` is False for a duplicate of stored bytes."""

    def lock_waited(self, lock: str, seconds: float, acquired: bool) -> None:
        """A lock (``user`` or ``job``) was taken after waiting, or given up on (``acquired`` False)."""


_sink = Sink()
_failed = False
log = logging.getLogger("casvault.metrics")


def install(sink: Sink) -> None:
    """Send the core's events to ``sink`` from now on (one per process)."""
    global _sink
    _sink = sink


def ingested(kind: str, nbytes: int, new_blob: bool) -> None:
    """Report a stored image."""
    guarded(_sink.ingested, kind, nbytes, new_blob)


def lock_waited(lock: str, seconds: float, acquired: bool) -> None:
    """Report a wait for a lock."""
    guarded(_sink.lock_waited, lock, seconds, acquired)


def guarded(report: Callable[..., None], *args: Any) -> None:
    """Call ``report``; a failing metrics system is logged (once per process), never raised.

    NOTE: a report follows work that is already done (an acknowledged
    ingest); a broken metrics folder must not turn it into an error.
    """
    global _failed
    try:
        report(*args)
    except Exception:
        if not _failed:
            _failed = True
            log.exception("metrics: reporting failed; later failures are not logged")


def multiprocess_dir(config: Config) -> Path | None:
    """The folder of the workers' metric files: CASVAULT_METRICS_DIR or ``<root>/tmp/metrics``; None when off."""
    if not config.metrics:
        return None
    return Path(config.metrics_dir) if config.metrics_dir else Path(config.root) / "tmp" / "metrics"


def prepare_multiprocess_dir(config: Config) -> Path | None:
    """In the server's master: empty the metric files of a previous run and point the workers at them.

    Only ``*.db`` files (what prometheus_client writes) directly in the folder
    are removed; a configured folder's other content is left alone. Sets
    PROMETHEUS_MULTIPROC_DIR, which the workers inherit. None when metrics are off.
    """
    folder = multiprocess_dir(config)
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(folder):
        if entry.name.endswith((".db", "_archive.tmp")) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
    os.environ[MULTIPROC_ENV] = str(folder.resolve())
    return folder
