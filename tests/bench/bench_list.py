"""Listing at scale, through the Flask app.

- ``list.scale_100k_vs_1k``: median latency of ``GET /api/v1/images?size=50``
  (first page, and a page 75% deep) for a 100,000-image user ÷ the same for
  a 1,000-image user, warm index; the worse of the two ratios is the figure.
- ``list.cold_load_vs_stdlib_json``: a fresh process answering its first
  listing for the 100k user ÷ a fresh process reading that user's manifest
  and ``json.loads``-ing each line (both timed inside the process, after
  imports and app creation, median of several).
Also: filtered (``tag=``, ``aspect_ratio=``) and search (``q=``) latency at
100k, and the index memory per record (tracemalloc, fresh process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from casvault import identity

from common import REPO, interleave, median
from stores import BIG, BIG_USER, SMALL, SMALL_USER, listing_config, listing_store

REQUESTS = 40
COLD_RUNS = 5
SECRET = "bench-secret-0123456789abcdef-0123456789"

_COLD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from casvault import identity
from stores import listing_config
from web import create_app
app = create_app(listing_config(__import__("pathlib").Path(sys.argv[3])))
client = app.test_client()
client.set_cookie(identity.COOKIE_NAME, identity.issue("bench-secret-0123456789abcdef-0123456789", sys.argv[4])[1])
t = time.perf_counter()
resp = client.get("/api/v1/images?size=50")
elapsed = time.perf_counter() - t
assert resp.status_code == 200 and len(resp.get_json()["items"]) == 50, resp.status_code
print(json.dumps({"seconds": elapsed}))
"""

_JSON = r"""
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as fh:
    events = [json.loads(line) for line in fh]
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "lines": len(events)}))
"""

_MEMORY = r"""
import json, sys, tracemalloc
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from stores import listing_config
from casvault.store import Store
store = Store(listing_config(__import__("pathlib").Path(sys.argv[3])))
tracemalloc.start()
idx = store.index(sys.argv[4])
size, _ = tracemalloc.get_traced_memory()
print(json.dumps({"bytes": size, "records": len(idx.records)}))
"""


def _python(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _client(app, owner: str):
    client = app.test_client()
    client.set_cookie(identity.COOKIE_NAME, identity.issue(SECRET, owner)[1])
    return client


def _latency(client, url: str) -> float:
    t = time.perf_counter()
    resp = client.get(url)
    elapsed = time.perf_counter() - t
    assert resp.status_code == 200, (url, resp.status_code, resp.data[:200])
    return elapsed


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['list']``."""
    from web import create_app

    root = listing_store()
    app = create_app(listing_config(root))
    big, small = _client(app, BIG_USER), _client(app, SMALL_USER)
    for client in (big, small):
        _latency(client, "/api/v1/images?size=50")  # warm: load the index
    n = 15 if quick else REQUESTS
    deep_big = int(BIG * 0.75) // 50
    deep_small = int(SMALL * 0.75) // 50

    def series(client, url: str) -> float:
        return median([_latency(client, url) for _ in range(n)])

    first_small, first_big = interleave(
        lambda: series(small, "/api/v1/images?size=50"), lambda: series(big, "/api/v1/images?size=50"), 3
    )
    deep_s, deep_b = interleave(
        lambda: series(small, f"/api/v1/images?size=50&page={deep_small}"),
        lambda: series(big, f"/api/v1/images?size=50&page={deep_big}"),
        3,
    )
    first_ratio = median(first_big) / median(first_small)
    deep_ratio = median(deep_b) / median(deep_s)
    section = results.setdefault("list", {})
    section.update(
        scale_100k_vs_1k=round(max(first_ratio, deep_ratio), 3),
        first_page_ratio=round(first_ratio, 3),
        deep_page_ratio=round(deep_ratio, 3),
        first_page_ms_100k=round(median(first_big) * 1000, 2),
        first_page_ms_1k=round(median(first_small) * 1000, 2),
        deep_page_ms_100k=round(median(deep_b) * 1000, 2),
        deep_page_ms_1k=round(median(deep_s) * 1000, 2),
    )
    for name, url in (
        ("tag", "/api/v1/images?size=50&tag=portfolio"),
        ("aspect_ratio", "/api/v1/images?size=50&aspect_ratio=16:9"),
        ("search", "/api/v1/images?size=50&q=castle%20neon"),
    ):
        section[f"filtered_{name}_ms_100k"] = round(median([_latency(big, url) for _ in range(max(n // 4, 5))]) * 1000, 2)
    manifest = root / "meta" / "users" / BIG_USER / "manifest.jsonl"
    runs = 3 if quick else COLD_RUNS
    here = str(Path(__file__).resolve().parent)
    json_s, cold_s = interleave(
        lambda: _python(_JSON, str(manifest))["seconds"],
        lambda: _python(_COLD, here, str(REPO), str(root), BIG_USER)["seconds"],
        runs,
    )
    memory = _python(_MEMORY, here, str(REPO), str(root), BIG_USER)
    section.update(
        cold_load_vs_stdlib_json=round(median(cold_s) / median(json_s), 3),
        cold_first_listing_s=round(median(cold_s), 3),
        stdlib_json_s=round(median(json_s), 3),
        manifest_mb=round(manifest.stat().st_size / 1e6, 1),
        index_bytes_per_record=int(memory["bytes"] / memory["records"]),
        records_100k=memory["records"],
        records_1k=SMALL,
    )
