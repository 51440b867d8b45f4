"""Memory of the whole server under decoding load: 8 concurrent uploads of an 8000×8000 RGBA PNG.

A real gunicorn with the shipped ``ops/gunicorn.conf.py`` settings (workers,
threads) and no overrides but the bind address and the store root. Eight
guests each upload one 8000×8000 RGBA PNG of a solid colour (about 250 KB on
disk, 64 MP: just under the default pixel limit) at once, as an anonymous
visitor could. The figure is the sum over the workers of their peak resident
memory (``VmHWM`` in /proc/<pid>/status): what the machine had to hold.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from PIL import Image

from common import REPO, scratch

UPLOADS = 8
SIDE = 8000
SECRET = "bench-secret-0123456789abcdef-0123456789"


def big_png() -> bytes:
    """An 8000×8000 RGBA PNG of one colour (~250 KB)."""
    buf = io.BytesIO()
    Image.new("RGBA", (SIDE, SIDE), (40, 90, 200, 255)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(master: int) -> list[int]:
    """The worker pids of a gunicorn master."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(root: Path, data: bytes) -> dict:
    """Start gunicorn, send the uploads at once, and read each worker's peak RSS."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CASVAULT_ROOT": str(root),
        "CASVAULT_SECRET_KEY": SECRET,
        "CASVAULT_BIND": f"127.0.0.1:{port}",
        "CASVAULT_ACCESS_LOG": "",
        "CASVAULT_LOG_LEVEL": "warning",
    }
    log = root.parent / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "ops" / "gunicorn.conf.py"), "web:create_app()"],
        cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        sessions = []
        deadline = time.monotonic() + 60
        while len(sessions) < UPLOADS:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {log.read_text()[-2000:]}")
            s = requests.Session()
            s.headers["X-Requested-With"] = "XMLHttpRequest"
            try:
                if s.get(url + "/api/v1/quota", timeout=5).status_code == 200:  # a guest cookie
                    sessions.append(s)
                    continue
            except requests.RequestException:
                pass
            time.sleep(0.2)
        time.sleep(1.0)  # every worker booted
        workers = _workers(proc.pid)
        baseline = sum(_status_kb(pid, "VmRSS") for pid in workers) / 1024
        answers: list[tuple[int, str]] = []
        lock = threading.Lock()
        gate = threading.Barrier(UPLOADS)

        def upload(session: requests.Session) -> None:
            gate.wait()
            r = session.post(url + "/api/v1/inputs/upload", files={"file": ("big.png", data, "image/png")}, timeout=600)
            with lock:
                answers.append((r.status_code, r.headers.get("Retry-After", "")))

        started = time.perf_counter()
        threads = [threading.Thread(target=upload, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        peaks = [_status_kb(pid, "VmHWM") / 1024 for pid in workers]
        statuses: dict[str, int] = {}
        for status, _ in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        return {
            "peak_rss_8x_8000px_mb": round(sum(peaks), 1),
            "workers": len(workers),
            "per_worker_peak_mb": [round(p, 1) for p in peaks],
            "baseline_rss_mb": round(baseline, 1),
            "seconds": round(seconds, 2),
            "statuses": statuses,
            "png_bytes": len(data),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['memory']``."""
    data = big_png()
    work = scratch("memory")
    results["memory"] = measure(work / "root", data)


if __name__ == "__main__":
    import json

    out: dict = {}
    run(out)
    print(json.dumps(out, indent=2))
