"""The gallery page in Debian's Chromium against a real gunicorn: scrolling,
search and filters in the URL, the lightbox, favorites and tags, bulk actions,
trash, ZIP, share links, the input library and the admin page."""

from __future__ import annotations

import zipfile
from pathlib import Path


from tests.conftest import ADMIN_TOKEN, make_jpeg, make_webp
from tests.e2e.conftest import OTHER, VISITOR, new_context, open_gallery, scroll_to_tile, shot, tile_ids, watch_console


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
    page.wait_for_selector("#quota-text:has-text('used')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=gallery-item] img')]"
        ".filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "gallery", docs=True)
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
    assert page.locator("#summary").inner_text() == "1 image matches"
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


def open_lightbox_on(page, rid: str) -> None:
    scroll_to_tile(page, rid).locator(".tile-open").click()
    page.wait_for_selector("[data-testid=lightbox][open]")
    assert lightbox_id(page) == rid


def wait_lightbox(page, rid: str) -> None:
    page.wait_for_function("rid => document.querySelector('[data-testid=lightbox]').dataset.id === rid", arg=rid)


def test_lightbox_moves_by_keys_and_buttons_across_a_page_boundary(page, served):
    """From the first image, stepping right past everything loaded fetches the next page by cursor, on demand."""
    _, _, gallery = served
    ids = gallery.ids
    open_gallery(page)
    open_lightbox_on(page, ids[0])
    assert page.locator("#lb-position").inner_text() == f"1 of {len(ids)}"
    assert page.is_disabled("[data-testid=lightbox-prev]")
    # Focus is inside the lightbox and stays there.
    for _ in range(25):
        page.keyboard.press("Tab")
        assert page.evaluate("document.querySelector('[data-testid=lightbox]').contains(document.activeElement)")
    loaded_before = page.evaluate("document.querySelectorAll('[data-testid=gallery-item]').length")
    assert loaded_before < 100
    page.focus("[data-testid=lightbox-close]")
    # NOTE: the first request holds the first view and the read-ahead one page of
    # 100 more (142 at most at this size): the last image lies beyond both.
    far = len(ids) - 1
    assert far >= 142
    with page.expect_request(lambda r: "/api/v1/images?" in r.url and "cursor=" in r.url):
        for _ in range(far):
            page.keyboard.press("ArrowRight")
        wait_lightbox(page, ids[far])
    assert page.locator("#lb-position").inner_text() == f"{far + 1} of {len(ids)}"
    assert page.is_disabled("[data-testid=lightbox-next]")
    page.click("[data-testid=lightbox-prev]")
    wait_lightbox(page, ids[far - 1])
    page.keyboard.press("ArrowRight")
    wait_lightbox(page, ids[far])
    page.keyboard.press("ArrowLeft")
    shown = far - 1
    wait_lightbox(page, ids[shown])
    # The details are those of the shown record.
    record = gallery.records[ids[shown]]
    assert page.locator("#lb-prompt").inner_text() == record.prompt
    facts = page.locator("#lb-facts").inner_text()
    assert str(record.seed) in facts and record.workflow_id in facts and f"{record.width} × {record.height}" in facts
    assert page.get_attribute("#lb-image", "alt").startswith("Image: " + record.prompt[:20])
    assert page.get_attribute("#lb-download", "href") == page.locator("#lb-image").get_attribute("src")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=lightbox]", state="hidden")
    # Focus comes back to the tile of the image last shown.
    page.wait_for_function("rid => document.activeElement.closest('[data-testid=gallery-item]')?.dataset.id === rid", arg=ids[shown])


def test_lightbox_workflow_copy_prompt_and_screenshot(page, served):
    _, store, gallery = served
    assert gallery.comfy_id is not None, "the ComfyUI corpus (tests/data/comfyui) is missing"
    open_gallery(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_lightbox_on(page, gallery.comfy_id)
    record = gallery.records[gallery.comfy_id]
    page.wait_for_function("() => document.querySelector('#lb-image').complete && document.querySelector('#lb-image').naturalWidth > 0")
    workflow = page.locator("#lb-workflow")
    assert workflow.is_visible()
    with page.expect_download() as info:
        workflow.click()
    body = Path(info.value.path()).read_text()
    assert '"nodes"' in body or '"links"' in body
    page.click("#lb-copy-prompt")
    page.wait_for_selector("#lb-status:has-text('Prompt copied')")
    assert page.evaluate("navigator.clipboard.readText()") == record.prompt
    page.mouse.move(5, 5)
    shot(page, "lightbox", docs=True)
    # A plain PNG has no workflow: the button is hidden.
    page.click("[data-testid=lightbox-next]")
    page.wait_for_function("rid => document.querySelector('[data-testid=lightbox]').dataset.id !== rid", arg=gallery.comfy_id)
    assert not page.locator("#lb-workflow").is_visible() or gallery.records[lightbox_id(page)].source


def test_favorite_and_tags_are_saved(page, served):
    _, store, gallery = served
    rid = gallery.ids[3]
    before = api_get(page, f"/api/v1/images/{rid}")
    open_gallery(page)
    open_lightbox_on(page, rid)
    fav = page.locator("[data-testid=favorite-toggle]")
    assert fav.get_attribute("aria-pressed") == "false"
    fav.click()
    page.wait_for_selector("[data-testid=favorite-toggle][aria-pressed=true]")
    tag_input = page.locator("[data-testid=tag-input]")
    tag_input.fill("keeper")
    tag_input.press("Enter")
    page.wait_for_selector("#lb-tags .tag:has-text('keeper')")
    assert tag_input.input_value() == ""
    tag_input.fill("second pick")
    tag_input.press("Enter")
    page.wait_for_selector("#lb-tags .tag:has-text('second pick')")
    after = api_get(page, f"/api/v1/images/{rid}")
    assert after["favorite"] is True
    assert after["tags"] == before["tags"] + ["keeper", "second pick"]
    # Remove a tag with a click on its ×.
    page.click("#lb-tags [aria-label='Remove tag keeper']")
    page.wait_for_function("() => !document.querySelector('#lb-tags').textContent.includes('keeper')")
    assert api_get(page, f"/api/v1/images/{rid}")["tags"] == before["tags"] + ["second pick"]
    # The sidecar on disk says the same.
    assert store.get(VISITOR, rid).favorite is True
    page.keyboard.press("Escape")
    assert scroll_to_tile(page, rid).locator(".tile-favorite").count() == 1
    fav_ids = listed_ids(page, "favorite=1")
    assert rid in fav_ids
    store.update_meta(VISITOR, rid, favorite=False, tags=before["tags"])


def select_range(page, first: str, last: str) -> None:
    scroll_to_tile(page, first).locator("[data-testid=select-toggle]").click()
    scroll_to_tile(page, last).locator("[data-testid=select-toggle]").click(modifiers=["Shift"])


def test_bulk_delete_then_restore_from_trash(page, served):
    _, store, gallery = served
    chosen = gallery.ids[10:15]
    open_gallery(page)
    select_range(page, chosen[0], chosen[-1])
    assert page.locator("#selection-count").inner_text() == "5 images selected"
    assert page.locator("[data-testid=gallery-item].selected").count() == 5
    page.click("[data-testid=bulk-delete]")
    page.wait_for_selector(".toast:has-text('Moved 5 images to the trash')")
    for rid in chosen:
        assert page.locator(f'[data-testid=gallery-item][data-id="{rid}"]').count() == 0
        assert api_get(page, f"/api/v1/images/{rid}")["status"] == "trash"
    trashed_image = store.layout.image_path(store.get(VISITOR, chosen[0]))
    assert trashed_image.parent.parts[-6] == "trash" and trashed_image.is_file()

    page.click("[data-testid=trash-view]")
    page.wait_for_url("**/?view=trash")
    wait_for_listing(page, chosen)
    badges = page.locator("[data-testid=gallery-item] .tile-badge").all_inner_texts()
    assert badges == ["30 days left"] * 5
    assert page.locator("#summary").inner_text() == "5 images in the trash"
    assert "deleted for good 30 days after" in page.locator("#trash-note").inner_text()
    shot(page, "trash")
    page.locator("[data-testid=gallery-item] [data-testid=select-toggle]").first.click()
    page.click("#select-all")
    assert page.locator("#selection-count").inner_text() == "5 images selected"
    page.click("[data-testid=bulk-restore]")
    page.wait_for_selector("text=The trash is empty.")
    for rid in chosen:
        assert api_get(page, f"/api/v1/images/{rid}")["status"] == "active"
    page.click("[data-testid=gallery-view]")
    wait_for_listing(page, gallery.ids)


def test_undo_toast_restores(page, served):
    _, _, gallery = served
    rid = gallery.ids[2]
    open_gallery(page)
    scroll_to_tile(page, rid).locator("[data-testid=select-toggle]").click()
    page.click("[data-testid=bulk-delete]")
    page.click(".toast button:has-text('Undo')")
    page.wait_for_selector(".toast:has-text('Restored 1 image')")
    assert api_get(page, f"/api/v1/images/{rid}")["status"] == "active"
    wait_for_listing(page, gallery.ids)


def test_trash_purge_one_and_empty_with_confirmation(page, served):
    _, store, gallery = served
    # Two throwaway images so the shared listing stays intact.
    from tests.e2e.conftest import art_png

    doomed = [store.ingest(art_png(64, 64, seed=777 + i), VISITOR, prompt=f"doomed {i}").record.id for i in range(3)]
    for rid in doomed:
        store.trash(VISITOR, rid)
    open_gallery(page, "/?view=trash")
    wait_for_listing(page, doomed[::-1])
    page.wait_for_selector("#quota-trash:has-text('Trash holds 3 images')")
    tile = page.locator(f'[data-testid=gallery-item][data-id="{doomed[0]}"]')
    tile.hover()
    tile.locator("[data-action=purge]").click()
    page.click("[data-testid=confirm]")
    page.wait_for_selector(f'[data-testid=gallery-item][data-id="{doomed[0]}"]', state="detached")
    assert page.request.get(f"/api/v1/images/{doomed[0]}").status == 404
    # Empty trash asks first; Cancel keeps everything.
    page.click("#empty-trash")
    page.click("#confirm-cancel")
    assert page.locator("[data-testid=gallery-item]").count() == 2
    page.click("#empty-trash")
    assert "2 items" in page.locator("#confirm-text").inner_text()
    page.click("[data-testid=confirm]")
    page.wait_for_selector("text=The trash is empty.")
    for rid in doomed:
        assert page.request.get(f"/api/v1/images/{rid}").status == 404
    page.wait_for_selector("#quota-trash", state="hidden")


def test_zip_of_selection_holds_exactly_those_originals(page, served, tmp_path):
    _, store, gallery = served
    chosen = [gallery.ids[1], gallery.ids[4], gallery.ids[6]]
    open_gallery(page)
    for rid in chosen:
        scroll_to_tile(page, rid).locator("[data-testid=select-toggle]").click()
    with page.expect_download() as info:
        page.click("[data-testid=bulk-download]")
    download = info.value
    path = tmp_path / "sel.zip"
    download.save_as(path)
    with zipfile.ZipFile(path) as zf:
        contents = sorted(zf.read(name) for name in zf.namelist())
    expected = sorted(store.read_original(store.get(VISITOR, rid)) for rid in chosen)
    assert contents == expected


def test_share_link_opens_without_cookies(page, served, browser):
    base_url, store, gallery = served
    rid = gallery.ids[5]
    open_gallery(page)
    open_lightbox_on(page, rid)
    page.click("[data-testid=share-button]")
    url_box = page.locator("[data-testid=share-url]")
    url_box.wait_for(state="visible")
    url = url_box.input_value()
    assert url.startswith(base_url + "/s/")
    assert page.evaluate("document.activeElement.dataset.testid") == "share-url"
    stranger = new_context(browser, base_url, user_id=None)
    assert stranger.cookies() == []
    try:
        other = stranger.new_page()
        resp = other.goto(url)
        assert resp.status == 200
        other.wait_for_function("() => document.querySelector('img') && document.querySelector('img').naturalWidth > 0")
        src = other.get_attribute("img", "src")
        data = other.request.get(src).body()
        assert data == store.read_original(store.get(VISITOR, rid))
    finally:
        stranger.close()


def test_upload_to_input_library_and_use_as_input(page, served, tmp_path):
    _, store, gallery = served
    open_gallery(page)
    page.click("[data-testid=inputs-view]")
    page.wait_for_url("**/?view=inputs")
    before = api_get(page, "/api/v1/inputs")["total"]
    pic = tmp_path / "pose-reference.jpg"
    pic.write_bytes(make_jpeg(120, 90, seed=3))
    page.set_input_files("[data-testid=upload-input]", str(pic))
    page.wait_for_selector(".upload .upload-status:has-text('done')")
    listing = api_get(page, "/api/v1/inputs")
    assert listing["total"] == before + 1
    item = next(i for i in listing["items"] if i["original_filename"] == "pose-reference.jpg")
    page.wait_for_selector(f'[data-testid=gallery-item][data-id="{item["id"]}"]')
    assert page.locator(f'[data-testid=gallery-item][data-id="{item["id"]}"] .tile-caption').inner_text() == "pose-reference.jpg"
    # Drag and drop: a PNG drawn in the page, dropped on the zone.
    page.evaluate(
        """async () => {
          const canvas = Object.assign(document.createElement('canvas'), {width: 40, height: 30});
          canvas.getContext('2d').fillRect(5, 5, 20, 10);
          const blob = await new Promise(done => canvas.toBlob(done, 'image/png'));
          const data = new DataTransfer();
          data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
          const zone = document.querySelector('#dropzone');
          zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
          zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    page.wait_for_selector("[data-testid=gallery-item] .tile-caption:has-text('dropped.png')")
    before += 1
    assert api_get(page, "/api/v1/inputs")["items"][0]["original_filename"] == "dropped.png"
    # A refused file says why and leaves nothing behind.
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.set_input_files("[data-testid=upload-input]", str(bad))
    page.wait_for_selector(".upload-failed:has-text('not a PNG, JPEG or WebP')")
    assert api_get(page, "/api/v1/inputs")["total"] == before + 1
    # Delete, then find it under "Show deleted" and restore it.
    tile = page.locator(f'[data-testid=gallery-item][data-id="{item["id"]}"]')
    tile.hover()
    tile.locator("[data-action=delete-input]").click()
    tile.wait_for(state="detached")
    assert api_get(page, f"/api/v1/inputs/{item['id']}")["status"] == "trash"
    page.check("#show-deleted-inputs")
    page.wait_for_url("**/?view=inputs&deleted=1")
    tile = page.locator(f'[data-testid=gallery-item][data-id="{item["id"]}"]')
    tile.hover()
    tile.locator("[data-action=restore-input]").click()
    tile.wait_for(state="detached")
    assert api_get(page, f"/api/v1/inputs/{item['id']}")["status"] == "active"
    # The controls library sits beside it, with its own listing and uploads.
    page.uncheck("#show-deleted-inputs")
    page.check("input[name=lib][value=controls]")
    page.wait_for_url("**/?view=inputs&lib=controls")
    page.wait_for_selector("text=No control images yet")
    control = tmp_path / "scribble.webp"
    control.write_bytes(make_webp(50, 50, seed=4))
    page.set_input_files("[data-testid=upload-input]", str(control))
    page.wait_for_selector("[data-testid=gallery-item] .tile-caption:has-text('scribble.webp')")
    assert [i["original_filename"] for i in api_get(page, "/api/v1/controls")["items"]] == ["scribble.webp"]
    assert api_get(page, "/api/v1/inputs")["total"] == before + 1
    # "Use as input" from a generated image.
    page.click("[data-testid=gallery-view]")
    open_lightbox_on(page, gallery.ids[8])
    page.click("#lb-use-input")
    page.wait_for_selector("[data-testid=lightbox] .toast:has-text('Added to your input library')")
    inputs = api_get(page, "/api/v1/inputs")
    assert inputs["total"] == before + 2
    assert inputs["items"][0]["sha256"] == gallery.records[gallery.ids[8]].sha256


def test_admin_page_lists_users_and_acts(page, served):
    _, store, _ = served
    page.goto("/admin")
    page.fill("[data-testid=admin-token]", ADMIN_TOKEN)
    page.click("[data-testid=admin-login]")
    page.wait_for_selector(f'[data-testid=admin-user-row][data-user="{VISITOR}"]')
    assert page.locator(f'[data-testid=admin-user-row][data-user="{OTHER}"]').count() == 1
    assert page.evaluate("sessionStorage.getItem('casvault.adminToken')") == ADMIN_TOKEN
    page.locator(f'[data-testid=admin-user-row][data-user="{OTHER}"] button').click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=admin-image-row]').length === 3")
    row = page.locator("[data-testid=admin-image-row]").first
    rid = row.get_attribute("data-id")
    row.locator("button:has-text('Delete')").click()
    page.wait_for_selector(f'[data-testid=admin-image-row][data-id="{rid}"] button:has-text("Restore")')
    assert store.index(OTHER).get(rid).status == "trash"
    page.locator(f'[data-testid=admin-image-row][data-id="{rid}"] button:has-text("Restore")').click()
    page.wait_for_selector(f'[data-testid=admin-image-row][data-id="{rid}"] button:has-text("Delete")')
    assert store.index(OTHER).get(rid).status == "active"
    # The token survives a reload of the tab (session storage), not a new tab's context.
    page.reload()
    page.wait_for_selector(f'[data-testid=admin-user-row][data-user="{VISITOR}"]')
    page.click("#admin-purge")
    page.click("[data-testid=confirm]")
    page.wait_for_selector(".toast:has-text('Purged')")
    shot(page, "admin")


def test_phone_width_keyboard_and_no_horizontal_scroll(browser, served):
    base_url, _, gallery = served
    ctx = new_context(browser, base_url, viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        open_gallery(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        row = page.locator(".grid-row").first
        assert row.locator("[data-testid=gallery-item]").count() == 2
        toggle = page.locator("[data-testid=select-toggle]").first
        assert float(toggle.evaluate("e => getComputedStyle(e).opacity")) > 0.5
        shot(page, "phone")
        page.locator("[data-testid=gallery-item] .tile-open").first.tap()
        page.wait_for_selector("[data-testid=lightbox][open]")
        assert page.locator("[data-testid=lightbox-next]").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        shot(page, "phone-lightbox")
        page.click("[data-testid=lightbox-close]")
        # Keyboard: arrows move between tiles, Enter opens, x selects.
        page.locator("[data-testid=gallery-item] .tile-open").first.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("document.activeElement.closest('[data-testid=gallery-item]').dataset.index")
        assert focused == "3"
        page.keyboard.press("x")
        assert page.locator("#selection-count").inner_text() == "1 image selected"
        page.keyboard.press("Escape")
        assert page.locator("#selection-bar").is_hidden()
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-testid=lightbox][open]")
        assert lightbox_id(page) == gallery.ids[3]
    finally:
        ctx.close()
    assert errors == []


def test_bulk_tag(page, served):
    _, store, gallery = served
    chosen = gallery.ids[20:23]
    open_gallery(page)
    select_range(page, chosen[0], chosen[-1])
    page.click("[data-testid=bulk-tag]")
    page.fill("#confirm-input", "batch-a, batch-b")
    page.click("[data-testid=confirm]")
    page.wait_for_selector(".toast:has-text('Tagged 3 images with batch-a, batch-b')")
    for rid in chosen:
        tags = api_get(page, f"/api/v1/images/{rid}")["tags"]
        assert tags[-2:] == ["batch-a", "batch-b"]
        store.update_meta(VISITOR, rid, tags=tags[:-2])


def test_zip_of_more_than_a_link_holds_is_one_download(page, served, tmp_path):
    """Over 100 selected (more ids than a URL can carry): one form post, one archive, exactly those originals."""
    base_url, store, gallery = served
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.all_headers(), r.post_data)) if "download.zip" in r.url else None)
    open_gallery(page)
    scroll_to_tile(page, gallery.ids[125]).locator("[data-testid=select-toggle]").click()
    page.click("#select-all")
    count = int(page.locator("#selection-count").inner_text().split()[0])
    assert count > 125
    chosen = listed_ids(page, "")[:count]
    with page.expect_download() as info:
        page.click("[data-testid=bulk-download]")
    download = info.value
    assert download.suggested_filename == f"casvault-{count}-images.zip"
    path = tmp_path / "selection.zip"
    download.save_as(path)
    assert len(requests) == 1 and requests[0][0] == "POST"
    # A plain form: the CSRF check passes on the browser's own Origin header, not on a script's marker.
    assert requests[0][1]["origin"] == base_url.rstrip("/") and "x-requested-with" not in requests[0][1]
    assert requests[0][2] == "ids=" + "%2C".join(chosen)
    with zipfile.ZipFile(path) as zf:
        contents = [zf.read(name) for name in zf.namelist()]
    assert contents == [store.read_original(store.get(VISITOR, rid)) for rid in chosen]
    assert page.url.startswith(base_url) and "download.zip" not in page.url, "the page stays where it was"
    assert page.locator(".toast-error").count() == 0


def test_zip_error_is_shown_not_navigated_to(browser, served):
    """A refused archive (here an id the server does not know): the JSON error becomes a toast, the gallery stays."""
    ctx = new_context(browser, served[0])
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        open_gallery(page)
        page.evaluate("id => { document.querySelector('#zip-form').elements.ids.value = id; }", "0" * 32)
        page.evaluate("document.querySelector('#zip-form').submit()")
        page.wait_for_selector(".toast-error:has-text('The ZIP could not be made: no such image')")
        assert page.locator("[data-testid=gallery-item]").count() > 0
    finally:
        ctx.close()
    assert [e for e in errors if "404" not in e] == []


def test_a_failed_page_load_says_so_and_retries(browser, served):
    """The server's JSON error is shown with a Retry button that loads the page."""
    base_url, _, gallery = served
    ctx = new_context(browser, base_url)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        failures = []

        def fail_once(route):
            if failures:
                return route.continue_()
            failures.append(route.request.url)
            return route.fulfill(status=503, content_type="application/json", body='{"error": {"code": "lock_busy", "message": "store busy, try again"}}')

        page.route("**/api/v1/images?*", fail_once)
        page.goto("/")
        page.wait_for_selector("#grid-status:has-text('Could not load: store busy, try again')")
        page.click("#grid-status button:has-text('Retry')")
        wait_for_listing(page, gallery.ids)
    finally:
        ctx.close()
    assert [e for e in errors if "503" not in e] == []
