"""HTTP ingest against the library: what the request path costs.

- ``http.ingest_vs_library``: images/s of 4 concurrent clients posting
  1024×1024 ComfyUI-like PNGs to ``/api/v1/ingest`` on gunicorn (the shipped
  ``ops/gunicorn.conf.py``, its default worker count, keep-alive
  connections, multipart bodies built before the clock starts) ÷ images/s of
  4 threads calling ``Store.ingest`` in one process with the same images,
  fsync and thumbnails on both sides. Each round uses fresh stores, so no
  side meets its own blobs; rounds alternate which side goes first.
"""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import time
import uuid
from pathlib import Path

from casvault.config import Config
from casvault.store import Store

from common import median, realistic_pngs, scratch, user

CLIENTS = 4
IMAGES = 48
ROUNDS = 3


def _owners(round_no: int) -> list[str]:
    return [user(50_000 + round_no * 10 + n) for n in range(CLIENTS)]


def _split(images: list[bytes]) -> list[list[bytes]]:
    return [images[n::CLIENTS] for n in range(CLIENTS)]


def _run_threads(target, shares: list) -> float:
    """Seconds for CLIENTS threads, thread ``n`` running ``target(n, shares[n])``."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            target(n, shares[n])
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def library_rate(images: list[bytes], round_no: int) -> float:
    """Images/s of Store.ingest from CLIENTS threads (one owner each)."""
    root = scratch("http-lib") / "root"
    store = Store(Config(root=root, secret_key="bench-secret"))
    owners = _owners(round_no)

    def ingest(n: int, share: list[bytes]) -> None:
        for data in share:
            store.ingest(data, owners[n], prompt="bench http ingest", original_filename="ComfyUI_00001_.png")

    return len(images) / _run_threads(ingest, _split(images))


def _multipart(data: bytes, owner: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (("owner", owner), ("prompt", "bench http ingest")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="ComfyUI_00001_.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def http_rate(images: list[bytes], round_no: int) -> float:
    """Images/s of CLIENTS keep-alive clients posting to /api/v1/ingest on gunicorn."""
    from tests.conftest import INGEST_TOKEN
    from tests.servers import Gunicorn

    root = scratch("http-gunicorn") / "root"
    Store(Config(root=root, secret_key="bench-secret"))  # what `casvault init` does
    owners = _owners(round_no)
    bodies = [[_multipart(data, owners[n]) for data in share] for n, share in enumerate(_split(images))]
    server = Gunicorn(root, workers=2 * multiprocessing.cpu_count())  # the shipped config's default
    server.start()

    def post(n: int, share: list[tuple[bytes, str]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for body, content_type in share:
            conn.request("POST", "/api/v1/ingest", body=body, headers={
                "Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": content_type,
            })
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"ingest answered {resp.status}: {answer[:200]!r}")
            if resp.will_close:
                conn.close()
        conn.close()

    try:
        return len(images) / _run_threads(post, bodies)
    finally:
        server.stop()


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['http']``."""
    count = 16 if quick else IMAGES
    images = [Path(p).read_bytes() for p in realistic_pngs(count)]
    lib, web = [], []
    for r in range(1 if quick else ROUNDS):
        if r % 2:
            web.append(http_rate(images, 2 * r))
            lib.append(library_rate(images, 2 * r + 1))
        else:
            lib.append(library_rate(images, 2 * r + 1))
            web.append(http_rate(images, 2 * r))
    results.setdefault("http", {}).update(
        ingest_vs_library=round(median(web) / median(lib), 3),
        http_images_per_s=round(median(web), 2),
        library_images_per_s=round(median(lib), 2),
        clients=CLIENTS,
        gunicorn_workers=2 * multiprocessing.cpu_count(),
        images=count,
    )
