"""Members: the site's JWT (cookie or bearer) or a trusted proxy's header; forgeries are guests;
the guest -> member handover on sign-in and by /me/claim; member quotas; the admin filter."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from itsdangerous import Signer, TimestampSigner

from casvault import identity
from casvault.config import Config
from casvault.errors import ConfigError
from casvault.index import Query
from casvault.store import Store
from tests.api_helpers import ADMIN, add_image, error_code, new_client
from tests.conftest import INGEST_TOKEN, SECRET, make_png, user
from tests.jwt_helpers import (AUDIENCE, ISSUER, MEMBER_SECRET, forged_tokens, hs256, public_jwk, signed,
                               write_jwks)

MEMBER = "u-alice"
pytest_plugins = ("tests.services",)


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json")


@pytest.fixture
def mconfig(config: Config, jwks_file: Path) -> Config:
    """Members by HS256 and by a JWKS file, with issuer and audience checked."""
    return config.with_(member_jwt_secret=MEMBER_SECRET, member_jwks=str(jwks_file),
                        member_jwt_issuer=ISSUER, member_jwt_audience=AUDIENCE)


@pytest.fixture
def mapp(mconfig: Config):
    from web import create_app

    app = create_app(mconfig)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def mstore(mconfig: Config) -> Store:
    return Store(mconfig)


def signed_in(app, token: str, guest: str | None = None):
    """A client carrying the member cookie (and a guest's cookie when given)."""
    c = new_client(app)
    c.set_cookie("casvault_member", token)
    if guest:
        c.set_cookie(identity.COOKIE_NAME, identity.issue(SECRET, guest)[1])
    return c


def set_cookies(resp) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in resp.headers.getlist("Set-Cookie")}


# --- who is asking -----------------------------------------------------------------


@pytest.mark.parametrize("token", [
    pytest.param(lambda: hs256(), id="HS256"),
    pytest.param(lambda: signed("rsa"), id="RS256"),
    pytest.param(lambda: signed("ec"), id="ES256"),
    pytest.param(lambda: signed("ed25519"), id="EdDSA"),
])
def test_a_member_token_in_the_cookie_signs_in(mapp, mstore, token):
    rec = add_image(mstore, MEMBER)
    c = signed_in(mapp, token())
    resp = c.get("/api/v1/me")
    assert resp.get_json() == {"user_id": MEMBER, "kind": "member"}
    assert "anon_id" not in set_cookies(resp)  # a member gets no guest cookie
    assert [i["id"] for i in c.get("/api/v1/images").get_json()["items"]] == [rec.id]


def test_a_bearer_token_signs_in_on_visitor_routes_and_needs_no_csrf_header(mapp, mstore):
    c = mapp.test_client()
    auth = {"Authorization": f"Bearer {signed('rsa')}"}
    assert c.get("/api/v1/me", headers=auth).get_json()["kind"] == "member"
    resp = c.post("/api/v1/inputs/upload", headers=auth, data={"file": (io.BytesIO(make_png(seed=4)), "a.png")})
    assert resp.status_code == 201 and resp.get_json()["owner"] == MEMBER
    # the member cookie is a cookie: cross-site writes with it are refused
    c2 = mapp.test_client()
    c2.set_cookie("casvault_member", hs256())
    assert c2.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=5)), "b.png")}).status_code == 403


def test_a_member_goes_everywhere_a_guest_goes(mapp, mstore):
    """Listing, one record, tags, bulk, trash, ZIP, share link, inputs copy, quota and /outputs, as u-alice."""
    a = add_image(mstore, MEMBER, seed=21)
    b = add_image(mstore, MEMBER, seed=22)
    stranger = add_image(mstore, user(520), seed=23)
    c = signed_in(mapp, hs256())
    assert c.get(f"/api/v1/images/{a.id}").get_json()["owner"] == MEMBER
    assert c.get(f"/api/v1/images/{stranger.id}").status_code == 404
    assert c.patch(f"/api/v1/images/{a.id}", json={"tags": ["kept"]}).get_json()["tags"] == ["kept"]
    bulk = c.post("/api/v1/images/bulk", json={"action": "favorite", "ids": [a.id, b.id]}).get_json()
    assert [r["ok"] for r in bulk["results"]] == [True, True]
    zipped = c.get(f"/api/v1/images/download.zip?ids={a.id},{b.id}")
    assert zipped.status_code == 200 and zipped.data[:2] == b"PK"
    share = c.post(f"/api/v1/images/{a.id}/share", json={})
    assert share.status_code == 201
    assert mapp.test_client().get(share.get_json()["url"]).status_code == 200  # opens without any cookie
    copied = c.post("/api/v1/inputs/copy", json={"image_id": b.id})
    assert copied.status_code == 201 and copied.get_json()["owner"] == MEMBER
    assert c.post(f"/api/v1/images/{b.id}/delete").get_json()["status"] == "trash"
    assert c.get("/api/v1/quota").get_json()["usage"]["count"] == 3
    url = c.get(f"/api/v1/images/{a.id}").get_json()["url"]
    assert url.startswith(f"/outputs/users/{MEMBER}/") and c.get(url).status_code == 200


def test_the_pipeline_and_admin_bearer_tokens_are_not_member_tokens(mapp, mstore):
    c = mapp.test_client()
    resp = c.post("/api/v1/ingest", headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                  data={"owner": MEMBER, "file": (io.BytesIO(make_png(seed=9)), "x.png")})
    assert resp.status_code == 201
    assert c.get("/api/v1/admin/users", headers=ADMIN).status_code == 200
    # a member token is no admin token
    assert c.get("/api/v1/admin/users", headers={"Authorization": f"Bearer {hs256()}"}).status_code == 401


@pytest.mark.parametrize("name", list(forged_tokens()))
@pytest.mark.parametrize("where", ["cookie", "bearer"])
def test_forged_member_tokens_are_refused_and_the_request_is_a_guest(mapp, mstore, name, where):
    add_image(mstore, MEMBER)
    add_image(mstore, "u-alice", seed=2)
    token = forged_tokens()[name]
    c = new_client(mapp)
    headers = {}
    if where == "cookie":
        c.set_cookie("casvault_member", token)
    else:
        headers["Authorization"] = f"Bearer {token}"
    resp = c.get("/api/v1/me", headers=headers)
    body = resp.get_json()
    assert body["kind"] == "guest" and body["user_id"].startswith("anon-")
    assert "anon_id" in set_cookies(resp)
    assert c.get("/api/v1/images", headers=headers).get_json()["total"] == 0
    assert sorted(p.name for p in (mstore.layout.root / "outputs" / "users").iterdir()) == [MEMBER]


def test_hs256_is_refused_when_only_a_jwks_is_configured(config, jwks_file):
    from web import create_app

    app = create_app(config.with_(member_jwks=str(jwks_file)))
    c = app.test_client()
    c.set_cookie("casvault_member", hs256())
    assert c.get("/api/v1/me").get_json()["kind"] == "guest"
    c.set_cookie("casvault_member", forged_tokens()["hs256_with_public_key"])
    assert c.get("/api/v1/me").get_json()["kind"] == "guest"
    c.set_cookie("casvault_member", signed("rsa", iss="x", aud=None))  # no aud configured, none sent: ok
    assert c.get("/api/v1/me").get_json()["kind"] == "member"


def test_a_token_naming_an_audience_is_refused_unless_configured(config):
    from web import create_app

    app = create_app(config.with_(member_jwt_secret=MEMBER_SECRET))
    c = app.test_client()
    c.set_cookie("casvault_member", hs256())  # carries aud=casvault
    assert c.get("/api/v1/me").get_json()["kind"] == "guest"
    c.set_cookie("casvault_member", hs256(aud=None))
    assert c.get("/api/v1/me").get_json()["kind"] == "member"


def test_a_key_of_another_type_cannot_sign_for_its_kid(mapp, jwks_file):
    """An ES256 token naming the RSA key's kid is refused (alg pinned to the key)."""
    import jwt
    from tests.jwt_helpers import claims, private_key

    token = jwt.encode(claims(), private_key("ec"), algorithm="ES256", headers={"kid": "key-rsa"})
    c = mapp.test_client()
    c.set_cookie("casvault_member", token)
    assert c.get("/api/v1/me").get_json()["kind"] == "guest"


def test_jwks_from_a_url(config, tmp_path):
    body = json.dumps({"keys": [public_jwk("rsa")]}).encode()
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        from web import create_app

        url = f"http://127.0.0.1:{srv.server_address[1]}/.well-known/jwks.json"
        app = create_app(config.with_(member_jwks=url, member_jwt_audience=AUDIENCE))
        c = app.test_client()
        for _ in range(3):
            c.set_cookie("casvault_member", signed("rsa"))
            assert c.get("/api/v1/me").get_json()["kind"] == "member"
        c.set_cookie("casvault_member", signed("ec"))  # not in the set
        assert c.get("/api/v1/me").get_json()["kind"] == "guest"
        assert hits[0] == "/.well-known/jwks.json" and len(hits) <= 2  # cached
    finally:
        srv.shutdown()


def test_the_trusted_proxy_header_counts_only_from_trusted_addresses(config):
    from web import create_app

    app = create_app(config.with_(trusted_user_header="X-Forwarded-User", trusted_proxies="10.1.0.0/16, ::1"))
    c = app.test_client()
    hdr = {"X-Forwarded-User": "bob"}
    trusted = c.get("/api/v1/me", headers=hdr, environ_base={"REMOTE_ADDR": "10.1.2.3"}).get_json()
    assert trusted == {"user_id": "u-bob", "kind": "member"}
    for peer in ("127.0.0.1", "10.2.0.1", "192.168.1.1"):
        got = c.get("/api/v1/me", headers={**hdr, "X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": peer})
        assert got.get_json()["kind"] == "guest", peer
    bad = c.get("/api/v1/me", headers={"X-Forwarded-User": "../etc"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert bad.get_json()["kind"] == "guest"


def test_a_unix_socket_proxy_is_trusted_only_when_listed(config):
    from web import create_app

    hdr = {"X-Forwarded-User": "bob"}
    unix = create_app(config.with_(trusted_user_header="X-Forwarded-User", trusted_proxies="unix")).test_client()
    assert unix.get("/api/v1/me", headers=hdr, environ_base={"REMOTE_ADDR": ""}).get_json()["kind"] == "member"
    assert unix.get("/api/v1/me", headers=hdr, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()["kind"] == "guest"
    cidr = create_app(config.with_(trusted_user_header="X-Forwarded-User", trusted_proxies="127.0.0.1/32")).test_client()
    assert cidr.get("/api/v1/me", headers=hdr, environ_base={"REMOTE_ADDR": ""}).get_json()["kind"] == "guest"
    assert cidr.get("/api/v1/me", headers=hdr, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()["kind"] == "member"


def test_an_unreadable_jwks_file_stops_the_start_and_a_vanished_one_signs_nobody_in(config, tmp_path):
    from web import create_app

    with pytest.raises(ConfigError):
        create_app(config.with_(member_jwks=str(tmp_path / "missing.json")))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError):
        create_app(config.with_(member_jwks=str(tmp_path / "bad.json")))
    private = tmp_path / "private.json"
    import jwt
    from tests.jwt_helpers import private_key

    private.write_text(json.dumps({"keys": [jwt.algorithms.RSAAlgorithm.to_jwk(private_key("rsa"), as_dict=True)]}))
    with pytest.raises(ConfigError, match="private key"):
        create_app(config.with_(member_jwks=str(private)))
    jwks = write_jwks(tmp_path / "keys.json", ("rsa",))
    c = create_app(config.with_(member_jwks=str(jwks))).test_client()
    c.set_cookie("casvault_member", signed("rsa", aud=None))
    assert c.get("/api/v1/me").get_json()["kind"] == "member"
    write_jwks(jwks, ("ec",))  # key rotation: the file is re-read when it changes
    os.utime(jwks, (time.time() + 5, time.time() + 5))
    assert c.get("/api/v1/me").get_json()["kind"] == "guest"
    c.set_cookie("casvault_member", signed("ec", aud=None))
    assert c.get("/api/v1/me").get_json()["kind"] == "member"
    jwks.unlink()
    resp = c.get("/api/v1/me")
    assert resp.status_code == 200 and resp.get_json()["kind"] == "guest"


@pytest.mark.parametrize("env", [
    {"CASVAULT_MEMBER_JWT_SECRET": "short"},
    {"CASVAULT_TRUSTED_USER_HEADER": "X-Forwarded-User"},
    {"CASVAULT_TRUSTED_USER_HEADER": "X-Forwarded-User", "CASVAULT_TRUSTED_PROXIES": "10.0.0.0/33"},
    {"CASVAULT_ANON_COOKIE_MAX_AGE": "10"},
    {"CASVAULT_MEMBER_QUOTA_MAX_COUNT": "-1"},
])
def test_identity_settings_that_would_be_weak_or_unused_are_errors(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


# --- the handover -----------------------------------------------------------------------


def guest_history(store: Store, guest: str) -> dict[str, str]:
    """A guest with 2 images (one favourite and tagged), one trashed image, one input and one control."""
    a = add_image(store, guest, seed=11, tags=["cat"])
    store.update_meta(guest, a.id, favorite=True)
    b = add_image(store, guest, seed=12)
    t = add_image(store, guest, seed=13)
    store.trash(guest, t.id)
    i = add_image(store, guest, seed=14, kind="input")
    k = add_image(store, guest, seed=15, kind="control")
    return {"a": a.id, "b": b.id, "t": t.id, "i": i.id, "k": k.id}


def test_signing_in_hands_the_guest_history_over_once(mapp, mstore):
    guest = user(501)
    ids = guest_history(mstore, guest)
    own = add_image(mstore, MEMBER, seed=99)
    as_guest = new_client(mapp)
    as_guest.set_cookie("anon_id", identity.issue(SECRET, guest)[1])
    share = as_guest.post(f"/api/v1/images/{ids['a']}/share", json={})
    assert share.status_code == 201
    c = signed_in(mapp, hs256(), guest)
    resp = c.get("/api/v1/images?include=all")
    assert resp.status_code == 200
    cleared = set_cookies(resp)["anon_id"]
    assert "anon_id=;" in cleared and ("Max-Age=0" in cleared or "1970" in cleared)
    assert c.get_cookie("anon_id") is None
    listed = {i["id"]: i for i in resp.get_json()["items"]}
    assert set(listed) == {ids["a"], ids["b"], ids["t"], own.id}
    assert listed[ids["t"]]["status"] == "trash" and listed[ids["a"]]["favorite"] is True
    assert listed[ids["a"]]["tags"] == ["cat"]
    assert [i["id"] for i in c.get("/api/v1/inputs").get_json()["items"]] == [ids["i"]]
    assert [i["id"] for i in c.get("/api/v1/controls").get_json()["items"]] == [ids["k"]]
    root = mstore.layout.root
    assert not (root / "outputs" / "users" / guest).exists()
    assert len(list((root / "outputs" / "users" / MEMBER).rglob(f"{ids['a']}.png"))) == 1
    assert len(list((root / "trash" / "users" / MEMBER).rglob(f"{ids['t']}.png"))) == 1
    assert not (root / "meta" / "merges" / f"{guest}.json").exists()
    assert mapp.test_client().get(share.get_json()["url"]).status_code == 200  # the guest's link follows the image
    # the guest's cookie replayed later finds nothing to move and changes nothing
    c2 = signed_in(mapp, hs256(), guest)
    assert c2.get("/api/v1/images?include=all").get_json()["total"] == 4
    # a forged guest cookie beside a member is dropped
    c3 = signed_in(mapp, hs256())
    c3.set_cookie("anon_id", identity.issue("another-secret", guest)[1])
    assert "anon_id=;" in set_cookies(c3.get("/api/v1/me"))["anon_id"]
    # the guest id itself now holds nothing
    g = new_client(mapp)
    g.set_cookie("anon_id", identity.issue(SECRET, guest)[1])
    assert g.get("/api/v1/images?include=all").get_json()["total"] == 0


def test_claim_does_it_explicitly(config, mstore):
    from web import create_app

    app = create_app(config.with_(member_jwt_secret=MEMBER_SECRET, member_jwt_audience=AUDIENCE,
                                  member_jwt_issuer=ISSUER, member_auto_claim=False))
    guest = user(502)
    ids = guest_history(mstore, guest)
    c = signed_in(app, hs256(), guest)
    resp = c.get("/api/v1/images?include=all")
    assert resp.get_json()["total"] == 0 and "anon_id" not in set_cookies(resp)
    resp = c.post("/api/v1/me/claim")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"user_id": MEMBER, "kind": "member", "claimed": guest, "moved": 5, "trash": 1,
                               "complete": True}
    assert "anon_id=;" in set_cookies(resp)["anon_id"]
    assert c.get("/api/v1/images?include=all").get_json()["total"] == 3
    again = c.post("/api/v1/me/claim").get_json()
    assert again["claimed"] is None and again["moved"] == 0
    assert set(ids.values()) == set(Store(config).index(MEMBER).records)


def test_a_big_history_is_handed_over_in_slices_over_several_requests(mapp, mstore, monkeypatch):
    from web import auth

    guest = user(510)
    ids = guest_history(mstore, guest)
    monkeypatch.setattr(auth, "HANDOVER_SECONDS", 0.0)  # every request moves one record, then stops
    c = signed_in(mapp, hs256(), guest)
    seen = []
    for _ in range(4):
        resp = c.get("/api/v1/me")
        assert "anon_id" not in set_cookies(resp)  # not done: the guest cookie stays
        seen.append(len(Store(mstore.config).index(MEMBER).records))
    assert seen == [1, 2, 3, 4]
    assert (mstore.layout.root / "meta" / "merges" / f"{guest}.json").exists()
    resp = c.post("/api/v1/me/claim")
    assert resp.get_json()["complete"] is True and "anon_id=;" in set_cookies(resp)["anon_id"]
    assert set(Store(mstore.config).index(MEMBER).records) == set(ids.values())
    assert not (mstore.layout.root / "meta" / "merges" / f"{guest}.json").exists()


def test_claim_needs_a_member(mapp):
    c = new_client(mapp)
    resp = c.post("/api/v1/me/claim")
    assert resp.status_code == 401 and error_code(resp) == "unauthorized"
    c.set_cookie("casvault_member", forged_tokens()["alg_none"])
    assert c.post("/api/v1/me/claim").status_code == 401


def test_an_unfinished_merge_completes_on_the_next_signed_in_request(mapp, mstore, monkeypatch):
    from casvault import faults

    guest = user(503)
    ids = guest_history(mstore, guest)
    monkeypatch.setenv("CASVAULT_FAULTS", "merge.after_member_manifest=raise@3")
    faults.reset()
    c = signed_in(mapp, hs256(), guest)
    assert c.get("/api/v1/me").status_code == 500
    assert (mstore.layout.root / "meta" / "merges" / f"{guest}.json").exists()
    monkeypatch.delenv("CASVAULT_FAULTS")
    faults.reset()
    resp = c.get("/api/v1/images?include=all")
    assert resp.get_json()["total"] == 3 and "anon_id=;" in set_cookies(resp)["anon_id"]
    assert set(Store(mstore.config).index(MEMBER).records) == set(ids.values())
    assert not (mstore.layout.root / "meta" / "merges" / f"{guest}.json").exists()


def test_an_unfinished_handover_is_completed_by_the_cli(mapp, mstore, monkeypatch, runner):
    from casvault import faults
    from cli import main

    guest = user(508)
    ids = guest_history(mstore, guest)
    monkeypatch.setenv("CASVAULT_FAULTS", "merge.after_projection=raise@2")
    faults.reset()
    assert signed_in(mapp, hs256(), guest).get("/api/v1/me").status_code == 500
    monkeypatch.delenv("CASVAULT_FAULTS")
    faults.reset()
    result = runner.invoke(main, ["--root", str(mstore.layout.root), "users", "merge", guest, MEMBER, "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["moved"] == 4  # the first record was handed over before the crash
    assert set(Store(mstore.config).index(MEMBER).records) == set(ids.values())
    assert not (mstore.layout.root / "meta" / "merges" / f"{guest}.json").exists()


def test_the_handover_in_the_shared_deployment_with_postgresql(tmp_path, pg_dsn):
    from web import create_app

    cfg = Config(root=tmp_path / "pgroot", secret_key=SECRET, fsync=False, thumb_size=64, index_backend="postgres",
                 pg_dsn=pg_dsn, member_jwt_secret=MEMBER_SECRET, member_jwt_audience=AUDIENCE)
    store = Store(cfg)
    guest = user(509)
    ids = guest_history(store, guest)
    c = signed_in(create_app(cfg), hs256(), guest)
    assert c.get("/api/v1/images?include=all").get_json()["total"] == 3
    assert {i["id"] for i in c.get("/api/v1/inputs").get_json()["items"]} == {ids["i"]}
    fresh = Store(cfg)
    assert fresh.records.pg is not None
    assert fresh.list(MEMBER, Query(kind="generated", include="all")).total == 3
    assert fresh.usage(guest).count == 0 and fresh.usage(MEMBER).count == 5


# --- quotas ------------------------------------------------------------------------------


def test_members_have_their_own_limits_and_a_merge_over_them_still_happens(config):
    from web import create_app

    cfg = config.with_(member_jwt_secret=MEMBER_SECRET, member_jwt_audience=AUDIENCE, quota_max_count=5,
                       member_quota_max_count=3)
    app = create_app(cfg)
    store = Store(cfg)
    guest = user(504)
    for n in range(5):
        add_image(store, guest, seed=300 + n)
    g = new_client(app)
    g.set_cookie("anon_id", identity.issue(SECRET, guest)[1])
    assert g.get("/api/v1/quota").get_json()["limits"]["max_count"] == 5
    c = signed_in(app, hs256(), guest)
    quota = c.get("/api/v1/quota").get_json()
    assert quota["limits"]["max_count"] == 3 and quota["usage"]["count"] == 5  # over, nothing lost
    up = c.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=77)), "a.png")})
    assert up.status_code == 507 and error_code(up) == "quota_exceeded"


# --- guest cookies: max-age, sliding re-issue ----------------------------------------------


def stamped(guest: str, age: float) -> str:
    """A guest cookie issued ``age`` seconds ago."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return Then(SECRET, salt="casvault.anon_id").sign(guest).decode()


def test_guest_cookies_carry_a_max_age(config):
    from web import create_app

    app = create_app(config.with_(anon_cookie_max_age=86400 * 30))
    header = set_cookies(app.test_client().get("/api/v1/me"))["anon_id"]
    assert "Max-Age=2592000" in header and "HttpOnly" in header


def test_an_ageing_guest_cookie_is_reissued_and_an_expired_one_is_refused(app, store):
    guest = user(505)
    rec = add_image(store, guest)
    max_age = store.config.anon_cookie_max_age
    fresh = new_client(app)
    fresh.set_cookie("anon_id", stamped(guest, 60))
    assert "anon_id" not in set_cookies(fresh.get("/api/v1/me"))
    old = new_client(app)
    old.set_cookie("anon_id", stamped(guest, max_age * 0.5))
    resp = old.get(f"/api/v1/images/{rec.id}")
    assert resp.status_code == 200
    renewed = old.get_cookie("anon_id").value
    assert renewed.split(".")[0] == guest and identity.read_guest(renewed, SECRET).issued_at >= time.time() - 5
    expired = new_client(app)
    expired.set_cookie("anon_id", stamped(guest, max_age + 60))
    assert expired.get("/api/v1/me").get_json()["user_id"] != guest
    assert expired.get(f"/api/v1/images/{rec.id}").status_code == 404


def test_a_cookie_from_before_timestamps_still_works_and_is_reissued_stamped(app, store):
    guest = user(506)
    rec = add_image(store, guest)
    legacy = Signer(SECRET, salt="casvault.anon_id").sign(guest).decode()
    c = new_client(app)
    c.set_cookie("anon_id", legacy)
    assert c.get(f"/api/v1/images/{rec.id}").status_code == 200
    new = c.get_cookie("anon_id").value
    assert new != legacy and identity.read_guest(new, SECRET).issued_at is not None


# --- admin ---------------------------------------------------------------------------------


def test_admin_lists_members_and_guests_with_a_filter(app, store):
    add_image(store, user(507))
    add_image(store, "u-carol", seed=3)
    c = app.test_client()
    rows = c.get("/api/v1/admin/users", headers=ADMIN).get_json()["users"]
    assert {(r["user_id"], r["kind"]) for r in rows} == {(user(507), "guest"), ("u-carol", "member")}
    assert [r["user_id"] for r in c.get("/api/v1/admin/users?kind=member", headers=ADMIN).get_json()["users"]] == ["u-carol"]
    assert [r["user_id"] for r in c.get("/api/v1/admin/users?kind=guest", headers=ADMIN).get_json()["users"]] == [user(507)]
    assert c.get("/api/v1/admin/users?kind=robot", headers=ADMIN).status_code == 400
