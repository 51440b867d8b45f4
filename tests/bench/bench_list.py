"""Listing at scale, through the Flask app.

- ``list.scale_100k_vs_1k``: median latency of ``GET /api/v1/images?size=50``
  (first page, and a page 75% deep) for a 100,000-image user ÷ the same for
  a 1,000-image user, warm index; the worse of the two ratios is the figure.
- ``list.cold_first_page_vs_sqlite_peer_100k``: a fresh process answering
  its first listing for the 100k user (from the listing snapshot, the index
  loading in the background) ÷ a fresh process answering InvokeAI's first
  gallery page from its SQLite design over the same 100,000 records
  (``peer_invokeai.py``: the peer baseline, re-implemented from its source);
  ``list.warm_page_vs_sqlite_peer_100k``: the same, warm, in-process.
- ``list.cold_load_vs_stdlib_json``: the time until that fresh process has
  its whole index loaded ÷ a fresh process reading that user's manifest and
  ``json.loads``-ing each line (both timed inside the process, after
  imports and app creation, median of several).
- ``list.tag_vs_page_100k``, ``list.search_vs_page_100k``,
  ``list.facets_vs_page_100k``: a ``tag=`` page, a ``q=castle neon`` page and
  the unfiltered ``/images/facets`` answer at 100k ÷ a plain first page,
  interleaved in series; the secondary indexes built (the first filtered
  request of a process builds them; that one-off cost is reported as
  ``secondary_build_s``). Filtered facets (``model=…&q=castle``) and the
  other filters are reported beside them.
- ``list.index_bytes_per_record``: the index's memory per record with its
  secondary indexes built (tracemalloc, fresh process); without them beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from casvault import identity

import peer_invokeai
from common import REPO, interleave, median, timed
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
from web.ext import get_store
with app.app_context():
    get_store().index(sys.argv[4])  # waits for the background load
loaded = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "loaded": loaded}))
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
idx.secondary()
full, _ = tracemalloc.get_traced_memory()
tracemalloc.stop()
idx._secondary = None  # built again untraced, for its time
t = __import__("time").perf_counter()
idx.secondary()
build = __import__("time").perf_counter() - t
print(json.dumps({"bytes": size, "full_bytes": full, "records": len(idx.records), "build_s": build}))
"""


_PEER = r"""
import json, sys
sys.path[:0] = [sys.argv[1]]
from pathlib import Path
import peer_invokeai
print(json.dumps({"seconds": peer_invokeai.cold_first_page(Path(sys.argv[2]), sys.argv[3])}))
"""


def _peer_database(app, root: Path) -> Path:
    """The SQLite peer's database over the 100k user's records (cached beside the listing store)."""
    from web.ext import get_store

    path = root.parent / "invokeai-peer.db"
    done = root.parent / "invokeai-peer.complete"
    if done.exists():
        return path
    for stale in root.parent.glob("invokeai-peer.db*"):
        stale.unlink()
    with app.app_context():
        records = list(get_store().index(BIG_USER).iter_desc("generated"))
    peer_invokeai.build(path, BIG_USER, [
        {"id": r.id, "created_at": r.created_at, "width": r.width or 8, "height": r.height or 8,
         "prompt": r.prompt, "seed": r.seed, "favorite": r.favorite} for r in records
    ])
    done.write_text("ok\n")
    return path


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
    _latency(big, "/api/v1/images?size=50&tag=portfolio")  # builds the secondary indexes
    page_url = "/api/v1/images?size=50"
    for key, name, url in (
        ("tag_vs_page_100k", "tag", "/api/v1/images?size=50&tag=portfolio"),
        ("search_vs_page_100k", "search", "/api/v1/images?size=50&q=castle%20neon"),
        ("facets_vs_page_100k", "facets", "/api/v1/images/facets"),
        ("facets_filtered_vs_page_100k", "facets_filtered",
         "/api/v1/images/facets?model=flux1-dev.safetensors&q=castle"),
        ("typo_search_vs_page_100k", "typo_search", "/api/v1/images?size=50&q=catsle%20noen"),
    ):
        base, cand = interleave(lambda: series(big, page_url), lambda: series(big, url), 3)
        section[key] = round(median(cand) / median(base), 3)
        section[f"{name}_ms_100k"] = round(median(cand) * 1000, 2)
    for name, url in (
        ("aspect_ratio", "/api/v1/images?size=50&aspect_ratio=16:9"),
        ("model", "/api/v1/images?size=50&model=dreamshaper_8.safetensors"),
        ("lora_and_sampler", "/api/v1/images?size=50&lora=film_grain.safetensors&sampler=euler"),
        ("date_range", "/api/v1/images?size=50&from_date=2026-03-01&to_date=2026-03-31"),
        ("tag_deep", "/api/v1/images?size=50&tag=portfolio&page=20"),
    ):
        section[f"filtered_{name}_ms_100k"] = round(median([_latency(big, url) for _ in range(n)]) * 1000, 2)
    manifest = root / "meta" / "users" / BIG_USER / "manifest.jsonl"
    runs = 3 if quick else COLD_RUNS
    here = str(Path(__file__).resolve().parent)
    peer_db = _peer_database(app, root)
    cold_runs: list[dict] = []
    json_s, _ = interleave(
        lambda: _python(_JSON, str(manifest))["seconds"],
        lambda: cold_runs.append(_python(_COLD, here, str(REPO), str(root), BIG_USER)) or 0.0,
        runs,
    )
    cold_s = [r["loaded"] for r in cold_runs]
    peer_s, first_s = interleave(
        lambda: _python(_PEER, here, str(peer_db), BIG_USER)["seconds"],
        lambda: _python(_COLD, here, str(REPO), str(root), BIG_USER)["seconds"],
        runs,
    )
    conn = peer_invokeai.connect(peer_db)
    peer_warm, ours_warm = interleave(
        lambda: median([timed(lambda: peer_invokeai.page(conn, BIG_USER)) for _ in range(max(n // 4, 5))]),
        lambda: median([_latency(big, "/api/v1/images?size=50") for _ in range(n)]),
        3,
    )
    conn.close()
    memory = _python(_MEMORY, here, str(REPO), str(root), BIG_USER)
    section.update(
        cold_load_vs_stdlib_json=round(median(cold_s) / median(json_s), 3),
        cold_full_load_s=round(median(cold_s), 3),
        cold_first_page_vs_sqlite_peer_100k=round(median(first_s) / median(peer_s), 3),
        cold_first_page_ms_100k=round(median(first_s) * 1000, 1),
        sqlite_peer_cold_first_page_ms_100k=round(median(peer_s) * 1000, 1),
        warm_page_vs_sqlite_peer_100k=round(median(ours_warm) / median(peer_warm), 4),
        sqlite_peer_warm_page_ms_100k=round(median(peer_warm) * 1000, 2),
        stdlib_json_s=round(median(json_s), 3),
        manifest_mb=round(manifest.stat().st_size / 1e6, 1),
        index_bytes_per_record=int(memory["full_bytes"] / memory["records"]),
        index_bytes_per_record_without_secondary=int(memory["bytes"] / memory["records"]),
        secondary_build_s=round(memory["build_s"], 3),
        records_100k=memory["records"],
        records_1k=SMALL,
    )
