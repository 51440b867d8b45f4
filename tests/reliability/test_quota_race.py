"""Quota under races: 60 simultaneous ingests for one user through 4 workers never overshoot a limit."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest
import requests

from tests.reliability import consistency
from tests.reliability.clients import cookie, ingest, listed, owner, server, tiny_png

ATTEMPTS = 60
LIMIT = 25


def _race(url: str, user_id: str, images: list[bytes]) -> list[requests.Response]:
    start = threading.Barrier(len(images))

    def one(data: bytes) -> requests.Response:
        with requests.Session() as s:
            start.wait()
            return ingest(s, url, user_id, data, timeout=60)

    with cf.ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(one, images))


def _assert_exactly_limit(url: str, root, user_id: str, answers: list[requests.Response]) -> None:
    codes = sorted(r.status_code for r in answers)
    assert codes.count(201) == LIMIT, codes
    assert codes.count(507) == ATTEMPTS - LIMIT, codes
    for r in answers:
        if r.status_code == 507:
            assert r.json()["error"]["code"] == "quota_exceeded", r.text
    accepted = {r.json()["id"] for r in answers if r.status_code == 201}
    for _ in range(12):  # every worker's view
        total, ids = listed(url, user_id)
        assert (total, ids) == (LIMIT, accepted)
    quota = requests.get(url + "/api/v1/quota", cookies=cookie(user_id), timeout=10).json()
    assert quota["usage"]["count"] == LIMIT
    rep = consistency.check(root)
    assert rep.problems == [], rep.problems
    assert rep.ids(user_id) == accepted


@pytest.mark.parametrize("limit", ["count", "bytes"])
def test_concurrent_ingests_stop_exactly_at_the_limit(tmp_path, limit):
    # NOTE: uncompressed PNGs of one size all have the same length, so the
    # byte limit admits exactly LIMIT of them, as the count limit does.
    images = [tiny_png(9000 + i, size=20, compress=0) for i in range(ATTEMPTS)]
    assert len({len(b) for b in images}) == 1 and len(set(images)) == ATTEMPTS
    env = (
        {"CASVAULT_QUOTA_MAX_COUNT": str(LIMIT)} if limit == "count"
        else {"CASVAULT_QUOTA_MAX_BYTES": str(LIMIT * len(images[0]))}
    )
    root = tmp_path / "root"
    srv = server(root, **env)
    srv.start()
    try:
        user_id = owner(4242)
        _assert_exactly_limit(srv.url, root, user_id, _race(srv.url, user_id, images))
    finally:
        srv.stop()
