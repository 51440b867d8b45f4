"""Process kill: SIGKILL a 4-worker gunicorn under 12 writing clients; after fsck --repair nothing acknowledged is lost."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from tests.reliability import consistency
from tests.reliability.clients import server
from tests.reliability.workload import Workload

SOAK = os.environ.get("CASVAULT_SOAK") == "1"


def kill_rounds(tmp_path, rounds: int, seed: int = 1) -> int:
    """Run ``rounds`` kill rounds over one root; returns the number of acknowledged records at the end."""
    root = tmp_path / "root"
    work = Workload("", 12, seed=seed)
    rnd = random.Random(seed)
    for n in range(rounds):
        srv = server(root, workers=4)
        srv.start()
        if n:
            problems = work.verify(srv.url)
            assert problems == [], f"after kill {n}: " + "\n".join(problems[:20])
        work.url = srv.url
        work.stop.clear()
        threads = [threading.Thread(target=work.run_client, args=(c, 10_000)) for c in work.clients]
        for t in threads:
            t.start()
        time.sleep(0.8 + rnd.random() * 1.2)
        srv.kill()
        work.stop.set()
        for t in threads:
            t.join(30)
        assert not [c.errors for c in work.clients if c.errors]
        repair = consistency.run_cli(root, "fsck", "--repair")
        assert "Traceback" not in repair.stderr, repair.stderr
        verdict = consistency.run_cli(root, "fsck")
        assert verdict.returncode == 0, f"round {n}: {verdict.stdout}{verdict.stderr}"
        rep = consistency.check(root)
        assert rep.problems == [], f"round {n}: " + "\n".join(rep.problems[:20])
    srv = server(root, workers=4)
    srv.start()
    try:
        problems = work.verify(srv.url)
        assert problems == [], "after the last kill: " + "\n".join(problems[:20])
    finally:
        srv.stop()
    return sum(len(c.status) for c in work.clients)


def test_kill_mid_flight_three_rounds(tmp_path):
    assert kill_rounds(tmp_path, 3) > 100


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="soak: run with make soak (CASVAULT_SOAK=1)")
def test_kill_soak(tmp_path):
    assert kill_rounds(tmp_path, 25, seed=7) > 1000
