"""Korean and English: the browser's language picks the catalogue, a switch overrides it, counts are plural-correct."""

from __future__ import annotations

from tests.e2e.conftest import new_context, open_gallery, shot, watch_console


def test_korean_browser_gets_korean_and_can_switch_to_english(browser, served):
    base_url, _, gallery = served
    total = len(gallery.ids)
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800}, locale="ko-KR")
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        open_gallery(page)
        assert page.evaluate("document.documentElement.lang") == "ko"
        assert page.locator("[data-testid=gallery-view]").inner_text() == "갤러리"
        assert page.locator("#view-title").inner_text() == "내 이미지"
        assert page.locator("#summary").inner_text() == f"이미지 {total}장"
        assert page.get_attribute("[data-testid=search]", "placeholder") == "프롬프트, 모델, LoRA, 시드 검색"
        # Dates in Korean beside Korean words, not English ones.
        header = page.locator(".day-header").first.inner_text()
        assert "년" in header and "월" in header, header
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=gallery-item] img')]"
            ".filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth > 0)"
        )
        page.locator("[data-testid=select-toggle]").first.click()
        assert page.locator("#selection-count").inner_text() == "이미지 1장 선택됨"
        assert page.locator("[data-testid=bulk-delete]").inner_text() == "휴지통으로 이동"
        shot(page, "gallery-ko", docs=True)
        page.keyboard.press("Escape")
        # The switch: English, remembered across reloads.
        page.select_option("[data-testid=locale-select]", "en")
        page.wait_for_function("() => document.documentElement.lang === 'en' && document.querySelector('#summary').textContent.length > 0")
        assert page.locator("#summary").inner_text() == f"{total} images"
        assert page.locator("[data-testid=gallery-view]").inner_text() == "Gallery"
        page.reload()
        page.wait_for_function("() => document.querySelector('#summary').textContent.length > 0")
        assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        ctx.close()
    assert errors == []


def test_english_counts_are_plural_correct(page, served):
    _, _, gallery = served
    open_gallery(page, "/?q=zebracorn")
    assert page.locator("#summary").inner_text() == "1 image matches"
    page.locator("[data-testid=select-toggle]").first.click()
    assert page.locator("#selection-count").inner_text() == "1 image selected"
    open_gallery(page)
    toggles = page.locator("[data-testid=select-toggle]")
    toggles.nth(0).click()
    toggles.nth(1).click()
    assert page.locator("#selection-count").inner_text() == "2 images selected"
    assert page.locator("#select-all").inner_text() == f"Select all {len(gallery.ids)}"
