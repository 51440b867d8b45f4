"""Static serving of /outputs: gunicorn (4 sync workers) vs nginx, same files, loopback.

A Python load client (threads, ``http.client`` keep-alive where the server
allows it, bounded by count and time) fetches thumbnails, then full images.
No goal yet; the same client drives both servers, so the ratio is fair but
the absolute nginx figure is bounded by the client.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
from pathlib import Path

from casvault.config import Config
from casvault.store import Store

from bench_thumbs import PARALLEL_IMAGES, thumbs_store
from common import median, scratch, user

NGINX = "/usr/sbin/nginx"
THREADS = 4
SECONDS = 3.0
MAX_REQUESTS = 20_000

_CONF = """
user root;
worker_processes 2;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ image/png png; image/webp webp; image/jpeg jpg; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /outputs/ {{ alias {outputs}/; add_header X-Content-Type-Options nosniff; }}
    }}
}}
"""


def load(port: int, paths: list[str], seconds: float = SECONDS) -> dict:
    """Requests/s and MB/s of ``THREADS`` clients cycling over ``paths``."""
    stop = time.monotonic() + seconds
    counts = [0] * THREADS
    sizes = [0] * THREADS
    errors = [0] * THREADS

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i = n
        while time.monotonic() < stop and sum(counts) < MAX_REQUESTS:
            try:
                conn.request("GET", paths[i % len(paths)])
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    errors[n] += 1
                counts[n] += 1
                sizes[n] += len(body)
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                conn.close()
            i += THREADS

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return {"rps": sum(counts) / elapsed, "mbps": sum(sizes) / elapsed / 1e6, "errors": sum(errors)}


def _nginx(outputs: Path) -> tuple[subprocess.Popen, int, Path]:
    from tests.servers import free_port

    prefix = scratch("nginx")
    port = free_port()
    (prefix / "nginx.conf").write_text(_CONF.format(prefix=prefix, port=port, outputs=outputs))
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            return proc, port, prefix
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text()[-500:]}")


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['serve']``."""
    from tests.servers import Gunicorn

    root = thumbs_store(60 if quick else PARALLEL_IMAGES)
    store = Store(Config(root=root, fsync=False))
    records = list(store.index(user(11)).iter_desc("generated"))
    thumbs, images = [], []
    for record in records:
        image, _, thumb = store.layout.paths(record)
        images.append(store.layout.rel_url(image))
        thumbs.append(store.layout.rel_url(thumb))
    section = results.setdefault("serve", {})
    if not shutil.which(NGINX):
        section["missing"] = f"{NGINX} is not installed"
        return
    # NOTE: public /outputs, like the plain nginx alias it is compared with (no cookie per request).
    gunicorn = Gunicorn(root, workers=4, env={"CASVAULT_OUTPUTS_PUBLIC": "1"})
    gunicorn.start()
    proc, port, _ = _nginx(root / "outputs")
    try:
        g_port = gunicorn.port
        figures: dict[str, list[dict]] = {"g_thumb": [], "n_thumb": [], "g_image": [], "n_image": []}
        seconds = 1.5 if quick else SECONDS
        for _ in range(1 if quick else 2):
            figures["g_thumb"].append(load(g_port, thumbs, seconds))
            figures["n_thumb"].append(load(port, thumbs, seconds))
            figures["g_image"].append(load(g_port, images, seconds))
            figures["n_image"].append(load(port, images, seconds))
    finally:
        gunicorn.stop()
        proc.terminate()
        proc.wait(10)
    med = {k: {m: median([f[m] for f in v]) for m in ("rps", "mbps", "errors")} for k, v in figures.items()}
    section.update(
        gunicorn_vs_nginx_thumbs_rps=round(med["g_thumb"]["rps"] / med["n_thumb"]["rps"], 3),
        gunicorn_vs_nginx_images_mbps=round(med["g_image"]["mbps"] / med["n_image"]["mbps"], 3),
        gunicorn_thumbs_rps=round(med["g_thumb"]["rps"], 1),
        nginx_thumbs_rps=round(med["n_thumb"]["rps"], 1),
        gunicorn_images_mb_per_s=round(med["g_image"]["mbps"], 1),
        nginx_images_mb_per_s=round(med["n_image"]["mbps"], 1),
        errors=int(sum(m["errors"] for m in med.values())),
        gunicorn_workers=4,
        client_threads=THREADS,
    )
