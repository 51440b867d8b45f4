"""The ComfyUI endpoints: workflow download, staging and release of inputs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from casvault import identity
from casvault.store import Store
from tests.conftest import INGEST_TOKEN, SECRET, make_jpeg, make_png, user

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
GENERATED = ["lora_lora.png", "flux_flux_dev_example.png", "sdxl_sdxl_refiner_prompt_example.png", "img2img_img2img_workflow.png"]
BOB = user(2)


@pytest.fixture
def visitor(app):
    """(test client with a signed cookie, its user id); sends no CSRF header."""
    uid, cookie = identity.issue(SECRET)
    c = app.test_client()
    c.set_cookie(identity.COOKIE_NAME, cookie)
    return c, uid


@pytest.fixture
def comfy_input(tmp_path: Path) -> Path:
    folder = tmp_path / "ComfyUI" / "input"
    folder.mkdir(parents=True)
    (folder / "example.png").write_bytes(make_png(8, 8, seed=42))
    return folder


def test_workflow_is_the_exact_chunk_from_the_png(visitor, store: Store, corpus: Path) -> None:
    c, uid = visitor
    for name in GENERATED:
        data = (corpus / name).read_bytes()
        record = store.ingest(data, uid, original_filename=name).record
        with Image.open(corpus / name) as im:
            chunks = dict(im.text)

        r = c.get(f"/api/v1/images/{record.id}/workflow")  # a GET needs no CSRF header
        assert r.status_code == 200, r.get_json()
        assert r.mimetype == "application/json"
        assert r.headers["Content-Disposition"] == f"attachment; filename={record.id}-workflow.json"
        assert r.get_data() == chunks["workflow"].encode("utf-8"), name
        assert "nodes" in r.get_json()  # the UI graph ComfyUI loads

        r = c.get(f"/api/v1/images/{record.id}/workflow?format=api")
        assert r.status_code == 200
        assert r.headers["Content-Disposition"] == f"attachment; filename={record.id}-workflow-api.json"
        assert r.get_data() == chunks["prompt"].encode("utf-8"), name
        assert all("class_type" in node for node in r.get_json().values())


def test_workflow_404s_and_400(visitor, app, store: Store, corpus: Path) -> None:
    c, uid = visitor
    plain = store.ingest((corpus / "controlnet_input_scribble_example.png").read_bytes(), uid).record
    jpeg = store.ingest(make_jpeg(seed=1), uid).record
    prompt_only = store.ingest(make_png(seed=2, text={"prompt": '{"1": {"class_type": "X", "inputs": {}}}'}), uid).record
    lora = (corpus / "lora_lora.png").read_bytes()
    mine = store.ingest(lora, uid).record
    as_input = store.ingest(lora, uid, "input").record
    theirs = store.ingest(lora, BOB).record

    for rid in (plain.id, jpeg.id, prompt_only.id, theirs.id, as_input.id, "0" * 32, "not-an-id"):
        r = c.get(f"/api/v1/images/{rid}/workflow")
        assert r.status_code == 404, rid
        assert r.get_json()["error"]["code"] == "not_found"
    assert c.get(f"/api/v1/images/{prompt_only.id}/workflow?format=api").status_code == 200
    assert c.get(f"/api/v1/images/{theirs.id}/workflow?format=api").status_code == 404
    r = c.get(f"/api/v1/images/{mine.id}/workflow?format=xml")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "format"

    # Trashed images are still the owner's: the workflow stays downloadable.
    store.trash(uid, mine.id)
    assert c.get(f"/api/v1/images/{mine.id}/workflow").status_code == 200


def test_stage_and_release_leave_the_input_folder_as_it_was(client, store: Store, comfy_input: Path) -> None:
    data = make_png(40, 40, seed=3)
    record = store.ingest(data, BOB, "input", original_filename="pose.png").record
    before = sorted(os.listdir(comfy_input))

    r = client.post(f"/api/v1/inputs/{record.id}/stage", json={"owner": BOB, "comfy_input_dir": str(comfy_input)}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["dir"] == str(comfy_input) and body["name"].startswith(f"casvault_{record.id}_")
    staged = comfy_input / body["name"]
    # The default (reflink, else copy) gives the staged name an inode of its own.
    assert os.stat(staged).st_ino != os.stat(store.blobs.path(record.sha256)).st_ino
    assert staged.read_bytes() == data

    names = [body["name"], "example.png", "../outside.png"]
    r = client.post("/api/v1/staged/release", json={"names": names, "comfy_input_dir": str(comfy_input)}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"removed": 1}
    assert sorted(os.listdir(comfy_input)) == before
    r = client.post("/api/v1/staged/release", json={"names": [body["name"]], "comfy_input_dir": str(comfy_input)}, headers=AUTH)
    assert r.get_json() == {"removed": 0}  # already gone is fine


def test_stage_uses_comfy_input_dir_from_the_environment(client, store: Store, comfy_input: Path, monkeypatch) -> None:
    record = store.ingest(make_png(seed=4), BOB, "generated").record
    r = client.post(f"/api/v1/inputs/{record.id}/stage", json={"owner": BOB}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "comfy_input_dir"
    monkeypatch.setenv("COMFY_INPUT_DIR", str(comfy_input))
    r = client.post(f"/api/v1/inputs/{record.id}/stage", json={"owner": BOB}, headers=AUTH)
    assert r.status_code == 201 and r.get_json()["dir"] == str(comfy_input)
    assert (comfy_input / r.get_json()["name"]).is_file()
    r = client.post("/api/v1/staged/release", json={"names": [r.get_json()["name"]]}, headers=AUTH)
    assert r.get_json() == {"removed": 1}


def test_stage_uses_the_configured_folder(config, comfy_input: Path) -> None:
    from web import create_app

    app = create_app(config.with_(comfy_input_dir=str(comfy_input)))
    store = Store(config)
    record = store.ingest(make_png(seed=5), BOB, "control").record
    r = app.test_client().post(f"/api/v1/inputs/{record.id}/stage", json={"owner": BOB}, headers=AUTH)
    assert r.status_code == 201 and r.get_json()["dir"] == str(comfy_input)


def test_stage_refusals(client, app, store: Store, comfy_input: Path, tmp_path: Path) -> None:
    record = store.ingest(make_png(seed=6), BOB, "input").record
    url = f"/api/v1/inputs/{record.id}/stage"
    good = {"owner": BOB, "comfy_input_dir": str(comfy_input)}
    before = sorted(os.listdir(comfy_input))

    # No token, a wrong one, or only the visitor's cookie: 401.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.post(url, json=good, headers=headers)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    cases = [
        ({"owner": user(3), "comfy_input_dir": str(comfy_input)}, 404, "not_found"),  # another owner's id
        ({"comfy_input_dir": str(comfy_input)}, 400, "bad_request"),
        ({"owner": "../../etc", "comfy_input_dir": str(comfy_input)}, 400, "bad_request"),
        ({"owner": BOB, "comfy_input_dir": str(tmp_path / "missing")}, 400, "bad_request"),
        ({"owner": BOB, "comfy_input_dir": 7}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        r = client.post(url, json=body, headers=AUTH)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), body
    r = client.post(url, data="not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = client.post("/api/v1/inputs/" + "0" * 32 + "/stage", json=good, headers=AUTH)
    assert r.status_code == 404
    store.trash(BOB, record.id)
    r = client.post(url, json=good, headers=AUTH)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "conflict"
    r = client.post("/api/v1/staged/release", json={"names": "casvault_x.png", "comfy_input_dir": str(comfy_input)}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "names"
    r = client.post("/api/v1/staged/release", json={"names": []})
    assert r.status_code == 401
    assert sorted(os.listdir(comfy_input)) == before


def test_jobmanager_flow_through_gunicorn(tmp_path: Path, comfy_input: Path, corpus: Path) -> None:
    """Ingest, stage and release over HTTP against three workers, input folder from COMFY_INPUT_DIR."""
    import requests

    from tests.servers import Gunicorn

    srv = Gunicorn(tmp_path / "root", workers=3, env={"COMFY_INPUT_DIR": str(comfy_input)})
    srv.start()
    try:
        before = sorted(os.listdir(comfy_input))
        data = (corpus / "img2img_img2img_workflow.png").read_bytes()
        r = requests.post(
            srv.url + "/api/v1/ingest", headers=AUTH, timeout=10,
            files={"file": ("ComfyUI_00007_.png", io.BytesIO(data), "image/png")}, data={"owner": BOB, "kind": "input"},
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        names = []
        for _ in range(3):  # likely served by different workers
            r = requests.post(srv.url + f"/api/v1/inputs/{rid}/stage", json={"owner": BOB}, headers=AUTH, timeout=10)
            assert r.status_code == 201, r.text
            names.append(r.json()["name"])
        assert len(set(names)) == 3
        blob = tmp_path / "root" / "blobs" / "sha256"
        inodes = {os.stat(comfy_input / n).st_ino for n in names}
        blob_file = next(p for p in blob.rglob("*") if p.is_file())
        assert len(inodes) == 3 and os.stat(blob_file).st_ino not in inodes
        assert all((comfy_input / n).read_bytes() == data for n in names)
        r = requests.post(srv.url + "/api/v1/staged/release", json={"names": names}, headers=AUTH, timeout=10)
        assert r.json() == {"removed": 3}
        assert sorted(os.listdir(comfy_input)) == before
    finally:
        srv.stop()


def test_workflow_of_animations_and_videos(visitor, store: Store) -> None:
    c, uid = visitor
    recorded = Path(__file__).parent / "data" / "comfyui-real" / "view" / "output"
    for name in ("anim/apng_00001_.png", "anim/webp_00001_.webp", "video/ComfyUI_00001_.mp4", "video/webm_00001_.webm"):
        record = store.ingest((recorded / name).read_bytes(), uid, original_filename=name).record
        r = c.get(f"/api/v1/images/{record.id}/workflow")
        assert r.status_code == 200, name
        assert "nodes" in r.get_json(), name  # the UI graph ComfyUI loads, from the comf chunk / EXIF / container
        api = c.get(f"/api/v1/images/{record.id}/workflow?format=api").get_json()
        assert api["1"]["class_type"] == "LoadImage", name
