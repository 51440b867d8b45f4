"""The API under a real gunicorn with 3 workers: a write through one request is seen by every later read."""

from __future__ import annotations

import concurrent.futures as cf
import io
import zipfile

import pytest
import requests

from tests.conftest import INGEST_TOKEN, make_png

XHR = {"X-Requested-With": "XMLHttpRequest"}


@pytest.mark.timeout(120)
def test_write_once_read_through_every_worker(server):
    base = server.url
    browser = requests.Session()
    browser.headers.update(XHR)
    assert browser.get(base + "/api/v1/quota", timeout=10).status_code == 200
    me = browser.cookies["anon_id"].split(".")[0]
    # the pipeline writes a generated image for this visitor
    resp = requests.post(
        base + "/api/v1/ingest",
        files={"file": ("gen.png", make_png(seed=42), "image/png")},
        data={"owner": me, "prompt": "a lighthouse at dusk", "workflow_id": "wf-9"},
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    rec = resp.json()
    # every read, whichever worker serves it, sees the write at once
    for _ in range(24):
        listing = browser.get(base + "/api/v1/images?q=lighthouse", timeout=10).json()
        assert [i["id"] for i in listing["items"]] == [rec["id"]]
        assert browser.get(base + rec["url"], timeout=10).content == make_png(seed=42)
    # the visitor's own writes: an input copy, a favorite, then the trash
    copy = browser.post(base + "/api/v1/inputs/copy", json={"image_id": rec["id"]}, timeout=10)
    assert copy.status_code == 201 and copy.json()["sha256"] == rec["sha256"]
    assert browser.patch(base + f"/api/v1/images/{rec['id']}", json={"favorite": True}, timeout=10).ok
    share = browser.post(base + f"/api/v1/images/{rec['id']}/share", json={"expires_in": 600}, timeout=10).json()
    stranger = requests.Session()
    assert stranger.get(base + share["url"] + "/image", timeout=10).content == make_png(seed=42)
    for _ in range(12):
        assert browser.get(base + "/api/v1/images?favorite=1", timeout=10).json()["total"] == 1
        assert browser.get(base + "/api/v1/inputs", timeout=10).json()["total"] == 1
    archive = browser.get(base + f"/api/v1/images/download.zip?ids={rec['id']}", timeout=10)
    assert zipfile.ZipFile(io.BytesIO(archive.content)).read("gen.png") == make_png(seed=42)
    assert browser.post(base + f"/api/v1/images/{rec['id']}/delete", timeout=10).json()["status"] == "trash"
    for _ in range(12):
        assert browser.get(base + rec["url"], timeout=10).status_code == 404
        assert stranger.get(base + share["url"] + "/image", timeout=10).status_code == 404
        assert browser.get(base + f"/api/v1/images/{rec['id']}", timeout=10).json()["status"] == "trash"
        quota = browser.get(base + "/api/v1/quota", timeout=10).json()
        assert quota["usage"]["trash_count"] == 1 and quota["purge_would_free"]["bytes"] == rec["bytes"]
    # another visitor sees none of it; a cross-site post changes nothing
    other = requests.Session()
    assert other.get(base + f"/api/v1/images/{rec['id']}", timeout=10).status_code == 404
    evil = browser.post(base + f"/api/v1/images/{rec['id']}/restore", timeout=10,
                        headers={"X-Requested-With": "", "Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "csrf_failed"
    assert browser.get(base + f"/api/v1/images/{rec['id']}", timeout=10).json()["status"] == "trash"


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
