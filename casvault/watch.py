"""Watching ``outputs/users/`` (watchdog, inotify on Linux) and adopting plain files as they land.

A file is adopted once its size has stayed the same for ``settle`` seconds
after the last event on it or on its ``.json`` (a program writing the image
and then its JSON gets both read together). Our own files are ignored:
temps, thumbnails, sidecars, and ``<id>.<ext>`` projections with a sidecar
(``adopt.is_plain``, checked again under the user's lock, so an image
restored from the trash a moment before its sidecar is never adopted).

``casvault watch`` runs one; the server runs one when ``CASVAULT_WATCH=1``,
in one worker only: every worker tries the ``watch`` job lock now and then
and the one holding it runs the observer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable

from .adopt import Adopted, adopt_file, candidates, is_plain
from .errors import LockBusy
from .store import Store

log = logging.getLogger("casvault.watch")


class Watcher:
    """A watchdog observer on outputs/users plus a debounce thread that adopts settled files."""

    def __init__(
        self,
        store: Store,
        *,
        settle: float = 1.0,
        on_adopt: Callable[[Adopted], None] | None = None,
    ) -> None:
        self.store = store
        self.base = store.layout.outputs / "users"
        self.settle = settle
        self.on_adopt = on_adopt
        self._pending: dict[Path, tuple[float, int]] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None

    # --- events -----------------------------------------------------------------

    def touch(self, path: Path) -> None:
        """Note activity on a path (an event); its adoption waits until it settles."""
        name = path.name
        if name.startswith(".") or name.endswith(".tmp") or path.parent.name == "thumb":
            return
        now = time.monotonic()
        with self._mutex:
            if name.endswith(".json"):
                stem = path.with_suffix("")
                for key in self._pending:
                    if key.with_suffix("") == stem:
                        self._pending[key] = (now, self._pending[key][1])
                return
            self._pending[path] = (now, -1)

    def _handler(self):
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            """Forwards file events under outputs/users to :meth:`Watcher.touch`."""

            def on_any_event(self, event) -> None:
                """Note a created, modified, closed or moved-in file."""
                if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
                    return
                raw = getattr(event, "dest_path", "") or event.src_path
                path = Path(os.fsdecode(raw))
                if path.is_relative_to(watcher.base):
                    watcher.touch(path)

        return Handler()

    # --- the debounce loop --------------------------------------------------------

    def _due(self) -> list[Path]:
        now = time.monotonic()
        ready = []
        with self._mutex:
            for path, (seen, size) in list(self._pending.items()):
                if now - seen < self.settle:
                    continue
                try:
                    st = os.lstat(path)  # NOTE: never follows a link (safefs rule); adopt_file checks again
                except FileNotFoundError:
                    del self._pending[path]
                    continue
                if not stat.S_ISREG(st.st_mode):
                    del self._pending[path]  # a symlink, FIFO or device: fsck reports it, never read here
                    continue
                current = st.st_size
                if current != size:
                    self._pending[path] = (now, current)  # still growing: wait another round
                    continue
                del self._pending[path]
                ready.append(path)
        return ready

    def poll(self) -> list[Adopted]:
        """Adopt the files that have settled; returns what happened to each."""
        done = []
        for path in self._due():
            if not is_plain(path):
                continue
            result = adopt_file(self.store, path)
            if result.status == "skipped":
                continue
            log.info("adopt %s: %s %s", path, result.status, result.reason or result.id)
            done.append(result)
            if self.on_adopt:
                self.on_adopt(result)
        return done

    def _loop(self) -> None:
        interval = max(0.05, min(0.5, self.settle / 4))
        while not self._stop.wait(interval):
            try:
                self.poll()
            except Exception:  # keep watching; one bad file must not stop the thread
                log.exception("watch: adopting failed")

    # --- start and stop -----------------------------------------------------------

    def start(self, *, sweep: bool = True) -> None:
        """Start observing; with ``sweep``, plain files already there are queued first."""
        from watchdog.observers import Observer

        self.base.mkdir(parents=True, exist_ok=True)
        self._observer = Observer()
        self._observer.schedule(self._handler(), str(self.base), recursive=True)
        self._observer.daemon = True
        self._observer.start()
        if sweep:
            for path in candidates(self.store):
                self.touch(path)
        self._thread = threading.Thread(target=self._loop, name="casvault-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop observing and wait for the threads."""
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        if self._thread is not None:
            self._thread.join(5)


def serve_in_worker(store: Store, *, retry: float = 5.0, settle: float = 1.0) -> threading.Thread:
    """Start a daemon thread that runs the watcher in whichever worker gets the ``watch`` lock.

    Every worker calls this; the others keep retrying, so when the holder
    exits (gunicorn recycles workers) another takes over.
    """

    def run() -> None:
        stack = contextlib.ExitStack()
        while True:
            try:
                stack.enter_context(store.locks.job("watch"))
                break
            except LockBusy:
                time.sleep(retry)
        log.info("watch: this worker (pid %d) adopts files dropped into outputs/", os.getpid())
        watcher = Watcher(store, settle=settle)
        watcher.start()
        # NOTE: the lock is held for the life of the process; the flock goes
        # with the process when the worker exits.
        threading.Event().wait()

    thread = threading.Thread(target=run, name="casvault-watch-lock", daemon=True)
    thread.start()
    return thread
