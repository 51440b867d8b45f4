"""The gallery by keyboard alone: one tab stop in the grid, arrows between tiles,
the selection bar after the grid, bulk trash and Undo, select-all over the whole
filtered listing (acted on by the server), and the lightbox's keys."""

from __future__ import annotations

from tests.e2e.conftest import VISITOR, open_gallery


def active(page) -> dict:
    """What has the focus: its test id, id, text and the index of its tile."""
    return page.evaluate("""() => {
        const el = document.activeElement;
        const tile = el && el.closest('[data-testid=gallery-item]');
        return {testid: el && el.dataset.testid || '', id: el && el.id || '', text: (el && el.textContent || '').trim(),
                index: tile ? Number(tile.dataset.index) : -1};
    }""")


def tab_until(page, predicate, limit: int = 40) -> int:
    """Press Tab until ``predicate(active(page))``; returns how many presses it took."""
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if predicate(active(page)):
            return n
    raise AssertionError(f"not reached in {limit} Tab presses; focus on {active(page)}")


def test_keyboard_only_bulk_trash_and_undo(page, served):
    _, store, gallery = served
    ids = gallery.ids
    open_gallery(page)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length > 10")
    # One tab stop for the whole grid (a roving tabindex), reached after the filters.
    assert page.locator(".tile-open[tabindex='0']").count() == 1
    assert page.locator("[data-testid=select-toggle][tabindex='0']").count() == 0
    presses = tab_until(page, lambda a: a["index"] >= 0)
    assert presses <= 30, presses
    assert active(page)["index"] == 0
    # The skip link gets there in three presses.
    open_gallery(page)
    page.keyboard.press("Tab")
    assert active(page)["text"] == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert active(page)["index"] == 0
    # Arrows move between tiles; x selects; Shift+arrow extends.
    page.keyboard.press("ArrowRight")
    assert active(page)["index"] == 1
    page.keyboard.press("x")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    assert active(page)["index"] == 3
    assert page.locator("#selection-count").inner_text() == "3 images selected"
    # The selection bar follows the grid in tab order: forward Tab reaches "Move to trash" soon.
    presses = tab_until(page, lambda a: a["testid"] == "bulk-delete", limit=12)
    assert presses <= 10, presses
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast:has-text('Moved 3 images to the trash')")
    for rid in ids[1:4]:
        assert store.get(VISITOR, rid).status == "trash"
    # Focus stays in the grid, on the tile that took the first trashed one's place.
    page.wait_for_function("() => document.activeElement.closest('[data-testid=gallery-item]') !== null")
    assert active(page)["index"] == 1
    assert page.evaluate("document.activeElement.closest('[data-testid=gallery-item]').dataset.id") == ids[4]
    # Undo is a few Tabs away (the toasts follow the grid and the bar).
    presses = tab_until(page, lambda a: a["text"] == "Undo", limit=10)
    assert presses <= 6, presses
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast:has-text('Restored 3 images')")
    for rid in ids[1:4]:
        assert store.get(VISITOR, rid).status == "active"
    page.wait_for_function("want => [...document.querySelectorAll('[data-testid=gallery-item]')]"
                           ".some(e => e.dataset.id === want)", arg=ids[2])


def test_ctrl_z_undoes_a_trash_by_the_delete_key(page, served):
    _, store, gallery = served
    rid = gallery.ids[5]
    open_gallery(page)
    page.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').focus()
    page.keyboard.press("Delete")
    page.wait_for_selector(".toast:has-text('Moved 1 image to the trash')")
    assert store.get(VISITOR, rid).status == "trash"
    page.keyboard.press("Control+z")
    page.wait_for_selector(".toast:has-text('Restored 1 image')")
    assert store.get(VISITOR, rid).status == "active"


def test_select_all_covers_the_whole_filtered_listing_not_just_what_is_loaded(page, served):
    """Ctrl+A selects every image of the view (more than one page); a bulk tag reaches all of them on the server."""
    _, store, gallery = served
    total = len(gallery.ids)
    assert total > 100
    open_gallery(page)
    page.locator(".tile-open[tabindex='0']").focus()
    page.keyboard.press("Control+a")
    assert page.locator("#selection-count").inner_text() == f"{total} images selected"
    loaded = page.evaluate("document.querySelectorAll('[data-testid=gallery-item]').length")
    assert loaded < total
    page.click("[data-testid=bulk-tag]")
    page.fill("#confirm-input", "every-one")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/images/bulk")) as info:
        page.click("[data-testid=confirm]")
    body = info.value.post_data_json
    assert "filter" in body and "ids" not in body
    page.wait_for_selector(f".toast:has-text('Tagged {total} images with every-one')")
    tagged = [rid for rid in gallery.ids if "every-one" in store.get(VISITOR, rid).tags]
    assert len(tagged) == total
    resp = page.request.post("/api/v1/images/bulk", data={"action": "untag", "filter": {}, "tags": ["every-one"]},
                             headers={"X-Requested-With": "XMLHttpRequest"})
    assert resp.ok and len(resp.json()["results"]) == total
    # Per day: "d" on a tile selects its whole day.
    page.keyboard.press("Escape")
    page.locator(".tile-open[tabindex='0']").focus()
    page.keyboard.press("d")
    first_day = gallery.records[gallery.ids[0]].created_at[:10]
    same_day = [r for r in gallery.ids[:100] if gallery.records[r].created_at[:10] == first_day]
    assert page.locator("#selection-count").inner_text().startswith(f"{len(same_day)} image")


def test_lightbox_keys_favorite_zoom_help_download_delete(page, served):
    _, store, gallery = served
    rid = gallery.ids[6]
    open_gallery(page)
    page.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').click()
    page.wait_for_selector("[data-testid=lightbox][open]")
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
    page.keyboard.press("f")
    page.wait_for_selector("[data-testid=favorite-toggle][aria-pressed=true]")
    assert store.get(VISITOR, rid).favorite is True
    page.keyboard.press("f")
    page.wait_for_selector("[data-testid=favorite-toggle][aria-pressed=false]")
    assert store.get(VISITOR, rid).favorite is False
    page.keyboard.press("z")
    assert page.get_attribute("[data-testid=lightbox-zoom]", "aria-pressed") == "true"
    page.keyboard.press("z")
    assert page.get_attribute("[data-testid=lightbox-zoom]", "aria-pressed") == "false"
    page.keyboard.press("?")
    page.wait_for_selector("[data-testid=help][open]")
    assert "Zoom to full size" in page.locator("[data-testid=help]").inner_text()
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=help]", state="hidden")
    assert page.locator("[data-testid=lightbox][open]").count() == 1
    with page.expect_download() as info:
        page.keyboard.press("d")
    assert info.value.suggested_filename.endswith(".png")
    page.keyboard.press("Delete")
    page.wait_for_function("rid => document.querySelector('#lightbox').dataset.id !== rid", arg=rid)
    assert store.get(VISITOR, rid).status == "trash"
    assert page.locator("#lightbox").get_attribute("data-id") == gallery.ids[7]
    store.restore(VISITOR, rid)


def test_drag_select_with_the_mouse(page, served):
    """A drag across tiles selects every tile under the band; the release opens nothing."""
    _, _, gallery = served
    open_gallery(page)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length > 10")
    first = page.locator("[data-testid=gallery-item][data-index='0']").bounding_box()
    third = page.locator("[data-testid=gallery-item][data-index='2']").bounding_box()
    page.mouse.move(first["x"] + 20, first["y"] + first["height"] / 2)
    page.mouse.down()
    page.mouse.move(first["x"] + 60, first["y"] + first["height"] / 2 + 5, steps=3)
    page.mouse.move(third["x"] + 20, third["y"] + third["height"] / 2 + 5, steps=5)
    page.mouse.up()
    assert page.locator("#selection-count").inner_text() == "3 images selected"
    assert page.locator("[data-testid=lightbox][open]").count() == 0
    selected = page.eval_on_selector_all("[data-testid=gallery-item].selected", "els => els.map(e => e.dataset.id)")
    assert sorted(selected) == sorted(gallery.ids[:3])


def test_undo_outlasts_the_old_ten_seconds(page, served):
    """The Undo toast stays until dismissed or 30 s (it used to close after 10.5 s)."""
    _, store, gallery = served
    rid = gallery.ids[8]
    open_gallery(page)
    page.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').focus()
    page.keyboard.press("Delete")
    undo = page.locator(".toast button:has-text('Undo')")
    undo.wait_for()
    page.wait_for_timeout(12_000)
    assert undo.is_visible()
    undo.click()
    page.wait_for_selector(".toast:has-text('Restored 1 image')")
    assert store.get(VISITOR, rid).status == "active"
