"""Where the time of one ingest goes: median start and end of each step, per image.

Usage: python tests/bench/ingest_timeline.py [--images 48] [--thumbs]

Wraps the steps of ``Store.ingest`` (caller's thread and background pool)
with timers, ingests real-size PNGs into a scratch store with fsync on, and
alternates each ingest with the floor of ``ingest.vs_floor`` (sha256 plus one
write with fsync). A profile for the closing note of a missed goal, not a
benchmark key.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from casvault import blobs, comfy, sidecars, store as store_module, writer as writer_module  # noqa: E402
from casvault.config import Config  # noqa: E402
from casvault.store import Store  # noqa: E402
from casvault.writer import Writer  # noqa: E402

from bench_ingest import OWNER, floor_write  # noqa: E402
from common import clean_scratch, realistic_pngs, scratch  # noqa: E402

STEPS = (
    (store_module, "check_image", "check_image (caller)"),
    (comfy, "fill_fields", "ComfyUI metadata (caller)"),
    (blobs, "digest", "sha256 (caller)"),
    (blobs, "blake3_digest", "blake3 (pool)"),
    (blobs, "write_tmp", "original: temp write + fsync (pool)"),
    (sidecars, "write_tmp", "sidecar temp write + fsync"),
    (writer_module, "write_tmp", "thumb temp write + fsync"),
    (blobs.StagedBlob, "publish", "original renamed into place"),
    (Writer, "_materialize", "sidecar, projection, thumb renamed; folders fsynced"),
    (Store, "log_events", "manifest line appended + fsync"),
)


def _instrument(start: list[float], spans: dict[str, list[tuple[float, float]]]) -> None:
    for owner, name, label in STEPS:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args: Any, _fn: Any = fn, _label: str = label, **kwargs: Any) -> Any:
            began = time.perf_counter() - start[0]
            try:
                return _fn(*args, **kwargs)
            finally:
                spans[_label].append((began, time.perf_counter() - start[0]))

        setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> None:
    """Print the timeline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--thumbs", action="store_true", help="ingest with thumbnails (default: off, as vs_floor)")
    args = parser.parse_args(argv)
    images = [p.read_bytes() for p in realistic_pngs(args.images)]
    work = scratch("timeline")
    store = Store(Config(root=work / "store"))
    floor_dir = work / "floor"
    floor_dir.mkdir()
    start = [0.0]
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    _instrument(start, spans)
    totals, floors = [], []
    for data in images:
        start[0] = time.perf_counter()
        store.ingest(data, OWNER, prompt="a photo of a cat", make_thumb=args.thumbs)
        totals.append(time.perf_counter() - start[0])
        t = time.perf_counter()
        floor_write(data, floor_dir)
        floors.append(time.perf_counter() - t)
    print(f"{'step':55} {'start':>7} {'end':>7}  (ms, medians over {len(images)} images)")
    for _owner, _name, label in STEPS:
        if spans.get(label):
            began = statistics.median(s for s, _ in spans[label]) * 1000
            ended = statistics.median(e for _, e in spans[label]) * 1000
            print(f"{label:55} {began:7.2f} {ended:7.2f}")
    total, floor = statistics.median(totals) * 1000, statistics.median(floors) * 1000
    print(f"{'ingest total':55} {'':7} {total:7.2f}")
    print(f"{'floor (sha256 + one write with fsync)':55} {'':7} {floor:7.2f}   ratio {floor / total:.2f}")
    clean_scratch()


if __name__ == "__main__":
    main()
