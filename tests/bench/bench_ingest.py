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

from PIL import Image

from casvault.config import Config
from casvault.store import Store

from common import interleave, median, realistic_pngs, scratch, user

ROUNDS = 8
PER_ROUND = 6
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
    rounds = 4 if quick else ROUNDS
    paths = realistic_pngs(rounds * PER_ROUND)
    images = [p.read_bytes() for p in paths]
    batches = [images[r * PER_ROUND:(r + 1) * PER_ROUND] for r in range(rounds)]
    work = scratch("ingest")
    cas = Store(Config(root=work / "cas"))
    cas_off = Store(Config(root=work / "cas-nothumb"))
    naive_base = work / "naive" / "outputs"
    floor_base = work / "floor"
    floor_base.mkdir()
    state = {"a": 0, "b": 0}

    def cas_round() -> float:
        batch = batches[state["a"]]
        state["a"] += 1
        t = time.perf_counter()
        for data in batch:
            cas.ingest(data, OWNER, prompt="a photo of a cat", make_thumb=True)
        return len(batch) / (time.perf_counter() - t)

    def naive_round() -> float:
        batch = batches[state["b"]]
        state["b"] += 1
        t = time.perf_counter()
        for data in batch:
            naive_ingest(data, naive_base, OWNER, "a photo of a cat")
        return len(batch) / (time.perf_counter() - t)

    naive_ips, cas_ips = interleave(naive_round, cas_round, rounds)
    state.update(a=0, b=0)

    def off_round() -> float:
        batch = batches[state["a"]]
        state["a"] += 1
        t = time.perf_counter()
        for data in batch:
            cas_off.ingest(data, OWNER, prompt="a photo of a cat", make_thumb=False)
        return sum(map(len, batch)) / (time.perf_counter() - t)

    def floor_round() -> float:
        batch = batches[state["b"]]
        state["b"] += 1
        t = time.perf_counter()
        for data in batch:
            floor_write(data, floor_base)
        return sum(map(len, batch)) / (time.perf_counter() - t)

    floor_bps, off_bps = interleave(floor_round, off_round, rounds)
    mean_bytes = sum(map(len, images)) / len(images)
    results["ingest"] = {
        "cas_vs_naive": round(median(cas_ips) / median(naive_ips), 3),
        "cas_images_per_s": round(median(cas_ips), 2),
        "naive_images_per_s": round(median(naive_ips), 2),
        "vs_floor": round(median(off_bps) / median(floor_bps), 3),
        "nothumb_mb_per_s": round(median(off_bps) / 1e6, 1),
        "floor_mb_per_s": round(median(floor_bps) / 1e6, 1),
        "image_bytes_mean": int(mean_bytes),
        "images_per_side": len(images),
    }
