"""The admin API: bearer token only, users, images across users, delete/restore, purge-trash."""

from __future__ import annotations

import pytest

from tests.api_helpers import ADMIN, add_image, error_code
from tests.conftest import INGEST_TOKEN, SECRET, make_png, user

ROUTES = [
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/admin/images"),
    ("get", f"/api/v1/admin/images/{'a' * 32}/file"),
    ("get", f"/api/v1/admin/images/{'a' * 32}/thumb"),
    ("post", f"/api/v1/admin/images/{'a' * 32}/delete"),
    ("post", f"/api/v1/admin/images/{'a' * 32}/restore"),
    ("post", "/api/v1/admin/purge-trash"),
]


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-admin-token"},
    {"Authorization": f"Bearer {INGEST_TOKEN}"}, {"Authorization": "Basic dGVzdDp0ZXN0"},
])
def test_admin_needs_the_admin_token(client, method, path, headers):
    resp = getattr(client, method)(path, headers=headers)
    assert resp.status_code == 401 and error_code(resp) == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_admin_disabled_without_a_token(tmp_path):
    from casvault.config import Config
    from web import create_app

    app = create_app(Config(root=tmp_path / "r", secret_key=SECRET))
    resp = app.test_client().get("/api/v1/admin/users", headers={"Authorization": "Bearer "})
    assert resp.status_code == 401 and "disabled" in resp.get_json()["error"]["message"]


def test_admin_users_counts_bytes_and_activity(client, store):
    a, b = user(1), user(2)
    recs_a = [add_image(store, a, seed=i) for i in range(3)]
    add_image(store, a, seed=10, kind="input")
    rec_b = add_image(store, b, seed=20)
    store.trash(a, recs_a[0].id)
    body = client.get("/api/v1/admin/users", headers=ADMIN).get_json()
    assert body["count"] == 2
    rows = {r["user_id"]: r for r in body["users"]}
    ra = rows[a]
    assert ra["count"] == 4 and ra["trash_count"] == 1 and ra["trash_bytes"] == recs_a[0].bytes
    assert ra["by_kind"]["generated"] == {"active": 2, "trash": 1} and ra["by_kind"]["input"] == {"active": 1, "trash": 0}
    assert rows[b]["bytes"] == rec_b.bytes
    assert ra["last_activity"] > rec_b.created_at  # the trash came last
    assert body["users"][0]["user_id"] == a  # most recently active first


def test_admin_images_one_user_and_all_users_merged(client, store):
    times = {}
    for i in range(9):
        owner = user(1 + i % 3)
        rec = add_image(store, owner, seed=i, created_at=f"2026-05-0{1 + i % 9}T12:00:00+00:00")
        times[rec.id] = rec.created_at
    newest_first = sorted(times, key=lambda r: times[r], reverse=True)
    page1 = client.get("/api/v1/admin/images?size=4", headers=ADMIN).get_json()
    assert page1["total"] == 9 and [i["id"] for i in page1["items"]] == newest_first[:4]
    page2 = client.get("/api/v1/admin/images?size=4&page=2", headers=ADMIN).get_json()
    assert [i["id"] for i in page2["items"]] == newest_first[4:8]
    # cursor paging over all users gives the same order
    seen, cursor = [], None
    while True:
        qs = "size=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/v1/admin/images?{qs}", headers=ADMIN).get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == newest_first
    dated = client.get("/api/v1/admin/images?from_date=2026-05-03&to_date=2026-05-05", headers=ADMIN).get_json()
    assert [i["created_at"][:10] for i in dated["items"]] == ["2026-05-05", "2026-05-04", "2026-05-03"]
    assert dated["total"] == 3
    mine = client.get(f"/api/v1/admin/images?user_id={user(2)}", headers=ADMIN).get_json()
    assert mine["total"] == 3 and {i["owner"] for i in mine["items"]} == {user(2)}


def test_admin_images_include_kind_and_bad_params(client, store):
    rec = add_image(store, user(1), seed=1)
    add_image(store, user(1), seed=2, kind="control")
    store.trash(user(1), rec.id)
    trash = client.get("/api/v1/admin/images?include=trash", headers=ADMIN).get_json()
    assert [i["id"] for i in trash["items"]] == [rec.id]
    assert trash["items"][0]["url"] == f"/api/v1/admin/images/{rec.id}/file"
    f = client.get(trash["items"][0]["url"], headers=ADMIN)
    assert f.status_code == 200 and f.data == make_png(seed=1)
    assert client.get(trash["items"][0]["thumb_url"], headers=ADMIN).mimetype == "image/webp"
    assert client.get("/api/v1/admin/images?kind=control", headers=ADMIN).get_json()["total"] == 1
    for bad in ("user_id=../etc", "user_id=anon-XYZ", "kind=other", "include=x", "size=0", "from_date=yesterday",
                "q=fox", "cursor=!!"):
        resp = client.get(f"/api/v1/admin/images?{bad}", headers=ADMIN)
        assert resp.status_code == 400 and error_code(resp) == "bad_request", bad


def test_admin_delete_and_restore_any_user(client, store):
    rec = add_image(store, user(5), seed=1)
    resp = client.post(f"/api/v1/admin/images/{rec.id}/delete", headers=ADMIN)
    assert resp.status_code == 200 and resp.get_json()["status"] == "trash"
    assert store.get(user(5), rec.id).status == "trash"
    assert store.layout.paths(rec, trashed=True)[0].exists()
    assert client.post(f"/api/v1/admin/images/{rec.id}/delete", headers=ADMIN).status_code == 409
    resp = client.post(f"/api/v1/admin/images/{rec.id}/restore", headers=ADMIN)
    assert resp.status_code == 200 and store.get(user(5), rec.id).status == "active"
    missing = client.post(f"/api/v1/admin/images/{'e' * 32}/delete", headers=ADMIN)
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    # a bearer request needs no CSRF header
    plain = client.application.test_client()
    assert plain.post(f"/api/v1/admin/images/{rec.id}/delete", headers=ADMIN).status_code == 200


def test_admin_purge_trash_by_age(client, store, monkeypatch):
    old = add_image(store, user(1), seed=1)
    young = add_image(store, user(2), seed=2)
    active = add_image(store, user(2), seed=3)
    # the first went to the trash long ago: its trash event carries that time
    monkeypatch.setattr("casvault.store.now_iso", lambda: "2026-01-01T00:00:00.000+00:00")
    store.trash(old.owner, old.id)
    monkeypatch.undo()
    store.trash(young.owner, young.id)
    resp = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 1})
    body = resp.get_json()
    assert body["purged"] == [{"id": old.id, "owner": user(1), "bytes": old.bytes}]
    assert body["bytes_freed"] == old.bytes and body["older_than_days"] == 1
    assert not store.layout.paths(old, trashed=True)[1].exists()
    everything = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 0}).get_json()
    assert [p["id"] for p in everything["purged"]] == [young.id]
    assert store.get(user(2), active.id).status == "active"
    default = client.post("/api/v1/admin/purge-trash", headers=ADMIN).get_json()
    assert default["older_than_days"] == 30 and default["count"] == 0
    for bad in ({"older_than_days": -1}, {"older_than_days": "7"}, {"older_than_days": None}, {"x": 1}, [1]):
        resp = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json=bad)
        assert resp.status_code == 400 and error_code(resp) == "bad_request"


def test_admin_purge_trash_dry_run_lists_and_changes_nothing(client, store):
    rec = add_image(store, user(1), seed=4)
    store.trash(rec.owner, rec.id)
    sidecar = store.layout.paths(rec, trashed=True)[1]
    dry = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 0, "dry_run": True})
    assert dry.status_code == 200
    body = dry.get_json()
    assert body["dry_run"] is True and [p["id"] for p in body["purged"]] == [rec.id] and body["count"] == 1
    assert sidecar.exists() and store.get(user(1), rec.id).status == "trash"
    bad = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"dry_run": "yes"})
    assert bad.status_code == 400 and error_code(bad) == "bad_request"
    real = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 0}).get_json()
    assert real["dry_run"] is False and real["count"] == 1 and not sidecar.exists()


def test_admin_purge_trash_answers_what_it_purged_when_one_record_fails(client, store, monkeypatch):
    from casvault import faults

    first, second = add_image(store, user(1), seed=10), add_image(store, user(2), seed=11)
    for rec in (first, second):
        store.trash(rec.owner, rec.id)
    monkeypatch.setenv("CASVAULT_FAULTS", "manifest.append=eio@1")  # the first purge's manifest line fails
    faults.reset()
    try:
        resp = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 0})
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["purged"] == [{"id": second.id, "owner": user(2), "bytes": second.bytes}] and body["count"] == 1
    assert body["failed"] == [{"id": first.id, "owner": user(1), "code": "storage_error",
                               "message": "a storage error stopped the request; nothing was changed"}]
    assert "Input/output" not in resp.get_data(as_text=True)  # server-side details stay in the log
    assert store.get(user(1), first.id).status == "trash"  # still there, to be purged next time
    again = client.post("/api/v1/admin/purge-trash", headers=ADMIN, json={"older_than_days": 0}).get_json()
    assert [p["id"] for p in again["purged"]] == [first.id] and again["failed"] == []
