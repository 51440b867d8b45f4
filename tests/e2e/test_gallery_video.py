"""Videos and animated images in the gallery, in Debian's Chromium.

Real ComfyUI outputs (an MP4 and a WebM from tests/data) and an animated
WebP are the visitor's newest records: the grid shows a play badge with the
duration (an "Animated" badge on the WebP), hovering or focusing a video
tile plays it muted inline (one at a time), and the viewer plays a video in
a <video controls> with its poster while its keys keep working.

NOTE: Chromium builds without H.264 cannot decode the MP4; where
``canPlayType`` says so, playback is asserted on the WebM and the MP4 is
checked for its element, source and poster only.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import START, VISITOR, axe_violations, new_context, open_gallery, watch_console

VIDEOS = Path(__file__).resolve().parents[1] / "data" / "comfyui-real" / "view" / "output" / "video"
H264 = "document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"') !== ''"


def animated_webp() -> bytes:
    """A 6-frame animated WebP, 100 ms a frame."""
    frames = [Image.new("RGB", (96, 64), (40 * i, 200 - 30 * i, 90)) for i in range(6)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def media(served) -> dict[str, object]:
    """The MP4, the WebM and the animated WebP as the visitor's three newest records, newest first."""
    _, store, _ = served
    made = {}
    for hours, name, data in (
        (3, "mp4", (VIDEOS / "ComfyUI_00001_.mp4").read_bytes()),
        (2, "webm", (VIDEOS / "webm_00001_.webm").read_bytes()),
        (1, "webp", animated_webp()),
    ):
        result = store.ingest(data, VISITOR, original_filename=f"clip.{name}", created_at=START + timedelta(hours=hours),
                              prompt=f"a short {name} clip of a paper boat")
        made[name] = result.record
        made[f"{name}-bytes"] = data
    assert made["mp4"].mime == "video/mp4" and made["webm"].mime == "video/webm"
    assert made["webp"].frames == 6 and made["webp"].duration_ms == 600
    return made


def tile(page, rid: str):
    """The tile of ``rid``."""
    return page.locator(f'[data-testid=gallery-item][data-id="{rid}"]')


def playing(page, selector: str) -> None:
    """Wait until the <video> at ``selector`` has a frame, is not paused and its time moves."""
    page.wait_for_function(f"""() => {{
        const v = document.querySelector({selector!r});
        if (!v || v.readyState < 2 || v.paused) return false;
        window.__t0 = window.__t0 ?? v.currentTime;
        return v.currentTime > window.__t0;
    }}""", timeout=15_000)
    page.evaluate("delete window.__t0")


def test_grid_badges_range_requests_and_hover_preview(page, served, media):
    open_gallery(page)
    page.wait_for_selector(f'[data-testid=gallery-item][data-id="{media["webp"].id}"]')
    for name in ("mp4", "webm"):
        badge = tile(page, media[name].id).locator("[data-testid=play-badge]")
        assert badge.is_visible()
        assert re.fullmatch(r"\d+:\d\d", badge.locator(".tile-duration").inner_text())
        assert "Video" in badge.inner_text()
    assert tile(page, media["webp"].id).locator("[data-testid=animated-badge]").inner_text() == "Animated"
    assert tile(page, media["webp"].id).locator("[data-testid=play-badge]").count() == 0
    assert page.locator("video.tile-preview").count() == 0  # nothing plays until asked

    # The originals answer Range requests (what a <video> seeks with).
    url = page.evaluate("id => document.querySelector(`[data-id=\"${id}\"]`).dataset.video", media["webm"].id)
    part = page.request.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.body() == media["webm-bytes"][100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(media['webm-bytes'])}"

    # Hover plays the WebM muted inline.
    tile(page, media["webm"].id).locator(".tile-open").hover()
    selector = f'[data-id="{media["webm"].id}"] video.tile-preview'
    playing(page, selector)
    assert page.evaluate(f"document.querySelector({selector!r}).muted") is True

    # Moving to the MP4 stops the WebM: one preview at a time.
    tile(page, media["mp4"].id).locator(".tile-open").hover()
    mp4_preview = f'[data-id="{media["mp4"].id}"] video.tile-preview'
    page.wait_for_selector(mp4_preview, state="attached")
    assert page.locator("video.tile-preview").count() == 1
    assert page.get_attribute(mp4_preview, "src") == page.evaluate(
        "id => document.querySelector(`[data-id=\"${id}\"]`).dataset.video", media["mp4"].id)
    assert page.get_attribute(mp4_preview, "poster")
    if page.evaluate(H264):
        playing(page, mp4_preview)

    # Leaving removes it; keyboard focus plays too.
    page.mouse.move(5, 780)
    page.wait_for_function("() => document.querySelectorAll('video.tile-preview').length === 0")
    tile(page, media["webm"].id).locator(".tile-open").focus()
    playing(page, selector)
    page.locator("#search, input").first.focus()
    page.wait_for_function("() => document.querySelectorAll('video.tile-preview').length === 0")


def test_viewer_plays_video_keys_work_and_axe_is_clean(page, served, media):
    _, store, _ = served
    open_gallery(page)
    webm = media["webm"]
    tile(page, webm.id).locator(".tile-open").click()
    page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
    video = page.locator("[data-testid=lightbox-video]")
    assert video.is_visible() and page.locator("#lb-image").is_hidden()
    assert video.get_attribute("controls") is not None and video.get_attribute("playsinline") is not None
    src = video.get_attribute("src")
    poster = video.get_attribute("poster")
    assert src and src.endswith(f"{webm.id}.webm")
    assert poster and "thumb" in poster
    assert page.request.get(poster).status == 200
    assert page.locator("#lb-facts").inner_text().count("Duration") == 1

    found = axe_violations(page)
    assert found == [], "\n".join(found)

    # Space on the focused player plays and pauses it (the clip is about a second long: looped here so it cannot end between the presses).
    page.evaluate("document.querySelector('#lb-video').loop = true")
    video.focus()
    page.keyboard.press(" ")
    playing(page, "#lb-video")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.querySelector('#lb-video').paused")

    # The viewer's keys: z, f, ?, d (the original file).
    page.keyboard.press("z")
    assert page.get_attribute("#lb-zoom", "aria-pressed") == "true"
    page.keyboard.press("z")
    assert page.get_attribute("#lb-zoom", "aria-pressed") == "false"
    page.keyboard.press("f")
    page.wait_for_function("() => document.querySelector('#lb-favorite').getAttribute('aria-pressed') === 'true'")
    assert store.get(VISITOR, webm.id).favorite is True
    page.keyboard.press("?")
    page.wait_for_selector("[data-testid=help][open]")
    assert "Play or pause a video" in page.locator("[data-testid=help]").inner_text()
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=help]:not([open])", state="attached")
    with page.expect_download() as info:
        page.keyboard.press("d")
    download = info.value
    assert Path(download.path()).read_bytes() == media["webm-bytes"]
    assert download.suggested_filename.endswith(".webm")

    # The next item is the animated WebP: the original plays in an <img>; the player lets go of its file.
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('#lightbox').dataset.id === {media['webp'].id!r}"
                           " && document.querySelector('#lightbox').dataset.state === 'ready'")
    assert page.locator("#lb-image").is_visible() and video.is_hidden()
    assert video.get_attribute("src") is None
    assert page.get_attribute("#lb-image", "src").endswith(f"{media['webp'].id}.webp")
    assert "Frames" in page.locator("#lb-facts").inner_text()

    # Back on the video, Delete trashes it.
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('#lightbox').dataset.id === {webm.id!r}")
    page.locator("#lb-close").focus()
    page.keyboard.press("Delete")
    page.wait_for_function(f"() => document.querySelector('#lightbox').dataset.id !== {webm.id!r}")
    assert store.get(VISITOR, webm.id).status == "trash"


def test_viewer_mp4_has_player_source_and_poster(page, served, media):
    open_gallery(page)
    mp4 = media["mp4"]
    tile(page, mp4.id).locator(".tile-open").click()
    page.wait_for_function(f"() => document.querySelector('#lightbox').dataset.id === {mp4.id!r}")
    video = page.locator("[data-testid=lightbox-video]")
    assert video.get_attribute("src").endswith(f"{mp4.id}.mp4")
    assert video.get_attribute("poster")
    assert page.get_attribute("#lb-download", "href").endswith(f"{mp4.id}.mp4")
    if page.evaluate(H264):
        page.wait_for_function("() => document.querySelector('#lightbox').dataset.state === 'ready'")
        video.focus()
        page.keyboard.press(" ")
        playing(page, "#lb-video")


def test_compare_shows_a_videos_poster(page, served, media):
    open_gallery(page)
    for name in ("mp4", "webp"):
        tile(page, media[name].id).locator("[data-testid=select-toggle]").click()
    page.click("[data-testid=bulk-compare]")
    page.wait_for_selector("[data-testid=lightbox][open][data-mode=compare]")
    page.wait_for_function("() => ['#lb-compare-a', '#lb-compare-b'].every(s => document.querySelector(s).complete"
                           " && document.querySelector(s).naturalWidth > 0)")
    srcs = {page.get_attribute(s, "src") for s in ("#lb-compare-a", "#lb-compare-b")}
    assert any("thumb" in s and media["mp4"].id in s for s in srcs), srcs
    assert any(s.endswith(f"{media['webp'].id}.webp") for s in srcs), srcs


def test_korean_badges_and_player_label(browser, served, media):
    base_url = served[0]
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800}, locale="ko-KR")
    errors: list[str] = []
    try:
        page = ctx.new_page()
        watch_console(page, errors)
        open_gallery(page)
        webp, mp4 = tile(page, media["webp"].id), tile(page, media["mp4"].id)
        assert webp.locator("[data-testid=animated-badge]").inner_text() == "움직이는 이미지"
        assert "동영상" in mp4.locator("[data-testid=play-badge]").inner_text()
        mp4.locator(".tile-open").click()
        page.wait_for_function(f"() => document.querySelector('#lightbox').dataset.id === {media['mp4'].id!r}")
        assert page.get_attribute("#lb-video", "aria-label").startswith("동영상: ")
        assert "재생 시간" in page.locator("#lb-facts").inner_text()
    finally:
        ctx.close()
    assert errors == []


def test_reduced_motion_keeps_tiles_still(browser, served, media):
    ctx = new_context(browser, served[0], viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    try:
        page = ctx.new_page()
        open_gallery(page)
        tile(page, media["mp4"].id).locator(".tile-open").hover()
        page.wait_for_timeout(500)
        assert page.locator("video.tile-preview").count() == 0
        assert tile(page, media["mp4"].id).locator("[data-testid=play-badge]").is_visible()
    finally:
        ctx.close()
