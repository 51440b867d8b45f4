"""Real servers for tests: gunicorn with several workers on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn 'web:create_app()' over a root, in its own process group."""

    def __init__(self, root: Path, workers: int = 3, env: dict[str, str] | None = None) -> None:
        from tests.conftest import ADMIN_TOKEN, INGEST_TOKEN, SECRET

        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "CASVAULT_ROOT": str(root),
            "CASVAULT_SECRET_KEY": SECRET,
            "CASVAULT_ADMIN_TOKEN": ADMIN_TOKEN,
            "CASVAULT_INGEST_TOKEN": INGEST_TOKEN,
            "CASVAULT_BIND": f"127.0.0.1:{self.port}",
            "CASVAULT_WORKERS": str(workers),
            "CASVAULT_ACCESS_LOG": "",
            "CASVAULT_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log = root.parent / f"gunicorn-{self.port}.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until every worker answers."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "ops" / "gunicorn.conf.py"), "web:create_app()"],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/api/v1/images", timeout=1).status_code == 200:
                    time.sleep(0.3)  # let the other workers finish booting
                    return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start in time")

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
