"""Animated images and videos (casvault/media.py): frames, durations, posters, validation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from casvault import fsck, media, thumbs, thumbjob
from casvault.errors import NotAnImage, TooLarge
from casvault.store import Store
from tests.conftest import make_png, user

VIEW = Path(__file__).parent / "data" / "comfyui-real" / "view" / "output"
OWNER = user(31)


def test_animation_counts_frames_and_duration() -> None:
    assert media.animation((VIEW / "anim" / "apng_00001_.png").read_bytes(), "PNG") == (4, 1000)
    assert media.animation((VIEW / "anim" / "webp_00001_.webp").read_bytes(), "WEBP") == (4, 1000)
    assert media.animation(make_png(seed=1), "PNG") is None
    assert media.animation(b"\x89PNG\r\n\x1a\nbroken", "PNG") is None


@pytest.mark.parametrize("name", ["ComfyUI_00001_.mp4", "webm_00001_.webm"])
def test_check_video_reads_size_frames_and_poster(name: str) -> None:
    data = (VIEW / "video" / name).read_bytes()
    info = media.check_video(data, max_bytes=len(data), max_pixels=192 * 128)
    assert (info.width, info.height, info.animation) == (192, 128, (8, 1000))
    assert info.image is not None and info.image.size == (192, 128)
    with pytest.raises(TooLarge):
        media.check_video(data, max_bytes=len(data) - 1, max_pixels=10**9)
    with pytest.raises(TooLarge):
        media.check_video(data, max_bytes=len(data), max_pixels=192 * 128 - 1)
    with pytest.raises(NotAnImage):
        media.check_video(data[: len(data) // 3], max_bytes=len(data), max_pixels=10**9)
    thumb = thumbs.make_thumbnail(data, 64)
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.size == (64, 43)


def test_a_video_is_a_generated_record_only_and_thumbnails_regenerate(store: Store) -> None:
    data = (VIEW / "video" / "ComfyUI_00001_.mp4").read_bytes()
    with pytest.raises(NotAnImage):
        store.ingest(data, OWNER, "control")
    record = store.ingest(data, OWNER, "generated").record
    assert (record.mime, record.ext, record.frames, record.duration_ms) == ("video/mp4", "mp4", 8, 1000)
    image, _, thumb = store.layout.paths(record)
    assert image.name.endswith(".mp4") and image.read_bytes() == data
    assert fsck.check(store).clean
    thumb.unlink()
    report = thumbjob.regenerate(store, jobs=1)
    assert thumb.is_file(), report
    with Image.open(thumb) as img:
        assert img.size == (64, 43)  # the poster, made again from the video
    assert fsck.check(store).clean


def test_api_ingest_takes_a_video(client, store: Store) -> None:
    from tests.conftest import INGEST_TOKEN

    data = (VIEW / "video" / "webm_00001_.webm").read_bytes()
    resp = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                       data={"file": (io.BytesIO(data), "clip.webm"), "owner": OWNER})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["mime"] == "video/webm" and body["url"].endswith(".webm") and body["frames"] == 8
    assert body["source"]["tool"] == "comfyui"
    refused = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                          data={"file": (io.BytesIO(data), "clip.webm"), "owner": OWNER, "kind": "input"})
    assert refused.status_code == 415


def test_a_video_is_not_staged_for_load_image(store: Store, tmp_path: Path) -> None:
    from casvault.errors import InvalidInput
    from casvault.staging import stage_for_comfy

    record = store.ingest((VIEW / "video" / "ComfyUI_00001_.mp4").read_bytes(), OWNER).record
    folder = tmp_path / "ComfyUI-input"
    folder.mkdir()
    with pytest.raises(InvalidInput):
        stage_for_comfy(store, OWNER, record.id, folder)
    assert list(folder.iterdir()) == []
