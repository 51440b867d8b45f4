"""Search and browse: metadata values and tags filter the gallery when clicked;
suggestions with counts come from the facets endpoint; copy seed and parameters;
compare two images."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import open_gallery


def open_viewer(page, rid: str) -> None:
    page.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').click()
    page.wait_for_selector("[data-testid=lightbox][open]")


def test_clicking_a_workflow_or_a_tag_filters_the_gallery(page, served):
    _, _, gallery = served
    records = gallery.records
    rid = next(r for r in gallery.ids[:20] if records[r].tags and getattr(records[r], "workflow_id", None))
    open_gallery(page)
    open_viewer(page, rid)
    workflow = records[rid].workflow_id
    page.click(f"#lb-facts [data-filter=workflow_id]:has-text('{workflow}')")
    page.wait_for_url(f"**/?workflow_id={workflow}")
    assert page.locator("[data-testid=lightbox][open]").count() == 0
    expected = [r for r in gallery.ids if getattr(records[r], "workflow_id", None) == workflow]
    page.wait_for_function("n => document.querySelector('#summary').textContent === n + ' images match'", arg=len(expected))
    assert page.input_value("[data-testid=filter-workflow]") == workflow
    tag = records[rid].tags[0]
    open_viewer(page, rid)
    page.click(f"#lb-tags [data-filter=tag]:has-text('{tag}')")
    page.wait_for_url(f"**/?tag={tag}")
    expected = [r for r in gallery.ids if tag in records[r].tags]
    page.wait_for_function("n => document.querySelector('#summary').textContent === n + ' images match'", arg=len(expected))


def test_copy_seed_and_all_parameters(page, served):
    _, _, gallery = served
    rid = gallery.comfy_id
    assert rid is not None, "the ComfyUI corpus is missing"
    record = gallery.records[rid]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_gallery(page)
    open_viewer(page, rid)
    page.click("[data-testid=copy-seed]")
    page.wait_for_selector("#lb-status:has-text('Seed copied')")
    assert page.evaluate("navigator.clipboard.readText()") == str(record.seed)
    page.click("[data-testid=copy-params]")
    page.wait_for_selector("#lb-status:has-text('Parameters copied')")
    text = page.evaluate("navigator.clipboard.readText()")
    assert text.startswith(record.prompt) and f"Seed: {record.seed}" in text
    assert record.source and record.source.get("model"), "the ComfyUI corpus image names its model"
    model = record.source["model"]
    assert f"Model: {model}" in text
    page.click("#lb-facts [data-filter=model]")
    page.wait_for_url("**/?model=*")
    assert page.input_value("[data-testid=filter-model]") == model
    expected = [r for r in gallery.ids if (getattr(gallery.records[r], "source", None) or {}).get("model") == model]
    want = f"{len(expected)} image matches" if len(expected) == 1 else f"{len(expected)} images match"
    page.wait_for_function("want => document.querySelector('#summary').textContent === want", arg=want)
    assert sorted(page.eval_on_selector_all("[data-testid=gallery-item]", "els => els.map(e => e.dataset.id)")) == sorted(expected)


def test_compare_two_selected_images_side_by_side(page, served):
    _, _, gallery = served
    a, b = gallery.ids[3], gallery.ids[9]
    open_gallery(page)
    for rid in (a, b):
        page.locator(f'[data-testid=gallery-item][data-id="{rid}"] [data-testid=select-toggle]').click()
    page.click("[data-testid=bulk-compare]")
    page.wait_for_selector("[data-testid=lightbox][open][data-mode=compare]")
    page.wait_for_function("() => ['#lb-compare-a', '#lb-compare-b'].every(s => document.querySelector(s).complete && document.querySelector(s).naturalWidth > 0)")
    srcs = [page.get_attribute(s, "src") for s in ("#lb-compare-a", "#lb-compare-b")]
    assert srcs[0].endswith(f"/{a}.png") and srcs[1].endswith(f"/{b}.png")
    boxes = [page.locator(s).bounding_box() for s in ("#lb-compare-a", "#lb-compare-b")]
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"] + 1, "side by side"
    # The slider: one over the other, the split where the range says.
    page.click("[data-testid=compare-mode]")
    page.fill("[data-testid=compare-split]", "30")
    boxes = [page.locator(s).bounding_box() for s in ("#lb-compare-a", "#lb-compare-b")]
    assert abs(boxes[0]["x"] - boxes[1]["x"]) < 1 and abs(boxes[0]["y"] - boxes[1]["y"]) < 1, "stacked"
    assert page.locator("#lb-compare-b").evaluate("e => e.style.clipPath") == "inset(0px 0px 0px 30%)"


def test_suggestions_with_counts_come_from_the_facets_endpoint(page, served):
    """Only where the server has GET /api/v1/images/facets (built on another branch)."""
    _, _, gallery = served
    open_gallery(page)
    if page.request.get("/api/v1/images/facets?field=tag").status == 404:
        pytest.skip("this server has no facets endpoint")
    page.focus("[data-testid=filter-tag]")
    page.wait_for_function("() => document.querySelectorAll('#tag-options option').length > 0")
    labels = page.eval_on_selector_all("#tag-options option", "els => els.map(e => [e.value, e.label])")
    counts = {}
    for rid in gallery.ids:
        for tag in gallery.records[rid].tags:
            counts[tag] = counts.get(tag, 0) + 1
    for value, label in labels:
        assert label == f"{value} ({counts[value]})"


def test_viewer_shows_a_loading_state_never_the_old_image_beside_new_details(page, served):
    """On a slow link the next image takes its time: until it arrives the old one is gone and a loading state shows."""
    _, _, gallery = served
    ids = gallery.ids
    open_gallery(page)
    open_viewer(page, ids[10])
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 300, "downloadThroughput": 4000, "uploadThroughput": 4000})
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("id => document.querySelector('#lightbox').dataset.id === id", arg=ids[12])
    assert page.locator("#lb-prompt").inner_text() == gallery.records[ids[12]].prompt
    assert page.locator("#lightbox").get_attribute("data-state") == "loading"
    assert page.locator("#lb-loading").is_visible()
    assert page.locator("#lb-image").evaluate("e => getComputedStyle(e).visibility") == "hidden"
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'", timeout=60_000)
    assert page.locator("#lb-image").evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert page.locator("#lb-loading").is_hidden()


def test_prompt_box_shows_all_and_thumbnails_can_keep_their_shape(page, served):
    _, store, gallery = served
    from tests.e2e.conftest import VISITOR, art_png

    long = store.ingest(art_png(96, 96, seed=31337), VISITOR, prompt="a very long prompt, " * 60).record
    open_gallery(page)
    page.wait_for_selector(f'[data-testid=gallery-item][data-id="{long.id}"]')
    img = page.locator("[data-testid=gallery-item] img").first
    assert img.evaluate("e => getComputedStyle(e).objectFit") == "cover"
    page.click("[data-testid=thumbs-toggle]")
    assert img.evaluate("e => getComputedStyle(e).objectFit") == "contain"
    assert page.get_attribute("[data-testid=thumbs-toggle]", "aria-pressed") == "true"
    open_viewer(page, long.id)
    prompt = page.locator("#lb-prompt")
    assert prompt.get_attribute("tabindex") == "0", "the scrollable prompt is keyboard reachable"
    page.wait_for_selector("#lb-prompt-more", state="visible")
    short = prompt.evaluate("e => e.clientHeight")
    page.click("#lb-prompt-more")
    assert prompt.evaluate("e => e.scrollHeight <= e.clientHeight + 1") and prompt.evaluate("e => e.clientHeight") > short
    page.keyboard.press("Escape")
    store.trash(VISITOR, long.id)
    store.purge(VISITOR, long.id)


def test_inputs_open_in_the_viewer_and_have_bulk_actions(page, served, tmp_path):
    _, store, _ = served
    from tests.conftest import make_png
    from tests.e2e.conftest import VISITOR

    made = [store.ingest(make_png(50, 40, seed=700 + i), VISITOR, "input", original_filename=f"ref-{i}.png").record for i in range(3)]
    open_gallery(page, "/?view=inputs")
    tile = page.locator(f'[data-testid=gallery-item][data-id="{made[0].id}"]')
    tile.locator(".tile-open").click()
    page.wait_for_selector("[data-testid=lightbox][open]")
    assert page.locator("#lightbox").get_attribute("data-id") == made[0].id
    assert page.locator("[data-testid=favorite-toggle]").is_hidden()
    page.keyboard.press("Escape")
    for rec in made[1:]:
        page.locator(f'[data-testid=gallery-item][data-id="{rec.id}"] [data-testid=select-toggle]').click()
    assert page.locator("#selection-count").inner_text() == "2 inputs selected"
    page.click("[data-testid=bulk-delete]")
    page.wait_for_selector(".toast:has-text('Deleted 2 inputs')")
    assert [store.get(VISITOR, r.id).status for r in made] == ["active", "trash", "trash"]
    page.click(".toast button:has-text('Undo')")
    page.wait_for_function("id => !!document.querySelector(`[data-testid=gallery-item][data-id='${id}']`)", arg=made[2].id)
    assert [store.get(VISITOR, r.id).status for r in made] == ["active", "active", "active"]
