"""``GET /metrics``: Prometheus' text format through prometheus_client.

Off unless ``CASVAULT_METRICS=1`` (404 then). Open to the admin bearer token
or to a peer address in ``CASVAULT_METRICS_NETWORKS``. Under gunicorn the
workers write to prometheus_client's multiprocess folder (set up by the
master, see ``casvault.metrics``) and a scrape of any worker sums them all.

prometheus_client is imported only when metrics are on, and only after the
master has chosen the folder: it decides at import time whether it runs in
multiprocess mode.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from flask import Blueprint, Flask, Response, current_app, request

from casvault import jobruns
from casvault import metrics as core_metrics
from casvault.config import Config
from casvault.store import Store

from .auth import _bearer_ok
from .errors import ApiError
from .ext import get_store

bp = Blueprint("metrics", __name__)
log = logging.getLogger("web.metrics")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
LOCK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
_enabled = False


class _Instruments:
    """The process's metrics (created once: prometheus_client refuses a name twice)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # NOTE: the *_created series double the output and say little here

        # NOTE: in multiprocess mode the values live in the folder's files and
        # a scrape reads those; this registry serves a single process (casvault serve).
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("casvault_http_requests", "HTTP requests by route (Flask endpoint), method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("casvault_http_request_duration_seconds", "Time to the last byte of the answer",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.unavailable = Counter("casvault_http_unavailable", "503 answers by cause (the error code)",
                                   ["cause"], registry=r)
        self.quota_refusals = Counter("casvault_quota_refusals", "Writes refused by the quota, by route",
                                      ["route"], registry=r)
        self.ingests = Counter("casvault_ingests", "Images stored, by kind", ["kind"], registry=r)
        self.ingest_bytes = Counter("casvault_ingest_bytes", "Bytes of the images stored, by kind", ["kind"], registry=r)
        self.duplicates = Counter("casvault_duplicates", "Images stored whose bytes were already stored (no new blob)",
                                  ["kind"], registry=r)
        self.blob_bytes = Counter("casvault_blob_bytes_stored", "Bytes of new blobs written", registry=r)
        self.lock_waits = Counter("casvault_lock_waits", "Lock takes that had to wait, by lock and outcome",
                                  ["lock", "outcome"], registry=r)
        self.lock_wait_seconds = Histogram("casvault_lock_wait_seconds", "Time spent waiting for a lock",
                                           ["lock"], buckets=LOCK_BUCKETS, registry=r)


@lru_cache(maxsize=1)
def _instruments() -> _Instruments:
    return _Instruments()


class PrometheusSink(core_metrics.Sink):
    """The core's events as prometheus_client counters."""

    def ingested(self, kind: str, nbytes: int, new_blob: bool) -> None:
        """Count an ingest, its bytes, and a duplicate or a new blob."""
        m = _instruments()
        m.ingests.labels(kind).inc()
        m.ingest_bytes.labels(kind).inc(nbytes)
        if new_blob:
            m.blob_bytes.inc(nbytes)
        else:
            m.duplicates.labels(kind).inc()

    def lock_waited(self, lock: str, seconds: float, acquired: bool) -> None:
        """Count a wait and observe its length."""
        m = _instruments()
        m.lock_waits.labels(lock, "acquired" if acquired else "busy").inc()
        m.lock_wait_seconds.labels(lock).observe(seconds)


def init_metrics(app: Flask) -> None:
    """When metrics are on, start counting in this process."""
    global _enabled
    if app.config["CASVAULT"].metrics:
        if core_metrics.MULTIPROC_ENV not in os.environ:
            log.info("metrics: single-process mode (no %s); under gunicorn use ops/gunicorn.conf.py",
                     core_metrics.MULTIPROC_ENV)
        _instruments()
        core_metrics.install(PrometheusSink())
        _enabled = True


def observe_request(route: str, method: str, status: int, seconds: float, error_code: str | None) -> None:
    """Count one answered request (called by the request log)."""
    if not _enabled:
        return
    m = _instruments()
    method = method if method in METHODS else "other"
    m.requests.labels(route, method, str(status)).inc()
    m.latency.labels(route, method).observe(seconds)
    if status == 503:
        m.unavailable.labels(error_code or "unknown").inc()
    if error_code == "quota_exceeded":
        m.quota_refusals.labels(route).inc()


class JobCollector:
    """The last run of each scheduled job, read from the store at each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        """Three gauges by job: success, duration and end time of its last run."""
        from prometheus_client.core import GaugeMetricFamily

        success = GaugeMetricFamily("casvault_job_last_success", "1 when the job's last run ended ok", labels=["job"])
        duration = GaugeMetricFamily("casvault_job_last_duration_seconds", "Length of the job's last run",
                                     labels=["job"])
        finished = GaugeMetricFamily("casvault_job_last_run_timestamp_seconds", "When the job's last run ended (Unix)",
                                     labels=["job"])
        for run in jobruns.last_runs(self.store):
            success.add_metric([run.job], 1.0 if run.result == "ok" else 0.0)
            duration.add_metric([run.job], run.duration_s)
            finished.add_metric([run.job], _unix(run.finished_at))
        yield from (success, duration, finished)


def exposition(store: Store) -> bytes:
    """The text every scrape gets: all workers' metrics (multiprocess) or this process's, plus the jobs."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    registry.register(JobCollector(store))
    folder = os.environ.get(core_metrics.MULTIPROC_ENV)
    if not folder:
        registry.register(_ProcessMetrics())
        return generate_latest(registry)
    multiprocess.MultiProcessCollector(registry, path=folder)
    with _folder_lock(Path(folder), fcntl.LOCK_SH):
        return generate_latest(registry)


def archive_dead_worker(pid: int) -> None:
    """In the gunicorn master, when a worker ended: fold its counters and histograms into one archive file.

    Without this every recycled worker (``max_requests``) would leave its
    files behind and each scrape would read more of them. The fold holds the
    folder's lock, so a scrape never sees a count twice or not at all.
    """
    from prometheus_client import multiprocess
    from prometheus_client.mmap_dict import MmapedDict

    folder = Path(os.environ[core_metrics.MULTIPROC_ENV])
    multiprocess.mark_process_dead(pid, str(folder))
    with _folder_lock(folder, fcntl.LOCK_EX):
        for kind in ("counter", "histogram"):
            dead = folder / f"{kind}_{pid}.db"
            if not dead.is_file():
                continue
            archive = folder / f"{kind}_archive.db"
            totals: dict[str, float] = {}
            for path in (archive, dead):
                if path.is_file():
                    # NOTE: every value of these two kinds is a sum (histogram
                    # files hold per-bucket counts), so folding is adding.
                    for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
                        totals[key] = totals.get(key, 0.0) + value
            tmp = folder / f"{kind}_archive.tmp"  # not *.db: never read half-written
            tmp.unlink(missing_ok=True)
            out = MmapedDict(str(tmp))
            try:
                for key, value in totals.items():
                    out.write_value(key, value, 0.0)
            finally:
                out.close()
            os.replace(tmp, archive)
            dead.unlink()


@contextmanager
def _folder_lock(folder: Path, mode: int) -> Iterator[None]:
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class _ProcessMetrics:
    """This process's own registry, as one collector (single-process mode)."""

    def collect(self) -> Iterator[Any]:
        """Every metric of the process registry."""
        yield from _instruments().registry.collect()


def peer_allowed(config: Config, address: str | None) -> bool:
    """True when the socket peer ``address`` is in CASVAULT_METRICS_NETWORKS."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in config.metrics_cidrs())


def _socket_peer() -> str | None:
    # NOTE: the address of the TCP peer itself, even when a proxy fix-up
    # rewrote REMOTE_ADDR from forwarding headers (which a client can forge).
    orig = request.environ.get("werkzeug.proxy_fix.orig") or {}
    return orig.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR")


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@bp.get("/metrics")
def metrics_page():
    """Prometheus' text format (metrics on, and the admin token or an allowed network)."""
    cfg: Config = current_app.config["CASVAULT"]
    if not cfg.metrics:
        raise ApiError(404, "not_found", "metrics are off (CASVAULT_METRICS=1 turns them on)")
    if not (peer_allowed(cfg, _socket_peer()) or _bearer_ok(cfg.admin_token)):
        raise ApiError(401, "unauthorized", "/metrics needs the admin token or an address in CASVAULT_METRICS_NETWORKS")
    from prometheus_client import CONTENT_TYPE_LATEST

    resp = Response(exposition(get_store()), content_type=CONTENT_TYPE_LATEST)
    resp.headers["Cache-Control"] = "no-store"
    return resp
