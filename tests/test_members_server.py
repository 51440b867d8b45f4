"""Members against a real gunicorn with several workers: the sign-in handover of a guest's
history (once, even with parallel requests), forged tokens and an untrusted proxy header,
and a kill -9 in the middle of the handover that the next request completes."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest
import requests

from casvault.config import Config
from casvault.store import Store
from tests.conftest import INGEST_TOKEN, make_png
from tests.jwt_helpers import AUDIENCE, MEMBER_SECRET, forged_tokens, hs256
from tests.servers import Gunicorn

MEMBER = "u-alice"
WRITE = {"X-Requested-With": "XMLHttpRequest"}
ENV = {
    "CASVAULT_MEMBER_JWT_SECRET": MEMBER_SECRET,
    "CASVAULT_MEMBER_JWT_AUDIENCE": AUDIENCE,
    "CASVAULT_TRUSTED_USER_HEADER": "X-Forwarded-User",
    "CASVAULT_TRUSTED_PROXIES": "10.9.0.0/16",  # not the test client's 127.0.0.1
}


def start(root: Path, **env: str) -> Gunicorn:
    srv = Gunicorn(root, workers=3, env={**ENV, **env})
    srv.start()
    return srv


def guest_session(url: str) -> tuple[requests.Session, str, dict[str, set[str]]]:
    """A browser-like guest: 5 images, 1 trashed image (by the pipeline and the API) and 1 uploaded input."""
    s = requests.Session()
    me = s.get(url + "/api/v1/me", timeout=10).json()
    assert me["kind"] == "guest"
    guest = me["user_id"]
    images = []
    for n in range(6):
        r = requests.post(url + "/api/v1/ingest", files={"file": ("a.png", make_png(seed=700 + n))},
                          data={"owner": guest, "prompt": f"guest image {n}"},
                          headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=10)
        assert r.status_code == 201, r.text
        images.append(r.json()["id"])
    assert s.post(f"{url}/api/v1/images/{images[0]}/delete", headers=WRITE, timeout=10).status_code == 200
    r = s.post(url + "/api/v1/inputs/upload", files={"file": ("in.png", make_png(seed=790))}, headers=WRITE, timeout=10)
    assert r.status_code == 201, r.text
    return s, guest, {"active": set(images[1:]), "trash": {images[0]}, "input": {r.json()["id"]}}


def listed(s: requests.Session, url: str, path: str) -> set[str]:
    r = s.get(url + path, timeout=10)
    assert r.status_code == 200, r.text
    return {i["id"] for i in r.json()["items"]}


def assert_member_has(root: Path, s: requests.Session, url: str, guest: str, made: dict[str, set[str]]) -> None:
    """The member sees all 7 in the right views; the files are under outputs/users/u-alice; nothing of the guest is left."""
    assert listed(s, url, "/api/v1/images") == made["active"]
    assert listed(s, url, "/api/v1/images?include=trash") == made["trash"]
    assert listed(s, url, "/api/v1/inputs") == made["input"]
    store = Store(Config(root=root, fsync=False))
    assert set(store.index(MEMBER).records) == made["active"] | made["trash"] | made["input"]
    assert store.index(guest).records == {}
    for rid in made["active"] | made["input"]:
        files = (root / "outputs" / "users" / MEMBER).rglob(f"{rid}.*")
        assert sorted(p.suffix for p in files) == [".json", ".png", ".webp"]  # sidecar, image, thumbnail
    for rid in made["trash"]:
        files = (root / "trash" / "users" / MEMBER).rglob(f"{rid}.*")
        assert sorted(p.suffix for p in files) == [".json", ".png", ".webp"]
    assert not (root / "outputs" / "users" / guest).exists()
    assert not list((root / "meta" / "merges").glob("*.json"))


def test_signing_in_hands_the_guest_history_over_once_across_workers(tmp_path):
    root = tmp_path / "root"
    srv = start(root)
    try:
        s, guest, made = guest_session(srv.url)
        guest_cookie = s.cookies["anon_id"]
        token = hs256()

        def signed_in_request(path: str) -> requests.Response:
            # NOTE: parallel requests, each on its own connection, all still carrying the guest cookie.
            return requests.get(srv.url + path, cookies={"anon_id": guest_cookie, "casvault_member": token}, timeout=30)

        paths = ["/", "/api/v1/images", "/api/v1/inputs", "/api/v1/me", "/api/v1/quota", "/api/v1/images?include=trash"]
        with cf.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(signed_in_request, paths))
        assert [a.status_code for a in answers] == [200] * len(paths)
        assert any("anon_id=;" in a.headers.get("Set-Cookie", "") for a in answers)
        assert answers[3].json() == {"user_id": MEMBER, "kind": "member"}
        s.cookies.set("casvault_member", token)
        resp = s.get(srv.url + "/api/v1/me", timeout=10)  # the browser still holding the guest cookie
        assert resp.json()["kind"] == "member" and "anon_id=;" in resp.headers["Set-Cookie"]
        assert "anon_id" not in s.cookies
        assert_member_has(root, s, srv.url, guest, made)
        # the member signs out: a new guest with an empty gallery
        s.cookies.clear()
        me = s.get(srv.url + "/api/v1/me", timeout=10).json()
        assert me["kind"] == "guest" and me["user_id"] != guest
        assert listed(s, srv.url, "/api/v1/images?include=all") == set()
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["bad_signature", "expired", "alg_none", "wrong_aud", "sub_traversal", "hs256_with_public_key"])
def test_forged_tokens_and_an_untrusted_proxy_header_leave_a_guest(tmp_path, name):
    root = tmp_path / "root"
    srv = start(root)
    try:
        s, guest, made = guest_session(srv.url)
        s.cookies.set("casvault_member", forged_tokens()[name])
        for headers in ({}, {"Authorization": f"Bearer {forged_tokens()[name]}"}, {"X-Forwarded-User": "alice"}):
            me = s.get(srv.url + "/api/v1/me", headers=headers, timeout=10).json()
            assert me == {"user_id": guest, "kind": "guest"}, headers
            assert listed(s, srv.url, "/api/v1/images") == made["active"]
        assert not (root / "outputs" / "users" / MEMBER).exists()
        assert (root / "outputs" / "users" / guest).is_dir()
    finally:
        srv.stop()


@pytest.mark.parametrize("point", ["merge.after_journal", "merge.after_projection@4", "merge.after_member_manifest@2",
                                   "merge.after_guest_sidecar@3", "merge.after_guest_manifest@7"])
def test_a_kill_during_the_handover_is_completed_by_the_next_request(tmp_path, point):
    root = tmp_path / "root"
    name, _, nth = point.partition("@")
    srv = start(root)
    try:
        s, guest, made = guest_session(srv.url)
    finally:
        srv.stop()
    # the same store, served by a gunicorn whose workers die (os._exit, as kill -9) at the point
    srv = start(root, CASVAULT_FAULTS=f"{name}=exit@{nth or 1}")
    try:
        s.cookies.set("casvault_member", hs256())
        with pytest.raises(requests.ConnectionError):
            s.get(srv.url + "/api/v1/images", timeout=30)
        assert (root / "meta" / "merges" / f"{guest}.json").is_file()
    finally:
        srv.kill()
    srv = start(root)
    try:
        resp = s.get(srv.url + "/api/v1/images", timeout=30)
        assert resp.status_code == 200 and "anon_id=;" in resp.headers["Set-Cookie"]
        assert_member_has(root, s, srv.url, guest, made)
    finally:
        srv.stop()
