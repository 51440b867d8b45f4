"""Operator reports: quota use per user, and deduplication (logical vs stored bytes)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import quota
from .store import Store


def quota_report(store: Store, over: float | None = None) -> list[dict[str, Any]]:
    """Per user: count, bytes, trash count and bytes, limits, percent used.

    ``over``: only users whose percent used is at least this (users without
    a limit never qualify).
    """
    rows = []
    for owner in store.users():
        limits = store.quota.limits_for(owner)
        usage = store.usage(owner)
        pct = quota.percent(usage, limits)
        if over is not None and (pct is None or pct < over):
            continue
        rows.append({"user": owner, **usage.as_dict(), **limits.as_dict(), "percent": pct})
    return rows


def dedupe_report(store: Store, top: int = 10) -> dict[str, Any]:
    """Logical bytes (every record counted) vs stored bytes (each blob once), the most shared blobs, per user."""
    refs: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    owners_of: dict[str, set[str]] = {}
    per_user: list[dict[str, Any]] = []
    for owner in store.users():
        records = store.all_records(owner)
        logical = sum(r.bytes for r in records)
        mine: dict[str, int] = {}
        for r in records:
            refs[r.sha256] += 1
            sizes[r.sha256] = r.bytes
            mine[r.sha256] = r.bytes
            owners_of.setdefault(r.sha256, set()).add(owner)
        stored = sum(mine.values())
        per_user.append({
            "user": owner,
            "records": len(records),
            "logical_bytes": logical,
            "unique_blobs": len(mine),
            "unique_bytes": stored,
            "savings_bytes": logical - stored,
        })
    shared: Counter[str] = Counter()
    for owners in owners_of.values():
        if len(owners) > 1:
            shared.update(owners)
    for row in per_user:
        row["blobs_shared_with_others"] = shared[row["user"]]
    logical = sum(refs[s] * sizes[s] for s in refs)
    stored = sum(sizes.values())
    unreferenced = [b for b in store.blobs.iter() if b.sha256 not in sizes]
    most = sorted(refs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "records": sum(refs.values()),
        "blobs_referenced": len(sizes),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "savings_bytes": logical - stored,
        "savings_percent": round(100.0 * (logical - stored) / logical, 2) if logical else 0.0,
        "unreferenced_blobs": len(unreferenced),
        "unreferenced_bytes": sum(b.size for b in unreferenced),
        "most_shared": [
            {"sha256": s, "records": n, "users": len(owners_of[s]), "bytes": sizes[s]} for s, n in most if n > 1
        ],
        "users": per_user,
    }
