"""axe-core over every view of the gallery and the admin page, dark and light.

axe-core comes from the axe-playwright-python package (its bundled
axe.min.js, MPL-2.0): no network at test time. No serious or critical
violation is allowed, nor the moderate findings the audit listed (no h1,
content outside landmarks, two navigations with one name, a scrollable
region out of keyboard reach).
"""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import axe_violations as violations
from tests.e2e.conftest import new_context, open_gallery, watch_console


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_axe_finds_nothing_serious_in_any_view(browser, served, scheme):
    base_url, store, gallery = served
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    errors: list[str] = []
    report: dict[str, list[str]] = {}
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        open_gallery(page)
        page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item]').length > 5")
        page.locator("[data-testid=select-toggle]").first.click()
        report["gallery (selecting)"] = violations(page)
        page.keyboard.press("Escape")
        rid = gallery.comfy_id or gallery.ids[0]
        page.locator(f'[data-testid=gallery-item][data-id="{rid}"] .tile-open').click()
        page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
        report["lightbox"] = violations(page)
        page.keyboard.press("?")
        page.wait_for_selector("[data-testid=help][open]")
        report["help"] = violations(page)
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        open_gallery(page, "/?view=trash")
        report["trash"] = violations(page)
        open_gallery(page, "/?view=inputs")
        report["inputs"] = violations(page)
        page.goto("/admin")
        page.fill("[data-testid=admin-token]", ADMIN_TOKEN)
        page.click("[data-testid=admin-login]")
        page.wait_for_selector("[data-testid=admin-image-row]")
        report["admin"] = violations(page)
    finally:
        ctx.close()
    bad = [f"{view}: {line}" for view, found in report.items() for line in found]
    assert not bad, "\n".join(bad)
    assert errors == []


def test_theme_switch_overrides_the_system_and_is_remembered(browser, served):
    base_url = served[0]
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800}, color_scheme="dark")
    try:
        page = ctx.new_page()
        open_gallery(page)
        background = "getComputedStyle(document.body).backgroundColor"
        dark = page.evaluate(background)
        page.click("[data-testid=theme-toggle]")  # automatic -> light
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.evaluate(background) != dark
        assert violations(page) == []
        page.reload()
        page.wait_for_function("() => document.querySelector('#summary').textContent.length > 0")
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.locator("[data-testid=theme-toggle]").inner_text() == "Theme: light"
    finally:
        ctx.close()
