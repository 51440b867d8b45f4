"""Inputs and controls: upload, copy (same blob, no bytes copied), get, files, delete, restore, purge."""

from __future__ import annotations

import io
import os

import pytest

from tests.api_helpers import add_image, error_code, visitor
from tests.conftest import make_jpeg, make_png


@pytest.fixture
def me(client):
    """The test client's guest id."""
    return visitor(client)


@pytest.mark.parametrize("collection,kind,folder", [("inputs", "input", "inputs"), ("controls", "control", "controls")])
def test_upload_get_file_delete_restore(client, store, me, collection, kind, folder):
    resp = client.post(f"/api/v1/{collection}/upload", data={"file": (io.BytesIO(make_jpeg(seed=3)), "photo.jpeg")})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["kind"] == kind and body["mime"] == "image/jpeg" and body["original_filename"] == "photo.jpeg"
    assert f"/users/{me}/{folder}/" in body["url"] and body["url"].endswith(".jpg")
    rid = body["id"]
    assert client.get(f"/api/v1/{collection}/{rid}").get_json()["id"] == rid
    assert client.get(f"/api/v1/{collection}").get_json()["items"][0]["id"] == rid
    assert client.get(f"/api/v1/{collection}/{rid}/file").data == make_jpeg(seed=3)
    trashed = client.post(f"/api/v1/{collection}/{rid}/delete").get_json()
    assert trashed["status"] == "trash" and trashed["url"] == f"/api/v1/{collection}/{rid}/file"
    assert client.get(trashed["url"]).data == make_jpeg(seed=3)
    assert client.get(trashed["thumb_url"]).status_code == 200
    assert client.get(f"/api/v1/{collection}?include=trash").get_json()["total"] == 1
    assert client.post(f"/api/v1/{collection}/{rid}/restore").get_json()["status"] == "active"
    assert client.post(f"/api/v1/{collection}/{rid}/delete").status_code == 200
    assert client.post(f"/api/v1/{collection}/{rid}/purge").get_json()["purged"] is True
    assert client.get(f"/api/v1/{collection}/{rid}").status_code == 404


def test_copy_image_to_input_shares_the_blob(client, store, me):
    src = add_image(store, me, seed=7)
    resp = client.post("/api/v1/inputs/copy", json={"image_id": src.id})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["kind"] == "input" and body["sha256"] == src.sha256 and body["id"] != src.id
    assert body["source"] == {"copied_from": src.id, "kind": "generated"}
    new = store.get(me, body["id"])
    projection = store.layout.image_path(new)
    assert projection.read_bytes() == make_png(seed=7)
    if store.link_mode == "hardlink":
        blob = store.blobs.path(src.sha256)
        assert os.stat(projection).st_ino == os.stat(blob).st_ino  # no bytes copied
    assert sum(1 for _ in store.blobs.iter()) == 1
    # and from that input, a control
    ctl = client.post("/api/v1/controls/copy", json={"input_id": body["id"]})
    assert ctl.status_code == 201 and ctl.get_json()["kind"] == "control"
    back = client.post("/api/v1/inputs/copy", json={"control_id": ctl.get_json()["id"]})
    assert back.status_code == 201 and back.get_json()["sha256"] == src.sha256


def test_copy_refuses_wrong_kind_trash_and_bad_bodies(client, store, me):
    image = add_image(store, me, seed=1)
    inp = add_image(store, me, seed=2, kind="input")
    # wrong kind behind the field name: 404
    for path, body in [
        ("/api/v1/inputs/copy", {"image_id": inp.id}),
        ("/api/v1/inputs/copy", {"control_id": image.id}),
        ("/api/v1/controls/copy", {"input_id": image.id}),
        ("/api/v1/controls/copy", {"image_id": "0" * 32}),
    ]:
        resp = client.post(path, json=body)
        assert resp.status_code == 404 and error_code(resp) == "not_found", (path, body)
    for path, body in [
        ("/api/v1/inputs/copy", {}),
        ("/api/v1/inputs/copy", {"image_id": image.id, "control_id": image.id}),
        ("/api/v1/inputs/copy", {"input_id": inp.id}),
        ("/api/v1/inputs/copy", {"image_id": 5}),
        ("/api/v1/controls/copy", {"control_id": image.id}),
        ("/api/v1/controls/copy", [image.id]),
    ]:
        resp = client.post(path, json=body)
        assert resp.status_code == 400 and error_code(resp) == "bad_request", (path, body)
    store.trash(me, image.id)
    resp = client.post("/api/v1/inputs/copy", json={"image_id": image.id})
    assert resp.status_code == 409 and error_code(resp) == "conflict"
    assert store.usage(me).count == 2


def test_wrong_kind_ids_are_404_on_every_collection(client, store, me):
    image = add_image(store, me, seed=1)
    inp = add_image(store, me, seed=2, kind="input")
    for collection, rid in [("inputs", image.id), ("controls", inp.id), ("images", inp.id)]:
        for suffix in ("", "/file", "/thumb"):
            assert client.get(f"/api/v1/{collection}/{rid}{suffix}").status_code == 404
        for action in ("delete", "restore", "purge"):
            resp = client.post(f"/api/v1/{collection}/{rid}/{action}")
            assert resp.status_code == 404 and error_code(resp) == "not_found"
    assert store.get(me, image.id).status == "active" and store.get(me, inp.id).status == "active"


@pytest.mark.parametrize("data,status,code", [
    (b"GIF89a" + b"\0" * 40, 415, "unsupported_media_type"),
    (b"", 415, "unsupported_media_type"),
    (make_png(seed=1)[:60], 415, "unsupported_media_type"),
])
def test_upload_refuses_non_images_and_leaves_nothing(client, store, me, data, status, code):
    resp = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(data), "x.png")})
    assert resp.status_code == status and error_code(resp) == code
    assert store.usage(me).count == 0
    assert not any(store.layout.outputs.rglob("*.json"))
    assert list(store.layout.tmp.iterdir()) == []


def test_upload_without_file_or_with_repeated_fields_is_400(client, store, me):
    assert client.post("/api/v1/inputs/upload", data={}).status_code == 400
    resp = client.post("/api/v1/controls/upload", data={
        "file": (io.BytesIO(make_png(seed=1)), "a.png"), "tags": ["a", "b"],
    })
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "tags"
    assert store.usage(me).count == 0


def test_upload_too_large_is_413(tmp_path):
    from casvault.config import Config
    from web import create_app

    from tests.api_helpers import new_client
    from tests.conftest import SECRET

    app = create_app(Config(root=tmp_path / "r", secret_key=SECRET, max_upload_bytes=1000, thumb_size=32))
    c = new_client(app)
    big = make_png(300, 300, seed=1, text={"pad": "x" * 5000})
    resp = c.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(big), "big.png")})
    assert resp.status_code == 413 and error_code(resp) == "too_large"


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
