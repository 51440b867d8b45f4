"""Readiness: does the store answer, and the PostgreSQL index and the S3 bucket when configured?

Each part is probed in its own thread and the whole check waits at most
``timeout`` seconds, so a load balancer sees "not ready" quickly when a
service hangs instead of refusing. The probes are cheap: a tiny file written,
read back and removed in ``tmp/``, ``casvault.json`` read, ``SELECT 1`` on a
fresh connection, a HEAD of the bucket.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import msgspec

from .backends import blob_spec, index_spec
from .config import Config

log = logging.getLogger("casvault.health")

DEFAULT_TIMEOUT = 1.5  # seconds; a load balancer marks the host down within 2 s
OK, ERROR, TIMEOUT = "ok", "error", "timeout"
PROBE_BYTES = b"casvault readiness probe\n"
META_MAX_BYTES = 1024 * 1024

_meta_decoder = msgspec.json.Decoder(dict)
# NOTE: a probe stuck in a hung filesystem or socket keeps its thread; the
# pool's bound keeps such threads from piling up, and a probe that cannot
# even start in time is reported as a timeout like one that hangs.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="casvault-readyz")
_s3_clients: dict[tuple[str, str], Any] = {}
_last: dict[str, str] = {}
_last_mutex = threading.Lock()


@dataclass
class Readiness:
    """Each part's state (``ok``, ``error`` or ``timeout``); ready when every part is ok."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        """True when every part answered."""
        return all(state == OK for state in self.checks.values())


def check_store(root: Path, tmp_dir: Path) -> dict[str, Any]:
    """Read casvault.json and write, read back and remove a probe file in tmp/; returns casvault.json.

    Raises OSError (or a decode error) when the store does not answer.
    """
    fd = os.open(root / "casvault.json", os.O_RDONLY | os.O_NOFOLLOW)
    try:
        meta = _meta_decoder.decode(os.read(fd, META_MAX_BYTES))
    finally:
        os.close(fd)
    probe = tmp_dir / f".readyz-{uuid.uuid4().hex}"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, PROBE_BYTES)
        if os.pread(fd, len(PROBE_BYTES) + 1, 0) != PROBE_BYTES:
            raise OSError(f"{probe} did not read back what was written")
    finally:
        os.close(fd)
        os.unlink(probe)
    return meta


def check_postgres(dsn: str, timeout: float) -> None:
    """``SELECT 1`` on a fresh connection; raises psycopg's errors when PostgreSQL does not answer."""
    import psycopg

    # NOTE: libpq waits at least 2 s to connect; the caller stops waiting
    # at its deadline. No startup options: a pooler (pgbouncer) refuses them.
    with psycopg.connect(dsn, connect_timeout=max(2, int(timeout + 0.999)), autocommit=True) as conn:
        conn.execute("SELECT 1").fetchone()


def check_bucket(spec: Mapping[str, str], timeout: float) -> None:
    """HEAD the bucket; raises botocore's errors when it does not answer or does not exist."""
    from .backends.s3 import make_client

    key = (spec.get("endpoint", ""), spec.get("region", ""))
    client = _s3_clients.get(key)
    if client is None:
        client = _s3_clients[key] = make_client(spec.get("endpoint") or None, spec.get("region") or None, timeout=timeout)
    client.head_bucket(Bucket=spec.get("bucket", ""))


def readiness(config: Config, root: Path, tmp_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Readiness:
    """Probe the store, then (in parallel, within the same ``timeout``) the services it is configured with."""
    deadline = time.monotonic() + timeout
    outcomes: dict[str, tuple[str, str]] = {}
    store = _pool.submit(check_store, root, tmp_dir)
    outcomes["store"] = _outcome(store, deadline)
    if outcomes["store"][0] == OK:
        meta = store.result()
        blobs, index = blob_spec(config, meta), index_spec(config, meta)
        futures: dict[str, Future] = {}
        if index["type"] == "postgres":
            futures["postgres"] = _pool.submit(check_postgres, index.get("dsn", ""), timeout)
        if blobs["type"] == "s3":
            futures["s3"] = _pool.submit(check_bucket, blobs, timeout)
        for name, future in futures.items():
            outcomes[name] = _outcome(future, deadline)
    _log_changes(outcomes)
    return Readiness({name: state for name, (state, _detail) in outcomes.items()})


def _outcome(future: Future, deadline: float) -> tuple[str, str]:
    """(state, detail) of one probe, waiting no later than ``deadline``."""
    try:
        future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        future.cancel()
        return TIMEOUT, "no answer in time"
    except Exception as exc:  # any failure of the part means "not ready"; the detail goes to the log only
        lines = str(exc).strip().splitlines()
        return ERROR, f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return OK, ""


def _log_changes(outcomes: Mapping[str, tuple[str, str]]) -> None:
    """Log each part's change of state once per process (not on every probe of a load balancer)."""
    with _last_mutex:
        for name, (state, detail) in outcomes.items():
            if state == _last.get(name, OK):
                continue
            _last[name] = state
            fields = {"check": name, "state": state}
            if state == OK:
                log.info("readiness: %s answers again", name, extra={"fields": fields})
            else:
                log.warning("readiness: %s %s (%s)", name, state, detail, extra={"fields": fields})
