"""Ingest: casvault vs the naive app, and vs the write floor.

- ``ingest.cas_vs_naive``: images/s of ``Store.ingest`` (thumbnails on,
  fsync on) ÷ images/s of what the old app did: decode once with Pillow for
  the thumbnail, write the PNG, a JSON sidecar and a WebP thumbnail straight
  into the day folder, each with fsync.
- ``ingest.vs_floor``: bytes/s of ``Store.ingest(make_thumb=False)`` ÷ bytes/s
  of sha256 in memory plus one write of the bytes with fsync.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from PIL import Image

from casvault.config import Config
from casvault.store import Store

from common import interleave, median, realistic_pngs, scratch, user

IMAGES = 96
OWNER = user(7)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def naive_ingest(data: bytes, base: Path, owner: str, prompt: str) -> None:
    """The old app: decode once for the thumbnail, write PNG, JSON and WebP with fsync."""
    now = datetime.now(timezone.utc)
    day = base / "users" / owner / now.strftime("%Y/%m/%d")
    (day / "thumb").mkdir(parents=True, exist_ok=True)
    rid = uuid.uuid4().hex
    img = Image.open(io.BytesIO(data))
    img.load()
    thumb = img.convert("RGB")
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, "WEBP", quality=80)
    _write_synced(day / f"{rid}.png", data)
    sidecar = {
        "id": rid, "owner": owner, "kind": "generated", "prompt": prompt, "mime": "image/png",
        "bytes": len(data), "created_at": now.isoformat(), "status": "active",
        "thumb": f"thumb/{rid}.webp", "tags": [],
    }
    _write_synced(day / f"{rid}.json", json.dumps(sidecar).encode())
    _write_synced(day / "thumb" / f"{rid}.webp", buf.getvalue())


def floor_write(data: bytes, base: Path) -> None:
    """The physical floor: sha256 in memory, one write with fsync."""
    sha = hashlib.sha256(data).hexdigest()
    _write_synced(base / sha, data)


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['ingest']``."""
    # NOTE: one image a round, the two sides alternating image by image: a
    # neighbour's burst of fsyncs or CPU then hits both sides of a pair alike,
    # where rounds of several images let it land on one side only.
    count = 32 if quick else IMAGES
    images = [p.read_bytes() for p in realistic_pngs(count)]
    work = scratch("ingest")
    cas = Store(Config(root=work / "cas"))
    cas_off = Store(Config(root=work / "cas-nothumb"))
    naive_base = work / "naive" / "outputs"
    floor_base = work / "floor"
    floor_base.mkdir()
    state = {"a": 0, "b": 0}

    def one(side: str, write: Callable[[bytes], object], per: Callable[[bytes], float]) -> Callable[[], float]:
        def round_() -> float:
            data = images[state[side]]
            state[side] += 1
            t = time.perf_counter()
            write(data)
            return per(data) / (time.perf_counter() - t)
        return round_

    images_per = lambda data: 1.0  # noqa: E731
    bytes_per = lambda data: float(len(data))  # noqa: E731
    naive_ips, cas_ips = interleave(
        one("b", lambda d: naive_ingest(d, naive_base, OWNER, "a photo of a cat"), images_per),
        one("a", lambda d: cas.ingest(d, OWNER, prompt="a photo of a cat", make_thumb=True), images_per),
        count,
    )
    state.update(a=0, b=0)
    floor_bps, off_bps = interleave(
        one("b", lambda d: floor_write(d, floor_base), bytes_per),
        one("a", lambda d: cas_off.ingest(d, OWNER, prompt="a photo of a cat", make_thumb=False), bytes_per),
        count,
    )
    mean_bytes = sum(map(len, images)) / len(images)
    results["ingest"] = {
        "cas_vs_naive": round(median(cas_ips) / median(naive_ips), 3),
        "cas_images_per_s": round(median(cas_ips), 2),
        "naive_images_per_s": round(median(naive_ips), 2),
        "vs_floor": round(median(off_bps) / median(floor_bps), 3),
        "nothumb_mb_per_s": round(median(off_bps) / 1e6, 1),
        "floor_mb_per_s": round(median(floor_bps) / 1e6, 1),
        "nothumb_ms_per_image": round(mean_bytes / median(off_bps) * 1000, 2),
        "floor_ms_per_image": round(mean_bytes / median(floor_bps) * 1000, 2),
        "image_bytes_mean": int(mean_bytes),
        "images_per_side": len(images),
    }
