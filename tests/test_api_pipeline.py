"""The pipeline blueprint: POST /api/v1/ingest (ingest token), its fields, if_exists and derived fields."""

import io

import pytest

from tests.conftest import INGEST_TOKEN, make_png, user

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
