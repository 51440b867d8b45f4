"""Sign-up in Chromium: a guest's history follows them when the site signs them in.

A guest makes 5 images, 1 trashed image and 1 input in the gallery (the
images through the pipeline, as the generation site would), then the site
sets its member JWT cookie; the next page load shows all 7 in the right views
as ``u-alice``, the guest cookie is gone and the files live under
``outputs/users/u-alice/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import requests

from casvault.config import Config
from casvault.store import Store
from tests.conftest import INGEST_TOKEN, make_jpeg, make_png
from tests.e2e.conftest import new_context, open_gallery, watch_console
from tests.jwt_helpers import AUDIENCE, MEMBER_SECRET, hs256

MEMBER = "u-alice"
WRITE = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture(scope="module")
def member_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """(base url, root): an empty store behind gunicorn with 2 workers that accepts the site's HS256 tokens."""
    from tests.servers import Gunicorn

    root = tmp_path_factory.mktemp("members") / "root"
    srv = Gunicorn(root, workers=2, env={"CASVAULT_MEMBER_JWT_SECRET": MEMBER_SECRET,
                                         "CASVAULT_MEMBER_JWT_AUDIENCE": AUDIENCE})
    srv.start()
    try:
        yield srv.url, root
    finally:
        srv.stop()


def grid_ids(page, count: int) -> set[str]:
    """Wait for ``count`` tiles in the grid (the summary agreeing) and return their ids."""
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=gallery-item]').length === n", arg=count)
    return set(page.eval_on_selector_all("[data-testid=gallery-item]", "els => els.map(e => e.dataset.id)"))


def test_a_guest_signs_in_and_sees_all_their_history_as_the_member(browser, member_server, tmp_path):
    base, root = member_server
    ctx = new_context(browser, base, user_id=None, viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    errors: list[str] = []
    watch_console(page, errors)
    try:
        open_gallery(page)
        me = page.request.get("/api/v1/me").json()
        assert me["kind"] == "guest"
        guest = me["user_id"]
        assert [c["name"] for c in ctx.cookies()] == ["anon_id"]
        images = []
        for n in range(6):
            r = requests.post(base + "/api/v1/ingest", files={"file": ("a.png", make_png(96, 64, seed=800 + n))},
                              data={"owner": guest, "prompt": f"guest picture {n}"},
                              headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=10)
            assert r.status_code == 201, r.text
            images.append(r.json()["id"])
        open_gallery(page)
        assert grid_ids(page, 6) == set(images)
        # one to the trash through the gallery's API, one input uploaded in the page
        assert page.request.post(f"/api/v1/images/{images[0]}/delete", headers=WRITE).ok
        open_gallery(page, "/?view=inputs")
        pic = tmp_path / "pose.jpg"
        pic.write_bytes(make_jpeg(80, 60, seed=8))
        page.set_input_files("[data-testid=upload-input]", str(pic))
        page.wait_for_selector(".upload .upload-status:has-text('done')")
        inputs = page.request.get("/api/v1/inputs").json()["items"]
        assert [i["original_filename"] for i in inputs] == ["pose.jpg"]

        # The site signs the visitor in: it sets its member cookie, as its login would.
        ctx.add_cookies([{"name": "casvault_member", "value": hs256("alice"), "url": base,
                          "httpOnly": True, "sameSite": "Lax"}])
        open_gallery(page)
        assert grid_ids(page, 5) == set(images[1:])
        assert "anon_id" not in [c["name"] for c in ctx.cookies()]
        assert page.request.get("/api/v1/me").json() == {"user_id": MEMBER, "kind": "member"}
        open_gallery(page, "/?view=trash")
        assert grid_ids(page, 1) == {images[0]}
        open_gallery(page, "/?view=inputs")
        assert grid_ids(page, 1) == {inputs[0]["id"]}
        assert page.locator("[data-testid=gallery-item] .tile-caption").inner_text() == "pose.jpg"
    finally:
        ctx.close()
    assert errors == [], f"console errors: {errors}"
    store = Store(Config(root=root, fsync=False))
    assert set(store.index(MEMBER).records) == set(images) | {inputs[0]["id"]}
    assert store.index(guest).records == {}
    member_dir = root / "outputs" / "users" / MEMBER
    for rid in images[1:]:
        assert len(list(member_dir.rglob(f"{rid}.png"))) == 1
    assert len(list(member_dir.glob(f"inputs/*/*/*/{inputs[0]['id']}.jpg"))) == 1
    assert len(list((root / "trash" / "users" / MEMBER).rglob(f"{images[0]}.png"))) == 1
    assert not (root / "outputs" / "users" / guest).exists()
