"""The first HTTP endpoints: pipeline ingest, uploads, listing, identity cookie."""

import io
import json

import pytest

from casvault import identity
from tests.conftest import INGEST_TOKEN, SECRET, make_png, user

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}


def ingest(client, data, **form):
    form = {"owner": user(1), **form}
    return client.post("/api/v1/ingest", data={"file": (io.BytesIO(data), "ComfyUI_00001_.png"), **form}, headers=AUTH)


def test_ingest_returns_record_with_id_and_urls(client, store):
    r = ingest(client, make_png(seed=1), seed="123", prompt="a fox", workflow_id="wf", aspect_ratio="1:1", tags="a,b")
    assert r.status_code == 201
    body = r.get_json()
    assert len(body["id"]) == 32 and body["seed"] == 123 and body["tags"] == ["a", "b"]
    assert body["original_filename"] == "ComfyUI_00001_.png"
    assert body["url"].startswith(f"/outputs/users/{user(1)}/") and body["thumb_url"].endswith(".webp")
    assert (store.layout.root / body["url"].removeprefix("/")).is_file()


@pytest.mark.parametrize(
    "headers,status",
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic x"}, 401)],
)
def test_ingest_needs_the_token(client, store, headers, status):
    r = client.post("/api/v1/ingest", data={"file": (io.BytesIO(make_png()), "a.png"), "owner": user(1)}, headers=headers)
    assert r.status_code == status and r.get_json()["error"]["code"] == "unauthorized"
    assert not list(store.layout.blobs.rglob("*/*/*/*"))


@pytest.mark.parametrize(
    "form,code",
    [
        ({"owner": "../../etc"}, "bad_request"),
        ({"owner": ""}, "bad_request"),
        ({"seed": "abc"}, "bad_request"),
        ({"prompt": "x\x00y"}, "bad_request"),
        ({"kind": "weird"}, "bad_request"),
    ],
)
def test_ingest_bad_fields(client, store, form, code):
    r = ingest(client, make_png(), **form)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == code
    assert not list(store.layout.outputs.rglob("*.json"))


def test_upload_bad_file_is_415_and_leaves_nothing(client, store):
    r = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(b"<svg/>"), "x.png")})
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "unsupported_media_type"
    assert not [p for p in store.layout.root.rglob("*") if p.is_file() and p.name != "casvault.json" and p.suffix in (".png", ".json", ".webp", ".tmp")]


def test_upload_missing_file_field(client):
    r = client.post("/api/v1/inputs/upload", data={"other": "x"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"


def test_upload_input_and_control_land_in_their_folders(client, store):
    r = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=2)), "in.png")})
    assert r.status_code == 201 and "/inputs/" in r.get_json()["url"] and r.get_json()["kind"] == "input"
    r = client.post("/api/v1/controls/upload", data={"file": (io.BytesIO(make_png(seed=3)), "c.png")})
    assert r.status_code == 201 and "/controls/" in r.get_json()["url"]
    assert client.get("/api/v1/inputs").get_json()["total"] == 1
    assert client.get("/api/v1/controls").get_json()["total"] == 1
    assert client.get("/api/v1/images").get_json()["total"] == 0


def test_cookie_issued_signed_and_forgery_replaced(app):
    c = app.test_client()
    r = c.get("/api/v1/images")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    uid = identity.verify(value, SECRET)
    assert uid and uid.startswith("anon-") and value.startswith(uid + ".")
    # the same client keeps its identity
    assert "Set-Cookie" not in c.get("/api/v1/images").headers
    forged = app.test_client()
    forged.set_cookie("anon_id", user(9) + ".forgedsignature")
    r = forged.get("/api/v1/images")
    new = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert identity.verify(new, SECRET) != user(9)


def test_listing_recent_first_for_the_cookie_owner(app, store):
    c = app.test_client()
    c.environ_base["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"
    c.get("/api/v1/images")
    ids = []
    for i in range(3):
        ids.append(c.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=i)), "x.png")}).get_json()["id"])
    body = c.get("/api/v1/inputs?size=2").get_json()
    assert [it["id"] for it in body["items"]] == ids[::-1][:2] and body["total"] == 3 and body["next_cursor"]
    nxt = c.get(f"/api/v1/inputs?size=2&cursor={body['next_cursor']}").get_json()
    assert [it["id"] for it in nxt["items"]] == [ids[0]]


def test_duplicate_of_trashed_is_flagged(client, store):
    data = make_png(seed=44)
    first = ingest(client, data).get_json()
    store.trash(user(1), first["id"])
    r = ingest(client, data)
    assert r.status_code == 201 and r.get_json()["duplicate_in_trash"] == [first["id"]]


def test_error_bodies_are_json(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and json.loads(r.data)["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/favicon.ico", "/static/icon.svg", "/s/not-a-token", "/outputs/users/x.png"])
def test_cacheable_paths_issue_no_identity(app, path):
    r = app.test_client().get(path)
    assert "Set-Cookie" not in r.headers, path


def test_pages_and_api_issue_identity(app):
    for path in ("/", "/api/v1/quota"):
        assert "anon_id=" in app.test_client().get(path).headers.get("Set-Cookie", ""), path


def test_server_errors_do_not_leak_paths(client, store, monkeypatch):
    from casvault import faults

    monkeypatch.setenv("CASVAULT_FAULTS", "sidecar.write=eio")
    faults.reset()
    try:
        r = ingest(client, make_png(seed=70))
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "storage_error"
    assert str(store.layout.root) not in r.get_data(as_text=True) and "/" not in r.get_json()["error"]["message"]


def test_if_exists_new_is_the_default_and_skip_answers_the_existing_record(client, store):
    data = make_png(seed=31)
    first = ingest(client, data, seed="1")
    second = ingest(client, data, seed="1")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["id"] != second.get_json()["id"]  # each generation is an event
    retried = ingest(client, data, seed="1", if_exists="skip")
    assert retried.status_code == 200
    body = retried.get_json()
    assert body["skipped_duplicate"] is True and body["id"] == first.get_json()["id"]
    assert store.index(user(1)).count("generated") == 2
    # Another kind, or another name, is not the same: a new record.
    control = ingest(client, data, kind="control", if_exists="skip")
    renamed = client.post("/api/v1/ingest", headers=AUTH, data={
        "file": (io.BytesIO(data), "other.png"), "owner": user(1), "if_exists": "skip"})
    assert (control.status_code, renamed.status_code) == (201, 201)
    bad = ingest(client, data, if_exists="maybe")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_request"
    assert store.index(user(1)).count("generated") == 3


def test_ingest_derives_the_aspect_ratio(client):
    body = ingest(client, make_png(width=128, height=64, seed=32)).get_json()
    assert body["aspect_ratio"] == "2:1"
