"""Traversal and encoding tricks on every path parameter of every documented route: 404/400 JSON, nothing served or changed."""

from __future__ import annotations

import re

import pytest

from tests.api_helpers import ADMIN, add_image, visitor
from tests.conftest import INGEST_TOKEN, make_png

TRICKS = [
    "..", "%2e%2e", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fmeta", "%252e%252e%252f",
    "%2f", "a%2fb", "%00", "a" * 31 + "%00", "%c0%ae%c0%ae", "%C3%A4" * 32, "\u0430" * 32,
    "A" * 32, "g" * 32, "a" * 33, "a" * 10_000, "....//....//", "%5c..%5c..", "~root", " " * 32,
]


def _documented_ops(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, item in doc["paths"].items():
        if "{rid}" not in path and "{token}" not in path:
            continue
        for method in item:
            yield path, method


@pytest.mark.parametrize("trick", TRICKS)
def test_every_path_parameter_refuses_tricks(client, store, trick):
    me = visitor(client)
    rec = add_image(store, me)
    before = store.usage(me)
    blob = make_png(seed=0)
    for path, method in _documented_ops(client):
        url = path.replace("{rid}", trick).replace("{token}", trick)
        headers = {}
        if "/admin/" in path:
            headers = dict(ADMIN)
        elif path.endswith("/stage"):
            headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
        kwargs = {"json": {"owner": me}} if method in ("post", "patch") else {}
        # NOTE: an encoded slash may make Werkzeug redirect (308) to the merged path: followed.
        resp = getattr(client, method)(url, headers=headers, follow_redirects=True, **kwargs)
        assert resp.status_code in (400, 404), (method, url[:80], resp.status_code)
        assert resp.data != blob
        final = resp.request.path
        if re.fullmatch(r"/s/[^/]+", final):
            assert resp.mimetype == "text/html" or resp.is_json  # the share page's own 404
        elif resp.is_json:
            assert resp.get_json()["error"]["code"] in ("not_found", "bad_request")
        else:
            # only a URL that the router could not match at all answers without our JSON
            assert resp.status_code == 404 and not final.startswith(("/api/", "/s/")), url
    assert store.usage(me) == before
    assert store.get(me, rec.id).status == "active"


@pytest.mark.parametrize("trick", TRICKS)
def test_zip_ids_and_query_user_ids_refuse_tricks(client, store, trick):
    me = visitor(client)
    add_image(store, me)
    resp = client.get(f"/api/v1/images/download.zip?ids={trick}")
    assert resp.status_code in (400, 404) and resp.is_json
    resp = client.get(f"/api/v1/admin/images?user_id={trick}", headers=ADMIN)
    assert resp.status_code == 400 and resp.is_json
    body = client.post("/api/v1/images/bulk", json={"action": "delete", "ids": [trick]}).get_json()
    assert body["results"][0]["ok"] is False
    assert store.usage(me).trash_count == 0


def test_redirects_never_carry_the_client_host_header(app):
    """Werkzeug's routing redirects (doubled slashes) answer a relative Location, not one built from Host."""
    client = app.test_client()
    for path in ("/api/v1//images", "/s//abc", "/outputs//users/x.png", "/api/v1//images?page=2"):
        resp = client.get(path, headers={"Host": "evil.example"})
        assert resp.status_code == 308, path
        location = resp.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert b"evil.example" not in resp.data and "evil.example" not in location, path
    assert client.get("/api/v1//images", headers={"Host": "evil.example"}).headers["Location"] == "/api/v1/images"
