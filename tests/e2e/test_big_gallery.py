"""A 10,000-image gallery stays light: the DOM holds a bounded number of tiles
however far the visitor scrolls, and the scroll height comes from the total."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from casvault.store import Store
from tests.e2e.conftest import VISITOR, fast_config, fill_many, open_gallery, shot

COUNT = 10_000


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Store, None]]:
    """A store with 10,000 generated images for the visitor behind gunicorn."""
    from tests.servers import Gunicorn

    root = tmp_path_factory.mktemp("big") / "root"
    store = Store(fast_config(root))
    fill_many(store, VISITOR, COUNT)
    srv = Gunicorn(root, workers=2)
    srv.start()
    try:
        yield srv.url, store, None
    finally:
        srv.stop()


def dom_stats(page) -> dict:
    return page.evaluate(
        """() => ({
          tiles: document.querySelectorAll('[data-testid=gallery-item]').length,
          nodes: document.querySelectorAll('#grid *').length,
          height: document.documentElement.scrollHeight,
          loaded: Math.max(-1, ...[...document.querySelectorAll('[data-testid=gallery-item]')].map(e => +e.dataset.index)),
        })"""
    )


def test_ten_thousand_images_keep_the_dom_bounded(page, served):
    open_gallery(page)
    assert page.locator("#summary").inner_text() == "10,000 images"
    cols = page.evaluate("document.querySelector('.grid-row').children.length")
    start = dom_stats(page)
    # The height is there from the first page: rows of the total, not of what is loaded.
    assert start["height"] > (COUNT / cols) * 170
    assert start["tiles"] < 120
    # Scroll far: half way down, then to the very end.
    t0 = time.monotonic()
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=gallery-item]')].some(e => +e.dataset.index > 4000)", timeout=60_000)
    middle = dom_stats(page)
    assert middle["tiles"] < 120 and middle["nodes"] < 1200
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_selector("#grid-status:has-text('That is everything.')", timeout=60_000)
    elapsed = time.monotonic() - t0
    # NOTE: the estimate of the unloaded part is close, not exact; at the end it is exact.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_selector(f'[data-testid=gallery-item][data-index="{COUNT - 1}"]')
    end = dom_stats(page)
    assert end["tiles"] < 120 and end["nodes"] < 1200
    assert page.locator("#grid-status").inner_text() == "That is everything."
    shot(page, "big-end")
    # Scrolling with the wheel for a while keeps it bounded too.
    page.evaluate("window.scrollTo(0, 0)")
    for _ in range(40):
        page.mouse.wheel(0, 1500)
    page.wait_for_timeout(200)
    assert dom_stats(page)["tiles"] < 120
    print(f"10k: first height {start['height']}px, end tiles {end['tiles']}, nodes {end['nodes']}, jump to end {elapsed:.1f}s")
