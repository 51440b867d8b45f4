"""Share links: real signed tokens, expiry, tampering, trashed images, and the public page."""

from __future__ import annotations

import pytest

from casvault import shares
from casvault.errors import InvalidInput, NotFound
from tests.api_helpers import add_image, error_code, visitor
from tests.conftest import SECRET, make_png, user


@pytest.fixture
def me(client):
    """The test client's guest id."""
    return visitor(client)


def test_token_round_trip_and_expiry(monkeypatch):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(shares, "_now", lambda: clock[0])
    token, share = shares.make_token(SECRET, user(1), "a" * 32, 60)
    assert share.expires_at == 1_800_000_060
    assert shares.read_token(SECRET, token) == share
    clock[0] += 59
    assert shares.read_token(SECRET, token).id == "a" * 32
    clock[0] += 1
    with pytest.raises(NotFound):
        shares.read_token(SECRET, token)


@pytest.mark.parametrize("bad", [None, True, 59, 365 * 24 * 3600 + 1, "60", 1.5, -5])
def test_expires_in_bounds(bad):
    if bad is None:
        assert shares.check_expires_in(bad) == shares.DEFAULT_EXPIRES_IN
        return
    with pytest.raises(InvalidInput):
        shares.check_expires_in(bad)


def test_tampered_or_foreign_tokens_are_not_found():
    token, _ = shares.make_token(SECRET, user(1), "b" * 32)
    payload, sig = token.rsplit(".", 1)
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + sig
    for bad in (flipped, token + "x", token[:-2], "", "x" * 1000, shares.make_token("other", user(1), "b" * 32)[0]):
        with pytest.raises(NotFound):
            shares.read_token(SECRET, bad)
    # a token signed with the right key but for another purpose (salt) is refused too
    from itsdangerous import URLSafeSerializer

    other_salt = URLSafeSerializer(SECRET, salt="casvault.anon_id").dumps([user(1), "b" * 32, 2**40])
    with pytest.raises(NotFound):
        shares.read_token(SECRET, other_salt)


def test_share_link_serves_page_and_image_to_anyone(app, client, store, me):
    rec = add_image(store, me, prompt='<script>alert("x")</script> a fox')
    resp = client.post(f"/api/v1/images/{rec.id}/share", json={"expires_in": 3600})
    assert resp.status_code == 201
    url = resp.get_json()["url"]
    assert url.startswith("/s/") and resp.get_json()["expires_at"].endswith("+00:00")
    stranger = app.test_client()
    page = stranger.get(url)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'src="{url}/image"' in html
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert stranger.get_cookie("anon_id") is None  # no identity handed out on a share link
    image = stranger.get(url + "/image")
    assert image.status_code == 200 and image.data == make_png(seed=0) and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"


def test_share_link_dies_with_trash_and_expiry(app, client, store, me, monkeypatch):
    rec = add_image(store, me)
    url = client.post(f"/api/v1/images/{rec.id}/share", json={}).get_json()["url"]
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
    client.post(f"/api/v1/images/{rec.id}/restore")
    assert stranger.get(url + "/image").status_code == 404  # a link made before the trashing stays dead
    short = client.post(f"/api/v1/images/{rec.id}/share", json={"expires_in": 60}).get_json()["url"]
    assert stranger.get(short + "/image").status_code == 200
    real_now = shares._now()
    monkeypatch.setattr(shares, "_now", lambda: real_now + 61)
    assert stranger.get(short + "/image").status_code == 404
    assert stranger.get(short).status_code == 404


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


def test_tampered_link_over_http_is_404(app, client, store, me):
    rec = add_image(store, me)
    url = client.post(f"/api/v1/images/{rec.id}/share").get_json()["url"]
    forged_owner = shares.make_token("not-the-secret", me, rec.id)[0]
    for bad in (url[:-3] + "abc", "/s/" + forged_owner, "/s/..", "/s/%2e%2e", "/s/" + "a" * 500):
        resp = app.test_client().get(bad + "/image")
        assert resp.status_code == 404 and resp.is_json, bad
