"""The images API: get, patch, trash, restore, purge, files, bulk, listings, isolation and CSRF."""

from __future__ import annotations

import io
import os

import pytest

from tests.api_helpers import add_image, error_code, new_client, visitor
from tests.conftest import make_png

API = "/api/v1/images"


@pytest.fixture
def me(client):
    """The test client's guest id."""
    return visitor(client)


def test_get_image_serializes_record_with_urls(client, store, me):
    rec = add_image(store, me, prompt="a red fox", workflow_id="wf1")
    body = client.get(f"{API}/{rec.id}").get_json()
    assert body["id"] == rec.id and body["owner"] == me and body["prompt"] == "a red fox"
    assert body["url"].startswith(f"/outputs/users/{me}/") and body["url"].endswith(f"/{rec.id}.png")
    assert body["thumb_url"].endswith(f"/thumb/{rec.id}.webp")
    assert client.get(body["url"]).data == make_png(seed=0)


def test_patch_sets_tags_and_favorite_in_the_sidecar(client, store, me):
    rec = add_image(store, me)
    resp = client.patch(f"{API}/{rec.id}", json={"tags": ["cat", " cat ", "dog"], "favorite": True})
    assert resp.status_code == 200
    assert resp.get_json()["tags"] == ["cat", "dog"] and resp.get_json()["favorite"] is True
    sidecar = store.layout.sidecar_path(rec).read_text()
    assert '"favorite":true' in sidecar and '"cat","dog"' in sidecar
    assert client.get(f"{API}?favorite=1").get_json()["total"] == 1
    assert client.get(f"{API}?tag=dog").get_json()["items"][0]["id"] == rec.id


@pytest.mark.parametrize("body", [
    [], "tags", {"tags": "a,b"}, {"tags": [1]}, {"favorite": "yes"}, {"favorite": None}, {"other": 1},
    {"tags": ["x" * 65]}, {"tags": ["bad\x00"]},
])
def test_patch_refuses_bad_bodies_and_changes_nothing(client, store, me, body):
    rec = add_image(store, me)
    before = store.layout.sidecar_path(rec).read_bytes()
    resp = client.patch(f"{API}/{rec.id}", json=body)
    assert resp.status_code == 400 and error_code(resp) == "bad_request"
    assert store.layout.sidecar_path(rec).read_bytes() == before


def test_patch_with_non_json_body_is_400(client, store, me):
    rec = add_image(store, me)
    resp = client.patch(f"{API}/{rec.id}", data=b"\xff\xfe not json", content_type="application/json")
    assert resp.status_code == 400 and error_code(resp) == "bad_request"


def test_delete_restore_purge_cycle_moves_files(client, store, me):
    rec = add_image(store, me)
    image, sidecar, thumb = store.layout.paths(rec)
    resp = client.post(f"{API}/{rec.id}/delete")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "trash" and body["trashed_at"]
    assert body["url"] == f"{API}/{rec.id}/file" and body["thumb_url"] == f"{API}/{rec.id}/thumb"
    t_image, t_sidecar, t_thumb = store.layout.paths(rec, trashed=True)
    assert t_image.exists() and t_sidecar.exists() and t_thumb.exists()
    assert not image.exists() and not sidecar.exists()
    assert client.get(image.as_posix().replace(str(store.layout.outputs), "/outputs")).status_code == 404
    # the owner still reaches the trashed files
    f = client.get(body["url"])
    assert f.status_code == 200 and f.data == make_png(seed=0) and f.mimetype == "image/png"
    assert f.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(body["thumb_url"]).mimetype == "image/webp"
    # twice is a conflict
    assert client.post(f"{API}/{rec.id}/delete").status_code == 409
    resp = client.post(f"{API}/{rec.id}/restore")
    assert resp.status_code == 200 and resp.get_json()["status"] == "active"
    assert image.exists() and not t_image.exists()
    assert client.post(f"{API}/{rec.id}/restore").status_code == 409
    # purge only from the trash
    resp = client.post(f"{API}/{rec.id}/purge")
    assert resp.status_code == 409 and error_code(resp) == "conflict"
    client.post(f"{API}/{rec.id}/delete")
    resp = client.post(f"{API}/{rec.id}/purge")
    assert resp.status_code == 200 and resp.get_json() == {"id": rec.id, "purged": True, "bytes": rec.bytes}
    assert not t_image.exists() and not t_sidecar.exists() and not t_thumb.exists()
    assert client.get(f"{API}/{rec.id}").status_code == 404
    assert store.blobs.has(rec.sha256)  # only gc removes blobs


def test_file_endpoint_etag_and_conditional_get(client, store, me):
    rec = add_image(store, me)
    resp = client.get(f"{API}/{rec.id}/file")
    assert resp.headers["ETag"] == f'"{rec.sha256}"'
    assert "private" in resp.headers["Cache-Control"]
    again = client.get(f"{API}/{rec.id}/file", headers={"If-None-Match": f'"{rec.sha256}"'})
    assert again.status_code == 304 and again.data == b""
    dl = client.get(f"{API}/{rec.id}/file?download=1")
    assert dl.headers["Content-Disposition"].startswith("attachment")


def test_purge_trash_empties_every_kind(client, store, me):
    keep = add_image(store, me, seed=1)
    gone = [add_image(store, me, seed=2), add_image(store, me, seed=3, kind="input")]
    for rec in gone:
        store.trash(me, rec.id)
    quota = client.get("/api/v1/quota").get_json()
    assert quota["purge_would_free"] == {"count": 2, "bytes": sum(r.bytes for r in gone)}
    resp = client.post(f"{API}/purge-trash")
    body = resp.get_json()
    assert resp.status_code == 200 and sorted(body["purged"]) == sorted(r.id for r in gone)
    assert body["bytes_freed"] == sum(r.bytes for r in gone) and body["count"] == 2
    assert client.get("/api/v1/quota").get_json()["usage"] == {
        "count": 1, "bytes": keep.bytes, "trash_count": 0, "trash_bytes": 0,
    }


def test_quota_answer(client, store, me, app):
    recs = [add_image(store, me, seed=i) for i in range(3)]
    store.trash(me, recs[0].id)
    body = client.get("/api/v1/quota").get_json()
    total = sum(r.bytes for r in recs)
    assert body["usage"] == {"count": 3, "bytes": total, "trash_count": 1, "trash_bytes": recs[0].bytes}
    assert body["limits"] == {"max_bytes": None, "max_count": None} and body["percent"] is None
    assert body["retention_days"] == 30


def test_quota_exceeded_is_507_with_usage(tmp_path):
    from casvault.config import Config
    from web import create_app

    from tests.conftest import SECRET

    app = create_app(Config(root=tmp_path / "q", secret_key=SECRET, quota_max_count=2, thumb_size=32))
    c = new_client(app)
    me = visitor(c)
    image = add_image(app.extensions["casvault.store"], me, seed=9)
    ok = c.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=1)), "a.png")})
    assert ok.status_code == 201
    body = c.get("/api/v1/quota").get_json()
    assert body["limits"]["max_count"] == 2 and body["percent"] == 100.0
    resp = c.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=2)), "b.png")})
    assert resp.status_code == 507 and error_code(resp) == "quota_exceeded"
    assert resp.get_json()["error"]["usage"]["count"] == 2
    copy = c.post("/api/v1/inputs/copy", json={"image_id": image.id})
    assert copy.status_code == 507 and error_code(copy) == "quota_exceeded"
    assert c.get("/api/v1/inputs").get_json()["total"] == 1


def test_bulk_answers_per_id(client, store, me):
    a, b = add_image(store, me, seed=1), add_image(store, me, seed=2)
    missing = "f" * 32
    resp = client.post(f"{API}/bulk", json={"action": "delete", "ids": [a.id, missing, b.id, "../x"]})
    results = resp.get_json()["results"]
    assert resp.status_code == 200 and [r["ok"] for r in results] == [True, False, True, False]
    assert results[1]["error"]["code"] == "not_found" and results[0]["item"]["status"] == "trash"
    again = client.post(f"{API}/bulk", json={"action": "delete", "ids": [a.id]}).get_json()["results"][0]
    assert again["ok"] is False and again["error"]["code"] == "conflict"
    client.post(f"{API}/bulk", json={"action": "restore", "ids": [a.id, b.id]})
    client.post(f"{API}/bulk", json={"action": "favorite", "ids": [a.id]})
    client.post(f"{API}/bulk", json={"action": "tag", "ids": [a.id, b.id], "tags": ["x", "y"]})
    client.post(f"{API}/bulk", json={"action": "untag", "ids": [b.id], "tags": ["x"]})
    assert store.get(me, a.id).favorite is True and store.get(me, a.id).tags == ["x", "y"]
    assert store.get(me, b.id).tags == ["y"] and store.get(me, b.id).status == "active"
    client.post(f"{API}/bulk", json={"action": "unfavorite", "ids": [a.id]})
    assert store.get(me, a.id).favorite is False
    client.post(f"{API}/bulk", json={"action": "delete", "ids": [b.id]})
    purge = client.post(f"{API}/bulk", json={"action": "purge", "ids": [a.id, b.id]}).get_json()["results"]
    assert purge[0]["ok"] is False and purge[0]["error"]["code"] == "conflict"
    assert purge[1] == {"id": b.id, "ok": True, "item": None, "bytes": b.bytes}


@pytest.mark.parametrize("body", [
    {"action": "explode", "ids": ["a"]},
    {"action": "delete", "ids": []},
    {"action": "delete", "ids": "abc"},
    {"action": "delete", "ids": [1, 2]},
    {"action": "delete", "ids": ["a"] * 501},
    {"action": "tag", "ids": ["a"]},
    {"action": "delete", "ids": ["a"], "tags": ["x"]},
    {"action": "delete", "ids": ["a"], "more": 1},
    ["delete"],
])
def test_bulk_refuses_bad_requests(client, store, me, body):
    rec = add_image(store, me)
    resp = client.post(f"{API}/bulk", json=body)
    assert resp.status_code == 400 and error_code(resp) == "bad_request"
    assert store.get(me, rec.id).status == "active"


def test_two_visitors_cannot_see_or_touch_each_other(app, store):
    alice, bob = new_client(app), new_client(app)
    a_id, b_id = visitor(alice), visitor(bob)
    assert a_id != b_id
    rec = add_image(store, a_id, prompt="alice's secret")
    assert bob.get(API).get_json()["total"] == 0
    for method, path, kw in [
        ("get", f"{API}/{rec.id}", {}),
        ("get", f"{API}/{rec.id}/file", {}),
        ("get", f"{API}/{rec.id}/thumb", {}),
        ("patch", f"{API}/{rec.id}", {"json": {"favorite": True}}),
        ("post", f"{API}/{rec.id}/delete", {}),
        ("post", f"{API}/{rec.id}/restore", {}),
        ("post", f"{API}/{rec.id}/purge", {}),
        ("post", f"{API}/{rec.id}/share", {}),
        ("get", f"{API}/download.zip?ids={rec.id}", {}),
        ("post", "/api/v1/inputs/copy", {"json": {"image_id": rec.id}}),
        ("post", "/api/v1/controls/copy", {"json": {"image_id": rec.id}}),
    ]:
        resp = getattr(bob, method)(path, **kw)
        assert resp.status_code == 404, (method, path, resp.status_code)
        assert error_code(resp) == "not_found"
    bulk = bob.post(f"{API}/bulk", json={"action": "delete", "ids": [rec.id]}).get_json()["results"][0]
    assert bulk["ok"] is False and bulk["error"]["code"] == "not_found"
    assert bob.post(f"{API}/purge-trash").get_json()["count"] == 0
    after = store.get(a_id, rec.id)
    assert after.status == "active" and after.favorite is False
    assert alice.get(f"{API}/{rec.id}").status_code == 200


def test_listing_filters(client, store, me):
    add_image(store, me, seed=1, prompt="A Red fox in snow", aspect_ratio="16:9", workflow_id="w1",
              created_at="2026-01-02T10:00:00+00:00")
    add_image(store, me, seed=2, prompt="blue fox", aspect_ratio="1:1", workflow_id="w2",
              created_at="2026-01-05T10:00:00+00:00")
    def ids(qs):
        return [i["prompt"] for i in client.get(f"{API}?{qs}").get_json()["items"]]
    assert ids("") == ["blue fox", "A Red fox in snow"]
    assert ids("q=fox+red") == ["A Red fox in snow"]
    assert ids("aspect_ratio=1:1") == ["blue fox"]
    assert ids("workflow_id=w1") == ["A Red fox in snow"]
    assert ids("from_date=2026-01-03") == ["blue fox"]
    assert ids("to_date=2026-01-02") == ["A Red fox in snow"]
    assert ids("from_date=2026-01-03&to_date=2026-01-04") == []
    for bad in ("page=0", "size=1000", "include=gone", "from_date=2026-1-3", "favorite=maybe", "cursor=@@@"):
        resp = client.get(f"{API}?{bad}")
        assert resp.status_code == 400 and error_code(resp) == "bad_request", bad


def test_cursor_paging_is_stable_while_images_are_added(client, store, me):
    first = [add_image(store, me, seed=i, created_at=f"2026-03-01T10:00:{i:02d}+00:00") for i in range(7)]
    expected = [r.id for r in reversed(first)]
    page1 = client.get(f"{API}?size=3").get_json()
    seen = [i["id"] for i in page1["items"]]
    # new images arrive (newer than everything) between page fetches
    for i in range(4):
        add_image(store, me, seed=100 + i)
    cursor = page1["next_cursor"]
    while cursor:
        page = client.get(f"{API}?size=3&cursor={cursor}").get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        add_image(store, me, seed=200 + len(seen))
    assert seen == expected  # no duplicates, no gaps, same order


def test_csrf_cross_site_form_posts_are_refused_and_change_nothing(app, store):
    victim = app.test_client()  # a browser: the cookie, but no X-Requested-With
    me = visitor(victim)
    rec = add_image(store, me)
    evil = {"Origin": "http://evil.example"}
    attempts = [
        ("post", f"{API}/{rec.id}/delete", {}),
        ("patch", f"{API}/{rec.id}", {"json": {"favorite": True}}),
        ("post", f"{API}/bulk", {"data": {"action": "delete", "ids": rec.id}}),
        ("post", f"{API}/{rec.id}/share", {}),
        ("post", f"{API}/purge-trash", {}),
        ("post", "/api/v1/inputs/copy", {"json": {"image_id": rec.id}}),
        ("post", "/api/v1/inputs/upload", {"data": {"file": ("PNG", "x.png")}}),
    ]
    for method, path, kw in attempts:
        for headers in (evil, {"Referer": "http://evil.example/page"}, {}):
            if "data" in kw and "file" in kw["data"]:
                kw = {"data": {"file": (io.BytesIO(make_png(seed=5)), "x.png")}}
            resp = getattr(victim, method)(path, headers=headers, **kw)
            assert resp.status_code == 403 and error_code(resp) == "csrf_failed", (path, headers)
    assert store.get(me, rec.id).status == "active" and store.get(me, rec.id).favorite is False
    assert store.usage(me).count == 1
    # the same browser from the same origin is fine
    ok = victim.post(f"{API}/{rec.id}/delete", headers={"Origin": "http://localhost"})
    assert ok.status_code == 200


def test_unknown_routes_and_methods_answer_json(client):
    resp = client.get("/api/v1/nothing")
    assert resp.status_code == 404 and error_code(resp) == "not_found"
    resp = client.put(f"{API}/{'a' * 32}")
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"] and error_code(resp) == "method_not_allowed"


def test_trashed_projection_inode_is_the_blob(client, store, me):
    rec = add_image(store, me)
    client.post(f"{API}/{rec.id}/delete")
    t_image = store.layout.paths(rec, trashed=True)[0]
    if store.link_mode == "hardlink":
        assert os.stat(t_image).st_ino == os.stat(store.blobs.path(rec.sha256)).st_ino
    assert t_image.read_bytes() == make_png(seed=0)


def test_purge_trash_lists_a_record_that_failed(client, store, me, monkeypatch):
    from casvault import faults

    gone = [add_image(store, me, seed=70), add_image(store, me, seed=71)]
    for rec in gone:
        store.trash(me, rec.id)
    monkeypatch.setenv("CASVAULT_FAULTS", "manifest.append=eio@2")
    faults.reset()
    try:
        resp = client.post(f"{API}/purge-trash")
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    body = resp.get_json()
    assert resp.status_code == 200 and body["count"] == 1 and len(body["failed"]) == 1
    failed = body["failed"][0]
    assert failed["code"] == "storage_error" and "owner" not in failed
    assert sorted(body["purged"] + [failed["id"]]) == sorted(r.id for r in gone)
    assert store.get(me, failed["id"]).status == "trash"


def test_bulk_by_filter_acts_on_the_whole_filtered_listing(client, store, me):
    """Select-all over a filtered listing: the server finds the ids itself, beyond any page, less ``except``."""
    tagged = [add_image(store, me, seed=i, tags=["keep"]) for i in range(7)]
    other = add_image(store, me, seed=99)
    spared = tagged[3].id
    resp = client.post(f"{API}/bulk", json={"action": "delete", "filter": {"tag": "keep"}, "except": [spared]})
    assert resp.status_code == 200
    results = resp.get_json()["results"]
    assert sorted(r["id"] for r in results) == sorted(r.id for r in tagged if r.id != spared)
    assert all(r["ok"] for r in results)
    assert [store.get(me, r.id).status for r in tagged].count("trash") == 6
    assert store.get(me, spared).status == "active" and store.get(me, other.id).status == "active"
    # The trash view's "restore all": the filter names the trash.
    back = client.post(f"{API}/bulk", json={"action": "restore", "filter": {"include": "trash"}}).get_json()["results"]
    assert len(back) == 6 and all(store.get(me, r.id).status == "active" for r in tagged)


@pytest.mark.parametrize("body", [
    {"action": "delete", "filter": {"tag": "x"}, "ids": ["a"]},
    {"action": "delete", "filter": {"owner": "someone"}},
    {"action": "delete", "filter": "tag=x"},
    {"action": "delete", "filter": {"include": "everything"}},
    {"action": "delete", "filter": {}, "except": "abc"},
])
def test_bulk_by_filter_refuses_bad_filters(client, store, me, body):
    rec = add_image(store, me)
    resp = client.post(f"{API}/bulk", json=body)
    assert resp.status_code == 400 and error_code(resp) == "bad_request"
    assert store.get(me, rec.id).status == "active"


def test_listing_since_answers_only_newer_records(client, store, me):
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    old = add_image(store, me, seed=1, created_at=start)
    new = add_image(store, me, seed=2, created_at=start + timedelta(minutes=5))
    body = client.get(f"{API}", query_string={"since": old.created_at}).get_json()
    assert [i["id"] for i in body["items"]] == [new.id] and body["total"] == 1 and body["next_cursor"] is None
    assert client.get(f"{API}", query_string={"since": new.created_at}).get_json()["items"] == []
    resp = client.get(f"{API}?since=yesterday")
    assert resp.status_code == 400 and error_code(resp) == "bad_request"


def test_ingest_stores_the_thumbnails_average_colour(client, store, me):
    """The gallery tints a tile with ``color`` while its thumbnail loads: the average colour, kept in the sidecar."""
    import io as _io

    from PIL import Image

    buf = _io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 60)).save(buf, "PNG")
    rec = store.ingest(buf.getvalue(), me, "generated").record
    assert rec.color is not None
    r, g, b = (int(rec.color[i:i + 2], 16) for i in (1, 3, 5))
    assert abs(r - 200) <= 6 and abs(g - 30) <= 6 and abs(b - 60) <= 6
    assert f'"color":"{rec.color}"' in store.layout.sidecar_path(rec).read_text()
    assert client.get(f"{API}/{rec.id}").get_json()["color"] == rec.color
