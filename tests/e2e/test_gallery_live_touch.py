"""Live updates (new images at the top, other tabs' trash) and the phone: three
columns, a compact selection bar, long press to select, swipe and pinch in the viewer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

import pytest

from casvault.store import Store
from tests.e2e.conftest import VISITOR, art_png, fast_config, fill_gallery, new_context, open_gallery, shot, watch_console


COMFY_PATH = "/comfyui-stand-in/"


@pytest.fixture(scope="module")
def served(e2e_root) -> Iterator[tuple]:
    """This module's own store and server: these tests add and trash images."""
    from tests.servers import Gunicorn

    store = Store(fast_config(e2e_root))
    gallery = fill_gallery(store, count=60)
    srv = Gunicorn(e2e_root, workers=2)
    # NOTE: a stand-in ComfyUI address on this server (a 404 page): the gallery only opens it in a new tab.
    srv.env["CASVAULT_COMFY_URL"] = srv.url + COMFY_PATH
    srv.start()
    try:
        yield srv.url, Store(fast_config(e2e_root)), gallery
    finally:
        srv.stop()


def poll_now(page) -> None:
    """Run the page's live poll now instead of waiting for its timer (it also polls when the tab becomes visible)."""
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


def tile_at(page, index: int) -> str | None:
    return page.evaluate("i => document.querySelector(`[data-testid=gallery-item][data-index='${i}']`)?.dataset.id ?? null", index)


def test_new_images_appear_at_the_top_and_a_pill_counts_them_when_scrolled_down(page, served):
    _, store, gallery = served
    open_gallery(page)
    total = len(gallery.ids)
    with page.expect_request(lambda r: "since=" in r.url):
        poll_now(page)
    fresh = store.ingest(art_png(128, 128, seed=4242), VISITOR, prompt="a brand new lantern", created_at=datetime.now(timezone.utc)).record
    poll_now(page)
    page.wait_for_function("id => document.querySelector(\"[data-testid=gallery-item][data-index='0']\")?.dataset.id === id", arg=fresh.id)
    assert page.locator("#summary").inner_text() == f"{total + 1} images"
    assert tile_at(page, 1) == gallery.ids[0]
    assert page.locator("[data-testid=new-pill]").is_hidden()
    # Scrolled down: the view stays put, a pill says how many arrived.
    page.mouse.wheel(0, 1500)
    page.wait_for_function("() => window.scrollY > 1000")
    before = page.evaluate("window.scrollY")
    second = store.ingest(art_png(128, 128, seed=4243), VISITOR, prompt="another lantern", created_at=datetime.now(timezone.utc)).record
    poll_now(page)
    page.wait_for_selector("[data-testid=new-pill]:has-text('1 new image')")
    assert abs(page.evaluate("window.scrollY") - before) < 400
    page.click("[data-testid=new-pill]")
    page.wait_for_function("() => window.scrollY < 40")
    assert tile_at(page, 0) == second.id
    # NOTE: the page is closed before the clean-up: a poll or a thumbnail
    # request racing the purge would rightly answer 404.
    page.close()
    for rid in (fresh.id, second.id):
        store.trash(VISITOR, rid)
        store.purge(VISITOR, rid)


def test_another_tabs_trash_and_restore_are_reflected(browser, served):
    base_url, store, gallery = served
    rid = gallery.ids[2]
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800})
    try:
        one, two = ctx.new_page(), ctx.new_page()
        for pg in (one, two):
            open_gallery(pg)
        one.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').focus()
        one.keyboard.press("Delete")
        one.wait_for_selector(".toast:has-text('Moved 1 image to the trash')")
        two.wait_for_selector(f'[data-testid=gallery-item][data-id="{rid}"]', state="detached")
        assert two.locator("#summary").inner_text() == f"{len(gallery.ids) - 1} images"
        one.click(".toast button:has-text('Undo')")
        two.wait_for_selector(f'[data-testid=gallery-item][data-id="{rid}"]')
        assert store.get(VISITOR, rid).status == "active"
    finally:
        ctx.close()


SESSIONS: dict[int, object] = {}


def touch(page, kind: str, points: list[tuple[float, float]]) -> None:
    """A raw touch event through the DevTools protocol (several fingers at once; one session per page keeps the touch state)."""
    if id(page) not in SESSIONS:
        SESSIONS[id(page)] = page.context.new_cdp_session(page)
    cdp = SESSIONS[id(page)]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})


def test_phone_three_columns_long_press_swipe_and_pinch(browser, served):
    base_url, store, gallery = served
    ctx = new_context(browser, base_url, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        listings: list[str] = []
        page.on("request", lambda r: listings.append(r.url) if "/api/v1/images?" in r.url else None)
        open_gallery(page)
        assert page.locator(".grid-row").first.locator("[data-testid=gallery-item]").count() == 3
        # The first request asks for what the first view shows, not a page of 100.
        assert "page=1&size=" in listings[0] and int(listings[0].rsplit("size=", 1)[1].split("&")[0]) <= 30, listings[0]
        # Tiles are tinted with the image's stored colour while the thumbnail loads.
        first = page.locator("[data-testid=gallery-item]").first
        colour = store.get(VISITOR, first.get_attribute("data-id")).color
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert first.evaluate("e => e.style.backgroundColor") == "rgb({}, {}, {})".format(*rgb)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # A long press selects instead of opening the viewer.
        tile = page.locator("[data-testid=gallery-item]").nth(1)
        box = tile.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        touch(page, "touchStart", [(x, y)])
        page.wait_for_timeout(700)
        touch(page, "touchEnd", [])
        page.wait_for_timeout(300)
        assert page.locator("[data-testid=lightbox][open]").count() == 0
        assert page.locator("#selection-count").inner_text() == "1 image selected"
        # The selection bar is one compact row.
        bar = page.locator("[data-testid=selection-bar]").bounding_box()
        assert bar["height"] < 60, bar
        shot(page, "phone-selecting")
        page.keyboard.press("Escape")
        # Swipe moves between images in the viewer.
        page.locator("[data-testid=gallery-item] .tile-open").first.tap()
        page.wait_for_selector("[data-testid=lightbox][open]")
        page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
        first = page.get_attribute("[data-testid=lightbox]", "data-id")
        stage = page.locator("#lb-stage").bounding_box()
        cy = stage["y"] + stage["height"] / 2
        touch(page, "touchStart", [(stage["x"] + 300, cy)])
        for step in range(1, 6):
            touch(page, "touchMove", [(stage["x"] + 300 - step * 45, cy)])
        touch(page, "touchEnd", [])
        page.wait_for_function("id => document.querySelector('#lightbox').dataset.id !== id", arg=first)
        assert page.get_attribute("[data-testid=lightbox]", "data-id") == gallery.ids[1]
        # Pinch with two fingers zooms in.
        cx = stage["x"] + stage["width"] / 2
        touch(page, "touchStart", [(cx - 30, cy), (cx + 30, cy)])
        for step in range(1, 6):
            touch(page, "touchMove", [(cx - 30 - step * 20, cy), (cx + 30 + step * 20, cy)])
        touch(page, "touchEnd", [])
        page.wait_for_function("() => document.querySelector('[data-testid=lightbox-zoom]').getAttribute('aria-pressed') === 'true'")
        scale = page.evaluate("new DOMMatrix(getComputedStyle(document.querySelector('#lb-image')).transform).a")
        assert scale > 1.5
        shot(page, "phone-pinch")
    finally:
        ctx.close()
    assert errors == []


def test_open_in_comfyui_copies_the_workflow_and_opens_the_configured_comfyui(page, served):
    base_url, store, gallery = served
    assert gallery.comfy_id is not None, "the ComfyUI corpus is missing"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_gallery(page)
    page.locator(f'[data-testid=gallery-item][data-id="{gallery.comfy_id}"] .tile-open').click()
    page.wait_for_selector("[data-testid=open-comfy]:visible")
    with page.context.expect_page() as popup:
        page.click("[data-testid=open-comfy]")
    assert popup.value.url == base_url + COMFY_PATH
    popup.value.close()
    page.wait_for_selector("#lb-status:has-text('Workflow copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    stored = page.request.get(f"/api/v1/images/{gallery.comfy_id}/workflow").text()
    assert copied == stored and '"nodes"' in copied
    # An image without a workflow offers neither.
    page.click("[data-testid=lightbox-next]")
    page.wait_for_function("id => document.querySelector('#lightbox').dataset.id !== id", arg=gallery.comfy_id)
    rid = page.get_attribute("[data-testid=lightbox]", "data-id")
    if not (gallery.records[rid].source or {}).get("has_workflow"):
        page.wait_for_selector("[data-testid=open-comfy]", state="hidden")
