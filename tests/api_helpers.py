"""Small helpers shared by the API tests: visitors with their own cookie, records made through the store."""

from __future__ import annotations

from typing import Any

from casvault.records import Record
from casvault.store import Store
from tests.conftest import ADMIN_TOKEN, make_png

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def new_client(app):
    """A test client with its own cookie jar that sends the same-origin marker header."""
    c = app.test_client()
    c.environ_base["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"
    return c


def owner_client(app, owner: str):
    """A test client whose signed ``anon_id`` cookie names ``owner``."""
    from casvault import identity

    c = new_client(app)
    c.set_cookie(identity.COOKIE_NAME, identity.issue(app.config["SECRET_KEY"], owner)[1])
    return c


def visitor(client) -> str:
    """The guest id the server gave this client (issuing one on the first call)."""
    cookie = client.get_cookie("anon_id")
    if cookie is None:
        assert client.get("/api/v1/quota").status_code == 200
        cookie = client.get_cookie("anon_id")
    return cookie.value.split(".")[0]


def add_image(store: Store, owner: str, seed: int = 0, kind: str = "generated", **fields: Any) -> Record:
    """A record of ``owner`` stored through the core (distinct content per seed)."""
    return store.ingest(make_png(seed=seed), owner, kind, **fields).record


def error_code(resp) -> str:
    """The error code of a JSON error answer (asserting its shape)."""
    body = resp.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]
