"""``casvault ingest`` on a ComfyUI output folder: the gallery gets the right seed and prompt per file, reruns add nothing."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from casvault import identity
from casvault.index import Query
from casvault.layout import normalize_time
from casvault.store import Store
from cli import main
from tests.conftest import SECRET, user
from tests.fake_comfy import CORPUS_OUTPUTS, comfy_output_folder, expected_by_name

# Each file's mtime: when ComfyUI saved it (distinct, in order, a year back).
BASE_MTIME = 1_764_000_000


@pytest.fixture
def output_folder(tmp_path: Path, corpus: Path) -> Path:
    """A ComfyUI output folder: the corpus under ComfyUI names, a subfolder, and things that are not images."""
    folder = comfy_output_folder(corpus, tmp_path / "ComfyUI" / "output")
    for i, (_, subfolder, name, *_rest) in enumerate(CORPUS_OUTPUTS):
        os.utime(folder / subfolder / name, (BASE_MTIME + i * 60, BASE_MTIME + i * 60))
    (folder / "_output_images_will_be_put_here").write_bytes(b"")  # ComfyUI ships this placeholder
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return folder


def ingest(runner, store: Store, folder: Path, owner: str, *extra: str) -> dict:
    result = runner.invoke(
        main, ["--root", str(store.config.root), "ingest", str(folder), "--owner", owner, "--json", *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def gallery(app, owner: str) -> dict[str, dict]:
    """What the owner's gallery page gets from the API: {original_filename: item}."""
    _, cookie = identity.issue(SECRET, owner)
    c = app.test_client()
    c.set_cookie(identity.COOKIE_NAME, cookie)
    body = c.get("/api/v1/images?size=50").get_json()
    return {item["original_filename"]: item for item in body["items"]}


def test_comfy_output_folder_ingests_with_seed_and_prompt_and_reruns_add_nothing(
    runner, store: Store, app, output_folder: Path, corpus: Path
) -> None:
    owner = user(7)
    first = ingest(runner, store, output_folder, owner)
    assert (first["ingested"], first["skipped_duplicate"], first["failed"]) == (5, 0, 0)

    items = gallery(app, owner)
    expected = expected_by_name()
    assert sorted(items) == sorted(expected)
    for i, (source, subfolder, name, seed, prompt, negative) in enumerate(CORPUS_OUTPUTS):
        item = items[name]
        assert item["seed"] == seed, name
        if prompt is None:
            assert item.get("prompt") is None and item.get("source") is None, name
        else:
            assert item["prompt"].startswith(prompt), name
            assert item["source"]["seed"] == seed and item["source"]["has_workflow"] is True
        assert item.get("negative_prompt") == negative, name
        mtime = datetime.fromtimestamp(BASE_MTIME + i * 60, timezone.utc)
        assert item["created_at"] == normalize_time(mtime), name
        # The bytes are ComfyUI's, and the workflow can be loaded back into ComfyUI.
        record = store.get(owner, item["id"])
        assert store.read_original(record) == (corpus / source).read_bytes()
    assert items["ComfyUI_00001_.png"]["prompt"] == "masterpiece best quality girl"  # exact, not just a prefix
    assert items["ComfyUI_00003_.png"]["source"]["sampler_node"] == "KSamplerAdvanced"

    _, cookie = identity.issue(SECRET, owner)
    c = app.test_client()
    c.set_cookie(identity.COOKIE_NAME, cookie)
    r = c.get(f"/api/v1/images/{items['ComfyUI_00002_.png']['id']}/workflow")
    with Image.open(corpus / "flux_flux_dev_example.png") as im:
        assert r.status_code == 200 and r.get_data() == im.text["workflow"].encode()

    # The second run finds every file already there: nothing new, same records.
    second = ingest(runner, store, output_folder, owner)
    assert (second["ingested"], second["skipped_duplicate"], second["failed"]) == (0, 5, 0)
    assert {i["id"] for i in second["items"] if i["status"] == "skipped_duplicate"} == {i["id"] for i in items.values()}
    assert gallery(app, owner) == items
    page = store.list(owner, Query(kind="generated", include="all", size=50))
    assert page.total == 5


def test_same_image_under_a_new_comfy_name_is_a_new_record(runner, store: Store, app, output_folder: Path, corpus: Path) -> None:
    owner = user(7)
    ingest(runner, store, output_folder, owner)
    # A re-run of the same job in ComfyUI saves the same bytes under the next counter.
    (output_folder / "ComfyUI_00006_.png").write_bytes((corpus / "lora_lora.png").read_bytes())
    report = ingest(runner, store, output_folder, owner)
    assert (report["ingested"], report["skipped_duplicate"]) == (1, 5)
    items = gallery(app, owner)
    assert items["ComfyUI_00006_.png"]["seed"] == 851616030078638
    assert items["ComfyUI_00006_.png"]["id"] != items["ComfyUI_00001_.png"]["id"]
    # Another owner ingesting the same folder gets records of their own.
    other = ingest(runner, store, output_folder, user(8))
    assert other["ingested"] == 6
