"""web/errors.py: every error answers JSON, and a server error names no path."""

import io
import json

from tests.conftest import INGEST_TOKEN, make_png, user

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}


def ingest(client, data, **form):
    form = {"owner": user(1), **form}
    return client.post("/api/v1/ingest", data={"file": (io.BytesIO(data), "ComfyUI_00001_.png"), **form}, headers=AUTH)


def test_error_bodies_are_json(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and json.loads(r.data)["error"]["code"] == "not_found"


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
