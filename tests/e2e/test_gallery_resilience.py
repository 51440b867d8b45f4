"""The gallery survives a lost server, and keeps the visitor informed without piling up messages.

The server is killed (SIGKILL, master and workers) mid-use and started again
on the same port; the page must notice, say so in view, retry by itself and
refill what it could not load, without any action of the visitor.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from casvault.store import Store
from tests.e2e.conftest import VISITOR, axe_violations, fast_config, fill_gallery, new_context, open_gallery


@pytest.fixture(scope="module")
def server(e2e_root):
    """A filled store behind its own gunicorn, which the tests stop and start: (Gunicorn, store, gallery)."""
    from tests.servers import Gunicorn

    store = Store(fast_config(e2e_root))
    gallery = fill_gallery(store)
    srv = Gunicorn(e2e_root, workers=2)
    srv.start()
    try:
        yield srv, Store(fast_config(e2e_root)), gallery
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def served(server) -> Iterator[tuple]:
    """The module's server in the shape the shared fixtures expect."""
    srv, store, gallery = server
    yield srv.url, store, gallery


@pytest.fixture
def page(browser, served):
    """The visitor's page; console errors fail the test, except the refused connections these tests cause."""
    ctx = new_context(browser, served[0], viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ctx.close()
    assert errors == [], f"console errors: {errors}"


@pytest.fixture
def running(server):
    """The server, started again after a test that stopped it."""
    srv = server[0]
    yield srv
    if srv.proc is None or srv.proc.poll() is not None:
        srv.start()


def banner_in_view(page, text: str) -> None:
    """Wait until the connection banner says ``text`` and is inside the viewport."""
    page.wait_for_selector(f"[data-testid=connection]:has-text('{text}')", timeout=30_000)
    box = page.locator("[data-testid=connection]").bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]


def test_killed_server_jump_into_unloaded_region_refills_when_it_returns(page, served, running):
    """Kill the server, jump to an unloaded region: one banner in view, placeholders; restart: they fill by themselves."""
    _, _, gallery = served
    open_gallery(page)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length > 10")
    running.kill()
    # A jump near the end lands in a region no page has loaded.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight * 0.8)")
    banner_in_view(page, "cannot be reached")
    assert page.locator("[data-testid=connection]").count() == 1
    assert page.locator(".tile-skeleton").count() > 5
    page.wait_for_timeout(1500)
    assert page.locator(".tile-skeleton").count() > 5, "nothing can fill while the server is down"
    assert page.locator("#grid-status").inner_text() == "Waiting for the server…"
    assert axe_violations(page) == [], "the banner is accessible too"
    running.start()
    # No click, no scroll: the page retries, says it is back, and fills the region in view.
    banner_in_view(page, "Back online")
    page.wait_for_function(
        "() => document.querySelectorAll('.tile-skeleton').length === 0"
        " && document.querySelectorAll('[data-testid=gallery-item]').length > 10", timeout=30_000)
    shown = page.eval_on_selector_all("[data-testid=gallery-item]", "els => els.map(e => [Number(e.dataset.index), e.dataset.id])")
    assert len(shown) > 10 and all(gallery.ids[i] == rid for i, rid in shown)
    assert page.locator("#summary").inner_text() == f"{len(gallery.ids)} images"
    page.wait_for_selector("[data-testid=connection]", state="hidden", timeout=10_000)


def test_each_view_shows_its_own_count_even_when_it_cannot_load(page, served, running):
    """Trash and Inputs never keep the gallery's count; after the server returns they show their own."""
    _, store, gallery = served
    open_gallery(page)
    assert page.locator("#summary").inner_text() == f"{len(gallery.ids)} images"
    running.kill()
    page.click("[data-testid=trash-view]")
    page.wait_for_url("**/?view=trash")
    banner_in_view(page, "cannot be reached")
    assert page.locator("#summary").inner_text() == ""
    page.click("[data-testid=inputs-view]")
    page.wait_for_url("**/?view=inputs")
    assert page.locator("#summary").inner_text() == ""
    running.start()
    inputs = len(store.list_all(VISITOR, "input")) if hasattr(store, "list_all") else None
    page.wait_for_function("() => document.querySelector('#summary').textContent.length > 0", timeout=30_000)
    summary = page.locator("#summary").inner_text()
    assert summary.endswith(("input", "inputs")), summary
    if inputs is not None:
        assert summary.startswith(str(inputs))


def test_lightbox_image_lost_with_the_server_comes_back_with_it(page, served, running):
    _, _, gallery = served
    open_gallery(page)
    page.locator(f'[data-testid=gallery-item][data-id="{gallery.ids[0]}"] .tile-open').click()
    page.wait_for_selector("[data-testid=lightbox][open]")
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
    running.kill()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("id => document.querySelector('#lightbox').dataset.id === id", arg=gallery.ids[2])
    # Never the old image beside the new details: a failed load says so, with Retry.
    page.wait_for_selector("#lb-error:has-text('could not be loaded')")
    assert page.locator("#lb-image").evaluate("e => getComputedStyle(e).visibility") == "hidden"
    assert page.locator("[data-testid=lightbox-retry]").is_visible()
    running.start()
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'", timeout=30_000)
    assert page.locator("#lb-image").evaluate("e => e.complete && e.naturalWidth > 0")


def test_upload_failed_by_a_lost_server_is_retried(page, served, running, tmp_path):
    from tests.conftest import make_png

    open_gallery(page, "/?view=inputs")
    running.kill()
    pic = tmp_path / "retry-me.png"
    pic.write_bytes(make_png(40, 30, seed=11))
    page.set_input_files("[data-testid=upload-input]", str(pic))
    page.wait_for_selector(".upload-failed .upload-retry")
    running.start()
    banner_in_view(page, "Back online")
    page.click(".upload-failed .upload-retry")
    page.wait_for_selector(".upload .upload-status:has-text('done')")
    names = [i["original_filename"] for i in page.request.get("/api/v1/inputs").json()["items"]]
    assert "retry-me.png" in names


def test_one_toast_at_a_time_and_zip_progress_replaced_by_its_outcome(page, served):
    _, _, gallery = served
    open_gallery(page)
    page.route("**/api/v1/images/download.zip", lambda route: route.fulfill(
        status=404, content_type="application/json", body='{"error": {"code": "not_found", "message": "no such image"}}'))
    for rid in gallery.ids[:2]:
        page.locator(f'[data-testid=gallery-item][data-id="{rid}"] [data-testid=select-toggle]').click()
    page.click("[data-testid=bulk-download]")
    page.wait_for_selector(".toast-error:has-text('The ZIP could not be made: no such image')")
    assert page.locator(".toast").count() == 1, "the progress toast became the outcome"
    assert page.locator(".toast:has-text('Preparing')").count() == 0
    # A burst of messages shows one at a time.
    page.evaluate("""async () => {
        const { toast } = await import(document.querySelector('script[type=module]').src.replace('gallery.js', 'notify.js'));
        for (let i = 0; i < 5; i++) toast('message ' + i, { error: true });
    }""")
    for _ in range(10):
        assert page.locator(".toast").count() <= 1
        page.wait_for_timeout(200)
