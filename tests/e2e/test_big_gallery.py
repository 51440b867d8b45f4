"""A 100,000-image gallery stays light and lets the visitor jump: the DOM holds
a bounded number of tiles wherever they are, the scroll height comes from the
total, and a jump (End, the scroll bar, a link to a position) fetches that
region directly by offset instead of every page before it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from casvault.store import Store
from tests.e2e.conftest import VISITOR, fast_config, fill_many, open_gallery, shot

COUNT = 100_000
PAGE = 100  # the gallery's page size


@pytest.fixture(scope="session")
def big_store(tmp_path_factory) -> tuple[Path, list[str]]:
    """(root, ids newest first): 100,000 generated images of the visitor, built once per session."""
    root = tmp_path_factory.mktemp("big") / "root"
    t0 = time.monotonic()
    ids = fill_many(Store(fast_config(root)), VISITOR, COUNT)
    print(f"\n100k store built in {time.monotonic() - t0:.1f}s")
    return root, ids


@pytest.fixture(scope="module")
def served(big_store) -> Iterator[tuple[str, Store, list[str]]]:
    """The 100,000-image store behind gunicorn (2 workers)."""
    from tests.servers import Gunicorn

    root, ids = big_store
    srv = Gunicorn(root, workers=2)
    srv.start()
    try:
        yield srv.url, Store(fast_config(root)), ids
    finally:
        srv.stop()


def dom_stats(page) -> dict:
    return page.evaluate(
        """() => ({
          tiles: document.querySelectorAll('[data-testid=gallery-item]').length,
          nodes: document.querySelectorAll('#grid *').length,
          height: document.documentElement.scrollHeight,
        })"""
    )


def listing_requests(page) -> list[str]:
    """Collects the URLs of the page's listing requests from now on."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if "/api/v1/images?" in r.url else None)
    return urls


def tile_positions(page) -> dict[int, str]:
    """Position -> id of the tiles in the DOM."""
    return {int(i): rid for i, rid in page.eval_on_selector_all("[data-testid=gallery-item]", "els => els.map(e => [e.dataset.index, e.dataset.id])")}


def check_tiles(page, ids: list[str]) -> dict[int, str]:
    """Every tile in the DOM shows the image at its position in the listing; returns them."""
    shown = tile_positions(page)
    assert shown, "no tiles"
    assert all(ids[i] == rid for i, rid in shown.items()), "a tile shows the wrong image for its position"
    return shown


def settle(page) -> None:
    """Wait until no listing request is in flight and the next frame has been drawn."""
    page.wait_for_function("() => document.querySelector('#grid').getAttribute('aria-busy') === 'false'")
    page.wait_for_timeout(250)
    page.wait_for_function("() => document.querySelector('#grid').getAttribute('aria-busy') === 'false'")


def header_days(page) -> list[str]:
    return page.eval_on_selector_all(".day-header", "els => els.map(e => e.textContent)")


def day_label(page, iso: str) -> str:
    """The header text the page shows for the day of ``iso`` (a UTC time; the store's partition zone is UTC)."""
    return page.evaluate(
        """iso => new Intl.DateTimeFormat(undefined, {timeZone: 'UTC', weekday: 'short', year: 'numeric', month: 'long', day: 'numeric'})
             .format(new Date(iso.slice(0, 10) + 'T12:00:00Z'))""",
        iso,
    )


def test_end_key_shows_the_oldest_image_in_a_couple_of_requests(page, served):
    _, store, ids = served
    open_gallery(page)
    assert page.locator("#summary").inner_text() == "100,000 images"
    cols = page.evaluate("document.querySelector('.grid-row').children.length")
    start = dom_stats(page)
    # The height is there from the first page: rows of the total, not of what is loaded.
    assert start["height"] > (COUNT / cols) * 170
    assert start["tiles"] < 120
    settle(page)  # NOTE: the read-ahead of the first pages may still be in flight
    urls = listing_requests(page)
    t0 = time.monotonic()
    page.keyboard.press("End")
    oldest = page.locator(f'[data-testid=gallery-item][data-id="{ids[-1]}"]')
    oldest.wait_for(timeout=45_000)
    page.wait_for_selector("#grid-status:has-text('That is everything.')")
    elapsed = time.monotonic() - t0
    # NOTE: a read-ahead by cursor of the first pages may still start as the
    # key is pressed on a loaded machine; what counts is that the end is
    # fetched by offset, not by walking the pages before it.
    assert 1 <= len(urls) <= 3, urls
    assert any(f"page={COUNT // PAGE}&size={PAGE}" in u and "cursor" not in u for u in urls), urls
    # The oldest image is in view, at the very end of the grid, under its day's header.
    box = oldest.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]
    gap_below = page.evaluate("() => document.querySelector('#grid').getBoundingClientRect().bottom") - (box["y"] + box["height"])
    assert 0 <= gap_below < 20, f"the grid ends {gap_below}px below the last tile"
    oldest_record = store.get(VISITOR, ids[-1])
    assert header_days(page)[-1] == day_label(page, oldest_record.created_at)
    shown = check_tiles(page, ids)
    assert max(shown) == COUNT - 1
    end = dom_stats(page)
    assert end["tiles"] < 120 and end["nodes"] < 1200
    shot(page, "big-end")
    print(f"\n100k: End -> oldest image in {elapsed:.2f}s with {len(urls)} listing requests; {end['tiles']} tiles, {end['nodes']} nodes")


def test_scroll_bar_jump_fetches_the_middle_directly_and_fills_the_gap_above_lazily(page, served):
    _, store, ids = served
    open_gallery(page)
    settle(page)
    urls = listing_requests(page)
    # A drag of the scroll bar ends at the middle: positions passed on the way are never fetched.
    page.evaluate("""() => { const h = document.documentElement.scrollHeight;
        for (let k = 1; k <= 10; k += 1) window.scrollTo(0, h * k / 20); }""")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=gallery-item]')].some(e => +e.dataset.index > 40000)", timeout=45_000)
    page.wait_for_timeout(300)
    assert 1 <= len(urls) <= 3, urls
    assert all("cursor" not in u for u in urls[:1])
    shown = check_tiles(page, ids)
    middle = min(shown)
    assert 40_000 < middle < 60_000
    stats = dom_stats(page)
    assert stats["tiles"] < 120 and stats["nodes"] < 1200
    # Every header sits above tiles of its day.
    days = page.eval_on_selector_all(
        ".day-header, [data-testid=gallery-item]",
        "els => els.map(e => e.classList.contains('day-header') ? ['h', e.textContent, e.getBoundingClientRect().top] : ['t', e.dataset.index, e.getBoundingClientRect().top])",
    )
    headers = sorted((top, text) for kind, text, top in days if kind == "h")
    for kind, index, top in days:
        if kind != "t":
            continue
        above = [text for htop, text in headers if htop < top]
        if above:
            record = store.get(VISITOR, ids[int(index)])
            assert above[-1] == day_label(page, record.created_at)
    shot(page, "big-middle")
    # Scrolling up into the part never loaded fills it by offset, in order, with nothing skipped.
    before = len(urls)
    first_seen = middle
    for _ in range(12):
        page.mouse.wheel(0, -900)
        page.wait_for_timeout(150)
        first_seen = min(first_seen, min(check_tiles(page, ids)))
    assert first_seen < middle - PAGE
    assert any("page=" in u for u in urls[before:]), urls[before:]
    # Scrolling down reads on by cursor from the loaded region.
    page.evaluate("window.scrollBy(0, 0)")
    before = len(urls)
    for _ in range(25):
        page.mouse.wheel(0, 1200)
        page.wait_for_timeout(80)
    page.wait_for_timeout(300)
    check_tiles(page, ids)
    assert any("cursor=" in u for u in urls[before:]), urls[before:]
    assert dom_stats(page)["tiles"] < 120


def test_link_to_a_position_opens_there(page, served):
    _, _, ids = served
    urls = listing_requests(page)
    page.goto("/#at=75000")
    page.locator(f'[data-testid=gallery-item][data-id="{ids[75_000]}"]').wait_for(timeout=45_000)
    settle(page)
    box = page.locator(f'[data-testid=gallery-item][data-id="{ids[75_000]}"]').bounding_box()
    assert box and 56 <= box["y"] < page.viewport_size["height"] - box["height"], box
    assert urls and f"page={75_000 // PAGE + 1}&size={PAGE}" in urls[0]
    assert all("page=1&" not in u for u in urls), "the top of the listing is not fetched first"
    check_tiles(page, ids)
    # Scrolling records the position in the URL, for a reload or a bookmark.
    page.mouse.wheel(0, 2000)
    page.wait_for_function("() => /^#at=7[0-9]{4}$/.test(location.hash) && location.hash !== '#at=75000'", timeout=5000)
    at = int(page.evaluate("location.hash").split("=")[1])
    page.reload()
    page.wait_for_selector(f'[data-testid=gallery-item][data-id="{ids[at]}"]', timeout=45_000)


def test_wheel_scrolling_reads_on_by_cursor_and_keeps_the_dom_bounded(page, served):
    _, _, ids = served
    open_gallery(page)
    urls = listing_requests(page)
    # Reading on at a reading pace: the next pages come by cursor, before the view reaches them.
    # NOTE: each step waits until nothing is pending, so a loaded machine cannot
    # turn reading into a jump (which would rightly fetch by offset).
    for _ in range(30):
        page.mouse.wheel(0, 700)
        page.wait_for_timeout(60)
        page.wait_for_function("() => document.querySelectorAll('.tile-skeleton').length === 0", timeout=10_000)
    settle(page)
    assert len(urls) >= 2 and all("cursor=" in u for u in urls), urls
    check_tiles(page, ids)
    # A fast fling far past what is loaded: the region it lands in, not every page on the way.
    before = len(urls)
    for _ in range(40):
        page.mouse.wheel(0, 3000)
    settle(page)
    assert dom_stats(page)["tiles"] < 120
    passed = min(check_tiles(page, ids)) // PAGE
    # NOTE: a loaded machine spaces the wheel events out, so some regions on the
    # way may be fetched; walking every page would take one request per page.
    assert passed > 30 and len(urls) - before <= passed // 2, (passed, urls[before:])


def test_trash_and_undo_far_from_the_top(page, served):
    """Positions stay right when images leave and come back in a region reached by a jump."""
    _, store, ids = served
    open_gallery(page)
    settle(page)  # NOTE: as in the End test: the first pages' read-ahead may still be in flight
    page.keyboard.press("End")
    page.locator(f'[data-testid=gallery-item][data-id="{ids[-1]}"]').wait_for(timeout=45_000)
    settle(page)
    chosen = [ids[-9], ids[-8]]
    try:
        for rid in chosen:
            page.locator(f'[data-testid=gallery-item][data-id="{rid}"] [data-testid=select-toggle]').click()
        page.click("[data-testid=bulk-delete]")
        page.wait_for_selector(".toast:has-text('Moved 2 images to the trash')")
        page.wait_for_selector("#summary:has-text('99,998 images')")
        settle(page)
        rest = [rid for rid in ids if rid not in chosen]
        shown = check_tiles(page, rest)
        assert max(shown) == COUNT - 3 and not set(chosen) & set(shown.values())
        page.click(".toast-action:has-text('Undo')")
        page.wait_for_selector("#summary:has-text('100,000 images')")
        settle(page)
        shown = check_tiles(page, ids)
        assert {COUNT - 9, COUNT - 8} <= set(shown)
    finally:
        for rid in chosen:
            if store.get(VISITOR, rid).status != "active":
                store.restore(VISITOR, rid)
