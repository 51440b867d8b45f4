"""The gallery page in Debian's Chromium against a real gunicorn: scrolling,
search and filters in the URL, the lightbox, favorites and tags, bulk actions,
trash, ZIP, share links, the input library and the admin page."""

from __future__ import annotations

import io
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, make_jpeg
from tests.e2e.conftest import OTHER, VISITOR, new_context, open_gallery, scroll_to_tile, shot, tile_ids, watch_console

DOCS = Path(__file__).resolve().parents[2] / "docs"


def api_get(page, path: str) -> dict:
    """GET an API path with the page's cookies."""
    resp = page.request.get(path)
    assert resp.ok, f"{path}: {resp.status} {resp.text()}"
    return resp.json()


def listed_ids(page, query: str) -> list[str]:
    """Every id the API lists for a query, following cursors."""
    ids: list[str] = []
    cursor = ""
    while True:
        body = api_get(page, f"/api/v1/images?size=200&{query}{'&cursor=' + cursor if cursor else ''}")
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids


def all_loaded_ids(page) -> list[str]:
    """Scroll to the end of the grid; return every id seen on the way, in order."""
    seen: dict[str, int] = {}
    for _ in range(200):
        for rid in page.eval_on_selector_all(
            "[data-testid=gallery-item]", "els => els.map(e => e.dataset.id + ' ' + e.dataset.index)"
        ):
            rid, index = rid.split()
            seen[rid] = int(index)
        at_end = page.evaluate("window.scrollY + innerHeight >= document.documentElement.scrollHeight - 2")
        if at_end and page.locator("#grid-status").inner_text() in ("That is everything.", ""):
            if page.evaluate("document.querySelectorAll('.tile-skeleton').length") == 0:
                break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(40)
    return sorted(seen, key=seen.get)


def lightbox_id(page) -> str:
    return page.get_attribute("[data-testid=lightbox]", "data-id")


def test_scroll_through_every_image(page, served):
    """Scrolling shows every image once, newest first, under date headers, with a bounded DOM."""
    _, _, gallery = served
    open_gallery(page)
    first = tile_ids(page)
    assert first[:5] == gallery.ids[:5]
    assert page.locator(".day-header").first.inner_text().startswith("Fri")
    # Fixed boxes: every tile has the same size as soon as it is in the DOM, before its image loads.
    sizes = page.eval_on_selector_all("[data-testid=gallery-item]", "els => els.map(e => e.getBoundingClientRect().width + 'x' + e.getBoundingClientRect().height)")
    assert len(set(sizes)) == 1
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 3000, "the scroll height comes from the total, not from what is loaded"
    img = page.locator("[data-testid=gallery-item] img").first
    assert img.get_attribute("loading") == "lazy"
    assert img.get_attribute("alt")
    if gallery.comfy_id is None:
        page.evaluate("window.scrollTo(0, 0)")
    shot(page, "gallery-top")
    seen = all_loaded_ids(page)
    assert len(seen) == len(gallery.ids) >= 130
    assert seen == gallery.ids
    assert page.locator("[data-testid=gallery-item]").count() < 80, "only rows near the viewport are in the DOM"
    assert page.locator("#grid-status").inner_text() == "That is everything."


def test_search_finds_prompt_words(page, served):
    _, _, gallery = served
    open_gallery(page)
    page.fill("[data-testid=search]", "zebracorn aurora")
    page.wait_for_url("**/?q=zebracorn+aurora")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length === 1")
    assert tile_ids(page) == [gallery.special_id]
    assert page.locator("#summary").inner_text() == "1 image match"
    page.fill("[data-testid=search]", "no such words at all")
    page.wait_for_selector("text=No images match these filters.")
    assert page.locator("[data-testid=gallery-item]").count() == 0
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length === 1")
    assert page.input_value("[data-testid=search]") == "zebracorn aurora"


def wait_for_listing(page, expected: list[str]) -> None:
    """Wait until the grid holds a prefix of ``expected`` (from the top) and the count says all of it."""
    page.wait_for_function(
        """want => {
          const ids = [...document.querySelectorAll('[data-testid=gallery-item]')]
            .sort((a, b) => a.dataset.index - b.dataset.index).map(e => e.dataset.id);
          const count = document.querySelector('#summary').textContent;
          const n = Math.min(want.length, 6);
          return ids.length >= n && JSON.stringify(ids) === JSON.stringify(want.slice(0, ids.length))
            && count.startsWith(want.length + ' image');
        }""",
        arg=expected,
    )


def test_each_filter_is_in_the_url_and_back_restores_it(page, served):
    _, store, gallery = served
    records = gallery.records
    favorites = [gallery.ids[7], gallery.ids[20]]
    for rid in favorites:
        store.update_meta(VISITOR, rid, favorite=True)
    open_gallery(page)

    page.select_option("[data-testid=filter-aspect]", "2:3")
    page.wait_for_url("**/?aspect_ratio=2%3A3")
    expected = [r for r in gallery.ids if getattr(records[r], "aspect_ratio", None) == "2:3"]
    wait_for_listing(page, expected)
    assert listed_ids(page, "aspect_ratio=2:3") == expected
    assert page.locator("#summary").inner_text() == f"{len(expected)} images match"

    page.select_option("[data-testid=filter-aspect]", "")
    page.fill("[data-testid=filter-tag]", "night")
    page.press("[data-testid=filter-tag]", "Enter")
    page.wait_for_url("**/?tag=night")
    expected = [r for r in gallery.ids if "night" in records[r].tags]
    wait_for_listing(page, expected)
    assert len(expected) > 5

    page.fill("[data-testid=filter-tag]", "")
    page.fill("[data-testid=filter-workflow]", "upscale")
    page.press("[data-testid=filter-workflow]", "Enter")
    page.wait_for_url("**/?workflow_id=upscale")
    expected = [r for r in gallery.ids if getattr(records[r], "workflow_id", None) == "upscale"]
    wait_for_listing(page, expected)

    page.fill("[data-testid=filter-workflow]", "")
    page.fill("[data-testid=filter-from]", "2026-11-24")
    page.fill("[data-testid=filter-to]", "2026-11-25")
    page.wait_for_url("**/?from_date=2026-11-24&to_date=2026-11-25")
    expected = [r for r in gallery.ids if "2026-11-24" <= records[r].created_at[:10] <= "2026-11-25"]
    wait_for_listing(page, expected)
    headers = page.locator(".day-header").all_inner_texts()
    assert headers and all("24" in h or "25" in h for h in headers)

    page.fill("[data-testid=filter-from]", "")
    page.fill("[data-testid=filter-to]", "")
    page.check("[data-testid=favorites-only]")
    page.wait_for_url("**/?favorite=1")
    wait_for_listing(page, favorites)
    assert sorted(tile_ids(page)) == sorted(favorites)

    # The back button walks the filters back, form and listing included.
    page.go_back()
    page.wait_for_url(lambda url: url.endswith("/"))
    assert not page.is_checked("[data-testid=favorites-only]")
    page.go_back()
    page.go_back()
    page.wait_for_url("**/?from_date=2026-11-24&to_date=2026-11-25")
    assert page.input_value("[data-testid=filter-from]") == "2026-11-24"
    assert page.input_value("[data-testid=filter-to]") == "2026-11-25"
    wait_for_listing(page, [r for r in gallery.ids if "2026-11-24" <= records[r].created_at[:10] <= "2026-11-25"])
    for _ in range(6):
        if "tag=night" in page.url:
            break
        page.go_back()
        page.wait_for_timeout(50)
    page.wait_for_url("**/?tag=night")
    assert page.input_value("[data-testid=filter-tag]") == "night"
    wait_for_listing(page, [r for r in gallery.ids if "night" in records[r].tags])
    # A bookmarked view opens filtered.
    open_gallery(page, "/?aspect_ratio=16:9&tag=portrait")
    assert page.input_value("[data-testid=filter-aspect]") == "16:9"
    expected = [r for r in gallery.ids if getattr(records[r], "aspect_ratio", None) == "16:9" and "portrait" in records[r].tags]
    wait_for_listing(page, expected)
    for rid in favorites:
        store.update_meta(VISITOR, rid, favorite=False)
