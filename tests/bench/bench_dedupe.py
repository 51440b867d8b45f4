"""Dedupe savings on a workload where 30% of the ingested images repeat earlier ones.

Logical bytes (what a plain tree of files would hold) vs the bytes the blob
store holds. No goal yet; reported for the record.
"""

from __future__ import annotations

import random

from casvault.config import Config
from casvault.store import Store

from bench_cli import folder_bytes
from common import realistic_pngs, scratch, user

TOTAL = 100
REPEATED = 0.30


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['dedupe']``."""
    total = 40 if quick else TOTAL
    distinct = total - int(total * REPEATED)
    images = [p.read_bytes() for p in realistic_pngs(distinct)]
    rnd = random.Random(30)
    workload = images + [rnd.choice(images) for _ in range(total - distinct)]
    rnd.shuffle(workload)
    root = scratch("dedupe") / "root"
    store = Store(Config(root=root, fsync=False))
    for i, data in enumerate(workload):
        # NOTE: repeats land with several owners, as when users re-upload or share seeds.
        store.ingest(data, user(200 + i % 5), prompt="dedupe", make_thumb=False)
    logical = sum(map(len, workload))
    physical = folder_bytes(root / "blobs")
    results["dedupe"] = {
        "savings": round(1 - physical / logical, 3),
        "images": total,
        "repeated_share": REPEATED,
        "logical_bytes": logical,
        "blob_bytes": physical,
        "store_bytes_total": folder_bytes(root),
    }
