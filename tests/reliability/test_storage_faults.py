"""Disk full and I/O errors injected in every write step answer 507/500 JSON and leave nothing half-written."""

from __future__ import annotations

import io

import pytest
import requests

from casvault import faults
from tests.conftest import INGEST_TOKEN, make_png, user
from tests.reliability import consistency
from tests.reliability.clients import cookie, ingest, listed, server, tiny_png

OWNER = user(31)
INGEST_POINTS = ("blob.write", "blob.write.data", "sidecar.write", "view.hardlink", "thumb.write", "manifest.append")
EXPECT = {"enospc": (507, "storage_full"), "eio": (500, "storage_error")}


@pytest.fixture
def armed(monkeypatch):
    """Arm CASVAULT_FAULTS for this process; disarmed afterwards."""

    def arm(spec: str) -> None:
        monkeypatch.setenv("CASVAULT_FAULTS", spec)
        faults.reset()

    yield arm
    monkeypatch.delenv("CASVAULT_FAULTS", raising=False)
    faults.reset()


def _visible(root) -> set[str]:
    """Files a reader could see: outputs/, trash/ and the manifests."""
    return {p for p in consistency.file_set(root) if p.startswith(("outputs/", "trash/", "meta/"))}


def _ingest(client, data: bytes):
    return client.post(
        "/api/v1/ingest",
        data={"file": (io.BytesIO(data), "x.png"), "owner": OWNER, "prompt": "fault"},
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
    )


def _upload(client, data: bytes):
    return client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(data), "x.png")})


@pytest.mark.parametrize("action", sorted(EXPECT))
@pytest.mark.parametrize("point", INGEST_POINTS)
@pytest.mark.parametrize("path", ["ingest", "upload"])
def test_ingest_fault_leaves_nothing(client, config, armed, path, point, action):
    root = config.root
    send = _ingest if path == "ingest" else _upload
    assert send(client, make_png(seed=1)).status_code == 201  # an acknowledged write before the fault
    listing = "/api/v1/images" if path == "ingest" else "/api/v1/inputs"
    if path == "ingest":
        client.set_cookie("anon_id", cookie(OWNER)["anon_id"])
    before_ids = {i["id"] for i in client.get(listing).get_json()["items"]}
    before = _visible(root)
    armed(f"{point}={action}")
    resp = send(client, make_png(seed=2))
    status, code = EXPECT[action]
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == code
    armed("")
    assert _visible(root) - before == set(), "the failed write left files behind"
    assert {i["id"] for i in client.get(listing).get_json()["items"]} == before_ids
    assert not [p for p in (root / "tmp").iterdir()], "temp files left behind"
    rep = consistency.check(root)
    assert rep.problems == [], rep.problems
    assert consistency.run_cli(root, "fsck").returncode == 0
    assert send(client, make_png(seed=2)).status_code == 201  # the same write succeeds once the disk is back


@pytest.mark.parametrize("action", sorted(EXPECT))
@pytest.mark.parametrize("point", ["sidecar.write", "manifest.append"])
@pytest.mark.parametrize("op", ["delete", "restore", "patch"])
def test_change_fault_keeps_the_old_state(client, config, armed, op, point, action):
    root = config.root
    rid = _ingest(client, make_png(seed=4)).get_json()["id"]
    client.set_cookie("anon_id", cookie(OWNER)["anon_id"])
    assert client.patch(f"/api/v1/images/{rid}", json={"tags": ["old"]}).status_code == 200
    if op == "restore":
        assert client.post(f"/api/v1/images/{rid}/delete").status_code == 200
    before = client.get(f"/api/v1/images/{rid}").get_json()
    armed(f"{point}={action}")
    if op == "patch":
        resp = client.patch(f"/api/v1/images/{rid}", json={"tags": ["new"], "favorite": True})
    else:
        resp = client.post(f"/api/v1/images/{rid}/{op}")
    status, code = EXPECT[action]
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == code
    armed("")
    after = client.get(f"/api/v1/images/{rid}").get_json()
    assert (after["status"], after["tags"], after.get("favorite")) == (before["status"], before["tags"], before.get("favorite"))
    rep = consistency.check(root)
    assert rep.problems == [], rep.problems
    assert consistency.run_cli(root, "fsck").returncode == 0


def test_disk_full_through_gunicorn(tmp_path):
    """The same through a real server: each worker fails its first blob write with ENOSPC."""
    root = tmp_path / "root"
    srv = server(root, workers=1, CASVAULT_FAULTS="blob.write.data=enospc")
    srv.start()
    try:
        with requests.Session() as s:
            first = ingest(s, srv.url, OWNER, tiny_png(1))
            assert first.status_code == 507 and first.json()["error"]["code"] == "storage_full", first.text
            second = ingest(s, srv.url, OWNER, tiny_png(2))
            assert second.status_code == 201, second.text
        assert listed(srv.url, OWNER) == (1, {second.json()["id"]})
    finally:
        srv.stop()
    rep = consistency.check(root)
    assert rep.problems == [], rep.problems
