"""Share links: opaque tokens kept in a share table, expiry, revocation, trash, old tokens, merge, and the public page."""

from __future__ import annotations

import base64
import re

import pytest
from itsdangerous import URLSafeSerializer

from casvault import shares
from casvault.errors import Conflict, InvalidInput, NotFound
from casvault.merge import merge_users
from tests.api_helpers import add_image, error_code, new_client, visitor
from tests.conftest import INGEST_TOKEN, SECRET, make_png, user

TOKEN = re.compile(r"/s/([A-Za-z0-9_-]{32})")


@pytest.fixture
def me(client):
    """The test client's guest id."""
    return visitor(client)


def share(client, rid: str, **body) -> dict:
    """Make a link through the API; returns its JSON."""
    resp = client.post(f"/api/v1/images/{rid}/share", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_token_is_opaque_and_kept_in_the_owners_table(store):
    rec = add_image(store, user(1))
    made = store.shares.create(rec, 3600)
    assert TOKEN.fullmatch(made.url) and made.id == made.url[3:]
    raw = base64.urlsafe_b64decode(made.id + "=" * (-len(made.id) % 4))
    for secret_part in (user(1), user(1)[5:], rec.id, rec.id[:8]):
        assert secret_part not in made.id and secret_part.encode() not in raw
    table = store.layout.meta / "users" / user(1) / "shares.json"
    pointer = store.layout.meta / "shares" / made.id
    assert made.id.encode() in table.read_bytes() and pointer.read_text().strip() == user(1)
    assert store.shares.find(made.id) == (made, rec)
    assert store.shares.create(rec).id != made.id  # every link is a fresh token


def test_expiry(store, monkeypatch):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(shares, "_now", lambda: clock[0])
    made = store.shares.create(add_image(store, user(1)), 60)
    assert made.expires_at == 1_800_000_060 and made.expires_iso == "2027-01-15T08:01:00+00:00"
    clock[0] += 59
    assert store.shares.find(made.id)[0].image == made.image
    clock[0] += 1
    with pytest.raises(NotFound):
        store.shares.find(made.id)
    assert store.shares.of(user(1)) == []
    with pytest.raises(NotFound):
        store.shares.revoke(user(1), made.id)


@pytest.mark.parametrize("bad", [None, True, 59, 365 * 24 * 3600 + 1, "60", 1.5, -5])
def test_expires_in_bounds(bad):
    if bad is None:
        assert shares.check_expires_in(bad) == shares.DEFAULT_EXPIRES_IN
        return
    with pytest.raises(InvalidInput):
        shares.check_expires_in(bad)


def test_unknown_tampered_and_old_format_tokens_are_not_found(store):
    rec = add_image(store, user(1))
    token = store.shares.create(rec).id
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    # the old signed format ([owner, id, expires_at, issued_at] under the secret) is dead
    old = URLSafeSerializer(SECRET, salt="casvault.share").dumps([user(1), rec.id, 2**40, "2026-01-01T00:00:00.000+00:00"])
    for bad in (flipped, token + "x", token[:-2], "", "x" * 1000, "../" + token[3:], old, None, "." * 32):
        with pytest.raises(NotFound):
            store.shares.find(bad)


def test_share_link_serves_page_and_image_to_anyone(app, client, store, me):
    rec = add_image(store, me, prompt='<script>alert("x")</script> a fox')
    body = share(client, rec.id, expires_in=3600)
    url = body["url"]
    assert TOKEN.fullmatch(url) and body["id"] == url[3:] and body["image_id"] == rec.id
    assert body["expires_at"].endswith("+00:00") and body["created_at"].endswith("+00:00")
    stranger = app.test_client()
    page = stranger.get(url)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'src="{url}/image"' in html
    assert "/outputs/" not in html and rec.id not in html and me not in html  # nothing that outlives the link
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "private, no-store"
    assert stranger.get_cookie("anon_id") is None  # no identity handed out on a share link
    image = stranger.get(url + "/image")
    assert image.status_code == 200 and image.data == make_png(seed=0) and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Cache-Control"] == "private, no-store"


def test_share_link_dies_with_trash_and_expiry(app, client, store, me, monkeypatch):
    rec = add_image(store, me)
    url = share(client, rec.id)["url"]
    stranger = app.test_client()
    assert stranger.get(url + "/image").status_code == 200
    client.post(f"/api/v1/images/{rec.id}/delete")
    gone = stranger.get(url + "/image")
    assert gone.status_code == 404 and error_code(gone) == "not_found"
    page = stranger.get(url)
    assert page.status_code == 404 and page.mimetype == "text/html"
    # a trashed image cannot be shared
    resp = client.post(f"/api/v1/images/{rec.id}/share")
    assert resp.status_code == 409 and error_code(resp) == "conflict"
    assert client.get("/api/v1/shares").get_json() == {"shares": []}
    client.post(f"/api/v1/images/{rec.id}/restore")
    assert stranger.get(url + "/image").status_code == 404  # a link made before the trashing stays dead
    assert client.get("/api/v1/shares").get_json() == {"shares": []}
    short = share(client, rec.id, expires_in=60)["url"]
    assert stranger.get(short + "/image").status_code == 200
    real_now = shares._now()
    monkeypatch.setattr(shares, "_now", lambda: real_now + 61)
    assert stranger.get(short + "/image").status_code == 404
    assert stranger.get(short).status_code == 404


def test_revoke_and_list(app, client, store, me):
    a = add_image(store, me, seed=1)
    b = add_image(store, me, seed=2)
    first = share(client, a.id, expires_in=600)
    second = share(client, b.id)
    listed = client.get("/api/v1/shares").get_json()["shares"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]] and listed[1] == first
    # another visitor can neither see nor revoke them
    other = new_client(app)
    assert other.get("/api/v1/shares").get_json() == {"shares": []}
    resp = other.delete(f"/api/v1/shares/{first['id']}")
    assert resp.status_code == 404 and error_code(resp) == "not_found"
    # a cross-site revoke is refused like any cookie-authenticated write
    assert app.test_client().delete(f"/api/v1/shares/{first['id']}", headers={"Origin": "https://evil.example"}).status_code == 403
    stranger = app.test_client()
    assert stranger.get(first["url"] + "/image").status_code == 200
    resp = client.delete(f"/api/v1/shares/{first['id']}")
    assert resp.status_code == 200 and resp.get_json() == {"id": first["id"], "revoked": True}
    assert stranger.get(first["url"] + "/image").status_code == 404
    assert stranger.get(first["url"]).status_code == 404
    assert not (store.layout.meta / "shares" / first["id"]).exists()
    assert client.delete(f"/api/v1/shares/{first['id']}").status_code == 404
    assert [s["id"] for s in client.get("/api/v1/shares").get_json()["shares"]] == [second["id"]]
    assert stranger.get(second["url"] + "/image").status_code == 200  # the other link lives on
    for bad in ("nope", "..", "%2e%2e", "a" * 500):
        assert client.delete(f"/api/v1/shares/{bad}").status_code == 404
    client.delete(f"/api/v1/shares/{second['id']}")
    assert not (store.layout.meta / "users" / me / "shares.json").exists()  # an empty table is removed


def test_too_many_live_links_and_dead_ones_leave_the_table(store, monkeypatch):
    monkeypatch.setattr(shares, "MAX_LIVE_SHARES", 3)
    rec = add_image(store, user(1))
    made = [store.shares.create(rec) for _ in range(3)]
    with pytest.raises(Conflict):
        store.shares.create(rec)
    store.shares.revoke(user(1), made[0].id)
    store.shares.create(rec)
    # links to a trashed image are dead: they neither count nor stay (nor does their pointer)
    other = add_image(store, user(1), seed=1)
    store.trash(user(1), rec.id)
    assert store.shares.of(user(1)) == []
    fresh = store.shares.create(other)
    table = (store.layout.meta / "users" / user(1) / "shares.json").read_bytes()
    assert [s.id for s in store.shares.of(user(1))] == [fresh.id] and table.count(b'"id"') == 1
    assert sorted(p.name for p in (store.layout.meta / "shares").iterdir()) == [fresh.id]


def test_share_refuses_bad_expiry_and_foreign_ids(app, client, store, me):
    rec = add_image(store, me)
    for body in ({"expires_in": 10}, {"expires_in": "3600"}, {"expires_in": None}, {"nope": 1}, [1]):
        resp = client.post(f"/api/v1/images/{rec.id}/share", json=body)
        assert resp.status_code == 400 and error_code(resp) == "bad_request", body
    other = add_image(store, user(9), seed=4)
    resp = client.post(f"/api/v1/images/{other.id}/share")
    assert resp.status_code == 404
    inp = add_image(store, me, seed=5, kind="input")
    assert client.post(f"/api/v1/images/{inp.id}/share").status_code == 404


def test_tampered_or_old_links_over_http_are_404(app, client, store, me):
    rec = add_image(store, me)
    url = share(client, rec.id)["url"]
    old = URLSafeSerializer(SECRET, salt="casvault.share").dumps([me, rec.id, 2**40, "2026-01-01T00:00:00.000+00:00"])
    for bad in (url[:-3] + "abc", "/s/" + old, "/s/..", "/s/%2e%2e", "/s/" + "a" * 500):
        resp = app.test_client().get(bad + "/image")
        assert resp.status_code == 404 and resp.is_json, bad


def test_a_merge_hands_the_guests_links_to_the_member(app, client, store, me):
    """The images keep their ids under the member, and so do their links (README: Security)."""
    rec = add_image(store, me)
    made = share(client, rec.id)
    stranger = app.test_client()
    report = merge_users(store, me, "u-alice")
    assert report.moved == 1
    assert stranger.get(made["url"] + "/image").status_code == 200
    assert (store.layout.meta / "shares" / made["id"]).read_text().strip() == "u-alice"
    assert [s.id for s in store.shares.of("u-alice")] == [made["id"]] and store.shares.of(me) == []
    assert not (store.layout.meta / "users" / me / "shares.json").exists()
    store.shares.revoke("u-alice", made["id"])
    assert stranger.get(made["url"] + "/image").status_code == 404


@pytest.mark.timeout(120)
def test_revoked_and_trashed_links_are_dead_in_every_worker(server):
    """The issue's case on a real gunicorn (3 workers): after revoke, or trash then restore, no worker serves the link."""
    import requests

    owner = requests.Session()
    owner.headers["X-Requested-With"] = "XMLHttpRequest"
    owner.get(server.url + "/api/v1/quota")
    up = owner.post(server.url + "/api/v1/inputs/upload", files={"file": ("a.png", make_png(seed=31))})
    assert up.status_code == 201
    made = requests.post(server.url + "/api/v1/ingest", files={"file": ("g.png", make_png(seed=32))},
                         data={"owner": up.json()["owner"]}, headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                         timeout=10).json()
    revoked = owner.post(f"{server.url}/api/v1/images/{made['id']}/share").json()
    trashed = owner.post(f"{server.url}/api/v1/images/{made['id']}/share").json()

    def statuses(url: str) -> set[int]:
        return {requests.get(server.url + url, timeout=10).status_code for _ in range(9)}

    assert statuses(revoked["url"] + "/image") == {200} and statuses(trashed["url"]) == {200}
    assert owner.delete(f"{server.url}/api/v1/shares/{revoked['id']}").status_code == 200
    assert statuses(revoked["url"] + "/image") == {404}
    assert statuses(trashed["url"] + "/image") == {200}
    assert owner.post(f"{server.url}/api/v1/images/{made['id']}/delete").status_code == 200
    assert owner.post(f"{server.url}/api/v1/images/{made['id']}/restore").status_code == 200
    assert statuses(trashed["url"] + "/image") == {404} and statuses(trashed["url"]) == {404}
    assert owner.get(server.url + "/api/v1/shares").json() == {"shares": []}


def test_a_shared_video_is_shown_as_a_video(app, client, store, me):
    from pathlib import Path

    data = (Path(__file__).parent / "data" / "comfyui-real" / "view" / "output" / "video" / "ComfyUI_00001_.mp4").read_bytes()
    rec = store.ingest(data, me).record
    url = share(client, rec.id)["url"]
    page = app.test_client().get(url)
    assert f'<video src="{url}/image"' in page.get_data(as_text=True)
    assert "media-src 'self'" in page.headers["Content-Security-Policy"]
    image = app.test_client().get(url + "/image")
    assert image.status_code == 200 and image.mimetype == "video/mp4" and image.data == data
