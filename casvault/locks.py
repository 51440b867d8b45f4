"""Advisory locks (flock) on files under ``<root>/locks/``.

A user's namespace is written under that user's lock; periodic jobs take a
named job lock so two runs never overlap. Readers never lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import metrics
from .errors import LockBusy
from .validate import check_user_id


class Locks:
    """Lock files of one store root."""

    def __init__(self, lock_dir: Path) -> None:
        self.dir = lock_dir
        self._held = threading.local()

    @contextmanager
    def user(self, user_id: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold ``user_id``'s write lock (waits up to ``timeout`` seconds).

        Re-entrant within a thread: a nested take (e.g. a manifest rebuilt
        while an ingest holds the lock) does not deadlock on its own flock.
        Raises LockBusy when the lock stays taken.
        """
        check_user_id(user_id)
        held: dict[str, int] = self._held.__dict__.setdefault("users", {})
        if held.get(user_id):
            held[user_id] += 1
            try:
                yield
            finally:
                held[user_id] -= 1
            return
        with self._flock(self.dir / "users" / f"{user_id}.lock", timeout, f"user {user_id}", "user"):
            held[user_id] = 1
            try:
                yield
            finally:
                held[user_id] = 0

    def holds_user(self, user_id: str) -> bool:
        """True when this thread holds ``user_id``'s lock."""
        return bool(self._held.__dict__.get("users", {}).get(user_id))

    @contextmanager
    def job(self, name: str, wait: bool = False, timeout: float = 0.0) -> Iterator[None]:
        """Hold a named job lock; by default fail at once if another run has it."""
        with self._flock(self.dir / f"job-{name}.lock", timeout if wait else 0.0, f"job {name}", "job"):
            yield

    @contextmanager
    def _flock(self, path: Path, timeout: float, what: str, kind: str) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            started = time.monotonic()
            deadline = started + timeout
            delay = 0.001
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if timeout != -1 else 0))
                    break
                except BlockingIOError:
                    waited = True
                    if time.monotonic() >= deadline:
                        metrics.lock_waited(kind, time.monotonic() - started, acquired=False)
                        raise LockBusy(f"{what} is locked by another process", lock=str(path)) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            if waited:
                metrics.lock_waited(kind, time.monotonic() - started, acquired=True)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
