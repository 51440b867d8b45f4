"""Run the casvault benchmarks and write one JSON file plus a table on stdout.

Usage: python tests/bench/run.py --out bench-results.json [--only ingest,thumbs] [--quick]

Every key is a ratio measured in this run against a baseline measured in the
same run (interleaved, medians); the absolute figures sit beside each ratio.
Big stores and image sets are cached under $CASVAULT_BENCH_CACHE
(default /tmp/casvault-bench-cache), so a second run is fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from common import CACHE, clean_scratch  # noqa: E402

SECTIONS = ("ingest", "thumbs", "list", "backup", "scrub", "serve", "dedupe", "http", "shared", "shared_ingest", "gallery", "memory")
MODULES = {
    "ingest": "bench_ingest",
    "thumbs": "bench_thumbs",
    "list": "bench_list",
    "backup": "bench_cli",
    "scrub": "bench_cli",
    "serve": "bench_serve",
    "dedupe": "bench_dedupe",
    "http": "bench_http",
    "shared": "bench_shared",
    "shared_ingest": "bench_shared_ingest",
    "gallery": "bench_gallery",
    "memory": "bench_memory",
}
# key → (goal, "min" when the ratio must be at least the goal, "max" at most)
GOALS = {
    "ingest.cas_vs_naive": (0.95, "min"),
    "ingest.vs_floor": (0.80, "min"),
    "thumbs.vs_decode": (1.30, "max"),
    "thumbs.parallel_speedup": (1.70, "min"),
    "list.scale_100k_vs_1k": (1.5, "max"),
    "list.cold_load_vs_stdlib_json": (0.70, "max"),
    "list.tag_vs_page_100k": (3.0, "max"),
    "list.search_vs_page_100k": (5.0, "max"),
    "list.facets_vs_page_100k": (5.0, "max"),
    "list.index_bytes_per_record": (1.5 * 1441, "max"),
    "list.cold_first_page_vs_sqlite_peer_100k": (0.3, "max"),
    "http.ingest_vs_library": (0.8, "min"),
    "shared.ingest_vs_floor": (0.7, "min"),
    "shared.list_1m_p50_ms": (20.0, "max"),
    "shared.search_1m_p50_ms": (30.0, "max"),
    "gallery.first_tiles_ms_100k_vs_1k": (1.3, "max"),
    "backup.incremental_bytes_ratio": (0.01, "max"),
    "scrub.blake3_vs_sha256": (1.8, "min"),
    "memory.peak_rss_8x_8000px_mb": (600, "max"),
}


def verdict(value: object, goal: float, sense: str) -> str:
    """'met', 'MISSED' or 'n/a' for one figure."""
    if not isinstance(value, (int, float)):
        return "n/a"
    ok = value >= goal if sense == "min" else value <= goal
    return "met" if ok else "MISSED"


def table(results: dict) -> str:
    """The short stdout table: key, value, goal, verdict."""
    rows = [("key", "value", "goal", "")]
    for key, (goal, sense) in GOALS.items():
        section, name = key.split(".")
        value = results.get(section, {}).get(name)
        shown = f"{value:.3f}" if isinstance(value, (int, float)) else "-"
        rows.append((key, shown, ("≥ " if sense == "min" else "≤ ") + f"{goal:g}", verdict(value, goal, sense)))
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", "bench-results.json"))
    parser.add_argument("--only", default="", help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, not for the record)")
    args = parser.parse_args(argv)
    wanted = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    results: dict = {}
    errors: dict[str, str] = {}
    started = time.time()
    seen: set[str] = set()
    for section in wanted:
        module = MODULES[section]
        if module in seen:
            continue
        seen.add(module)
        t = time.perf_counter()
        print(f"[bench] {module} ...", file=sys.stderr, flush=True)
        try:
            importlib.import_module(module).run(results, quick=args.quick)
        except Exception as exc:  # one broken section must not hide the others
            errors[module] = f"{exc.__class__.__name__}: {exc}"
            traceback.print_exc()
        print(f"[bench] {module} done in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    clean_scratch()
    results["meta"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cache": str(CACHE),
        "quick": args.quick,
        "goals": {k: {"goal": g, "sense": s, "verdict": verdict(
            results.get(k.split(".")[0], {}).get(k.split(".")[1]), g, s)} for k, (g, s) in GOALS.items()},
        "errors": errors,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"written to {args.out} in {results['meta']['seconds']}s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
