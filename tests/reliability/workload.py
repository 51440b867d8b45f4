"""Concurrent clients for the kill, load and soak tests: ingests plus trash and restore, with a record of what was acknowledged."""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field

import requests

from tests.reliability.clients import XRW, cookie, ingest, listed, owner, tiny_png

DUP_POOL = 40  # images whose bytes every client ingests now and then


@dataclass
class Client:
    """One simulated user: what the server acknowledged to it, and what is uncertain."""

    n: int
    user_id: str
    status: dict[str, str] = field(default_factory=dict)  # acknowledged id → "active" | "trash"
    uncertain: set[str] = field(default_factory=set)  # a trash/restore was sent but not answered
    in_flight_ingests: int = 0  # ingests sent and not answered when the server died
    shas: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


class Workload:
    """``clients`` threads, each ingesting (``dup_share`` of them duplicates across users) and trashing/restoring."""

    def __init__(self, url: str, clients: int, *, base: int = 100, dup_share: float = 0.3, seed: int = 0) -> None:
        self.url = url
        self.clients = [Client(base + i, owner(base + i)) for i in range(clients)]
        self.dup_share = dup_share
        self.rnd = random.Random(seed)
        self.stop = threading.Event()
        self._seq = 0
        self._lock = threading.Lock()
        self.seed_base = seed * 10_000_000

    def _next_seed(self) -> int:
        with self._lock:
            self._seq += 1
            return self.seed_base + DUP_POOL + self._seq

    def run_client(self, c: Client, ingests: int, change_every: int = 4) -> None:
        """Ingest ``ingests`` images (until stopped), with a trash or restore after every ``change_every``."""
        rnd = random.Random(c.n)
        with requests.Session() as s:
            s.cookies.update(cookie(c.user_id))
            s.headers.update(XRW)
            for i in range(ingests):
                if self.stop.is_set():
                    return
                seed = rnd.randrange(DUP_POOL) if rnd.random() < self.dup_share else self._next_seed()
                data = tiny_png(seed)
                c.in_flight_ingests += 1
                try:
                    r = ingest(s, self.url, c.user_id, data, prompt=f"client {c.n} image {i}")
                except requests.RequestException:
                    return  # the server died mid-request: this ingest is unacknowledged
                c.in_flight_ingests -= 1
                if r.status_code != 201:
                    c.errors.append(f"ingest {r.status_code}: {r.text[:200]}")
                    continue
                c.status[r.json()["id"]] = "active"
                c.shas.add(hashlib.sha256(data).hexdigest())
                if i % change_every == change_every - 1 and c.status:
                    if not self._change(s, c, rnd):
                        return

    def _change(self, s: requests.Session, c: Client, rnd: random.Random) -> bool:
        rid = rnd.choice(sorted(c.status))
        action = "delete" if c.status[rid] == "active" else "restore"
        c.uncertain.add(rid)
        try:
            r = s.post(f"{self.url}/api/v1/images/{rid}/{action}", timeout=30)
        except requests.RequestException:
            return False
        if r.status_code != 200:
            c.errors.append(f"{action} {r.status_code}: {r.text[:200]}")
            return True
        c.status[rid] = "trash" if action == "delete" else "active"
        c.uncertain.discard(rid)
        return True

    def verify(self, url: str) -> list[str]:
        """Every acknowledged write is listed as acknowledged; returns the differences."""
        problems: list[str] = []
        for c in self.clients:
            total_a, active = listed(url, c.user_id, "active")
            total_t, trash = listed(url, c.user_id, "trash")
            if total_a != len(active) or total_t != len(trash):
                problems.append(f"{c.user_id}: totals {total_a}/{total_t} differ from the items listed")
            for rid, status in c.status.items():
                where = "active" if rid in active else "trash" if rid in trash else None
                if where is None:
                    problems.append(f"{c.user_id}: acknowledged {rid} is lost")
                elif rid not in c.uncertain and where != status:
                    problems.append(f"{c.user_id}: {rid} is {where}, acknowledged as {status}")
            extra = (active | trash) - set(c.status)
            if len(extra) > c.in_flight_ingests:
                problems.append(f"{c.user_id}: {len(extra)} unacknowledged records, {c.in_flight_ingests} in flight")
            # The unacknowledged ones that survived are now simply records.
            for rid in extra:
                c.status[rid] = "active" if rid in active else "trash"
            for rid in c.uncertain:
                if rid in active or rid in trash:
                    c.status[rid] = "active" if rid in active else "trash"
            c.uncertain.clear()
            c.in_flight_ingests = 0
        return problems
