"""Thumbnails: one ``make_thumbnail`` vs a plain Pillow decode, and the parallel CLI.

- ``thumbs.vs_decode``: time of ``make_thumbnail(png_bytes)`` ÷ time of
  ``Image.open(...).load()`` of the same 1024×1024 PNG (the physical floor).
- ``thumbs.parallel_speedup``: wall time of ``casvault thumbnails --force
  --jobs 1`` ÷ the same with the default jobs (all cores), on a store of a
  few hundred real-size images.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from PIL import Image

from casvault.config import Config
from casvault.store import Store
from casvault.thumbs import make_thumbnail

from common import REPO, cache_dir, interleave, median, realistic_pngs, user

ROUNDS = 9
SAMPLE = 12
PARALLEL_IMAGES = 240


def _decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def thumbs_store(count: int) -> Path:
    """A store with ``count`` real-size images (thumbnails made), cached."""
    root = cache_dir("store-thumbs") / "root"
    done = root.parent / f"complete-{count}"
    if done.exists():
        return root
    store = Store(Config(root=root, fsync=False))
    paths = realistic_pngs(count)
    have = store.index(user(11)).count("generated")
    for path in paths[have:]:
        store.ingest(path.read_bytes(), user(11), prompt="bench", make_thumb=True)
    done.write_text("ok\n")
    return root


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``casvault --root ROOT ARGS`` in a fresh process; raises on failure."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("casvault")), "--root", str(root), *args],
        cwd=REPO, capture_output=True, text=True, check=True, env={**os.environ, "CASVAULT_DEV": "1"},
    )


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['thumbs']``."""
    rounds = 5 if quick else ROUNDS
    images = [p.read_bytes() for p in realistic_pngs(SAMPLE)]

    def decode_round() -> float:
        t = time.perf_counter()
        for data in images:
            _decode(data)
        return (time.perf_counter() - t) / len(images)

    def thumb_round() -> float:
        t = time.perf_counter()
        for data in images:
            make_thumbnail(data)
        return (time.perf_counter() - t) / len(images)

    decode_s, thumb_s = interleave(decode_round, thumb_round, rounds)
    section = results.setdefault("thumbs", {})
    section.update(
        vs_decode=round(median(thumb_s) / median(decode_s), 3),
        thumbnail_ms=round(median(thumb_s) * 1000, 2),
        decode_ms=round(median(decode_s) * 1000, 2),
    )
    count = 60 if quick else PARALLEL_IMAGES
    root = thumbs_store(count)

    def thumbnails(*extra: str) -> Callable[[], float]:
        def once() -> float:
            t = time.perf_counter()
            cli(root, "thumbnails", "--force", "--quiet", *extra)
            return time.perf_counter() - t
        return once

    serial, parallel = interleave(thumbnails("--jobs", "1"), thumbnails(), 1 if quick else 3)
    section.update(
        parallel_speedup=round(median(serial) / median(parallel), 3),
        parallel_images=count,
        jobs1_s=round(median(serial), 2),
        jobs_default_s=round(median(parallel), 2),
        cpus=os.cpu_count(),
    )
