"""The signed anon_id cookie: issued on the first visit, forged or tampered cookies replaced, never accepted."""

from __future__ import annotations

import re

import pytest

from casvault import identity
from tests.api_helpers import add_image, visitor
from tests.conftest import SECRET, user

COOKIE_RE = re.compile(r"anon-[0-9a-f]{32}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")  # id.timestamp.signature


def _set_cookie(resp) -> str | None:
    for header in resp.headers.getlist("Set-Cookie"):
        if header.startswith("anon_id="):
            return header
    return None


@pytest.mark.parametrize("path", ["/api/v1/images", "/api/v1/quota", "/api/v1/nothing-here"])
def test_first_visit_issues_a_signed_httponly_lax_cookie(app, path):
    resp = app.test_client().get(path)
    header = _set_cookie(resp)
    assert header is not None
    value = header.split(";", 1)[0].split("=", 1)[1]
    assert COOKIE_RE.fullmatch(value)
    attrs = header.lower()
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert identity.verify(value, SECRET) == value.split(".")[0]


def test_the_cookie_is_kept_and_not_reissued(app):
    c = app.test_client()
    first = visitor(c)
    resp = c.get("/api/v1/images")
    assert _set_cookie(resp) is None and visitor(c) == first


@pytest.mark.parametrize("make_bad", [
    lambda good: good.split(".")[0],                                     # unsigned
    lambda good: good[:-1] + ("A" if good[-1] != "A" else "B"),          # tampered signature
    lambda good: "anon-" + "f" * 32 + "." + good.split(".", 1)[1],       # another id, old signature
    lambda good: identity.issue("another-secret", "anon-" + "f" * 32)[1],  # signed with another key
    lambda good: "u-admin." + good.split(".", 1)[1],
    lambda good: "",
    lambda good: "x" * 1000,
    lambda good: good + "\x00",
])
def test_forged_cookies_get_a_new_identity_and_see_nothing(app, store, make_bad):
    victim = user(77)
    add_image(store, victim)
    _, good = identity.issue(SECRET, victim)
    c = app.test_client()
    c.set_cookie("anon_id", make_bad(good))
    resp = c.get("/api/v1/images")
    assert resp.get_json()["total"] == 0
    header = _set_cookie(resp)
    assert header is not None
    new_id = header.split(";", 1)[0].split("=", 1)[1].split(".")[0]
    assert new_id != victim and new_id.startswith("anon-")


def test_a_real_cookie_reaches_its_records(app, store):
    victim = user(78)
    rec = add_image(store, victim)
    _, cookie = identity.issue(SECRET, victim)
    c = app.test_client()
    c.set_cookie("anon_id", cookie)
    assert c.get(f"/api/v1/images/{rec.id}").status_code == 200


def test_verify_is_a_library_function():
    uid, cookie = identity.issue(SECRET)
    assert identity.verify(cookie, SECRET) == uid
    assert identity.verify(cookie, "other") is None
    assert identity.verify(None, SECRET) is None
    assert identity.verify(identity.issue(SECRET, "u-member")[1], SECRET) is None  # guests only


def test_secure_flag_over_https(app):
    resp = app.test_client().get("/api/v1/quota", base_url="https://localhost")
    assert "secure" in _set_cookie(resp).lower()


@pytest.mark.parametrize("sub, expected", [
    ("alice", "u-alice"), ("a_b-9", "u-a_b-9"), ("x" * 64, "u-" + "x" * 64),
    ("x" * 65, None), ("../anon-" + "0" * 32, None), ("Alice", None), ("a/b", None), ("", None), (7, None), (None, None),
])
def test_member_ids_are_validated_like_every_user_id(sub, expected):
    assert identity.member_id(sub) == expected


def test_trusted_proxies():
    proxies = identity.parse_proxies("10.1.0.0/16, 2001:db8::/32")
    assert proxies.trusts("10.1.255.1") and proxies.trusts("::ffff:10.1.0.7") and proxies.trusts("2001:db8::5")
    assert not proxies.trusts("10.2.0.1") and not proxies.trusts("") and not proxies.trusts("localhost")
    assert not identity.parse_proxies("")
    unix = identity.parse_proxies("unix")
    assert unix.trusts("") and unix.trusts("/run/casvault.sock") and not unix.trusts("127.0.0.1")
    with pytest.raises(Exception, match="TRUSTED_PROXIES"):
        identity.parse_proxies("10.0.0.0/40")


def test_guest_cookies_expire_and_age():
    uid, cookie = identity.issue(SECRET)
    guest = identity.read_guest(cookie, SECRET, max_age=3600)
    assert guest.user_id == uid and not identity.needs_refresh(guest, 3600)
    assert identity.needs_refresh(guest, 3600, now=guest.issued_at + 361)
    assert identity.verify(cookie, SECRET, max_age=3600) == uid
