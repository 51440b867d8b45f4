"""A real gunicorn with 3 workers: a write through one worker is listed by all."""

import concurrent.futures as cf

import requests

from tests.conftest import INGEST_TOKEN, make_png, user

OWNER = user(77)


def _unused(url):
    r = requests.get(url + "/api/v1/images", cookies={}, timeout=10)
    assert r.status_code == 200
    return r


def test_write_via_one_worker_is_seen_by_all(server):
    session_cookie = requests.get(server.url + "/api/v1/images", timeout=10).cookies["anon_id"]
    owner = session_cookie.split(".")[0]

    def listing(_):
        with requests.Session() as s:  # a new connection each time, spread over the workers
            s.cookies.set("anon_id", session_cookie)
            r = s.get(server.url + "/api/v1/images?size=200", timeout=10)
            assert r.status_code == 200
            return {it["id"] for it in r.json()["items"]}

    with cf.ThreadPoolExecutor(6) as pool:
        assert all(ids == set() for ids in pool.map(listing, range(30)))  # every worker has loaded the index
    made = set()
    for i in range(3):
        r = requests.post(
            server.url + "/api/v1/ingest",
            files={"file": ("a.png", make_png(seed=i))},
            data={"owner": owner, "prompt": f"p{i}"},
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        made.add(r.json()["id"])
    with cf.ThreadPoolExecutor(6) as pool:
        assert all(ids == made for ids in pool.map(listing, range(60)))
