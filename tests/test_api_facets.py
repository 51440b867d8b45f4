"""GET /api/v1/images/facets and the model, lora and sampler listing filters (the i18 gallery's contract)."""

from __future__ import annotations

import io
import json

import pytest

from tests.api_helpers import add_image, error_code, new_client, visitor
from tests.conftest import INGEST_TOKEN, make_png

API = "/api/v1/images"
FIELDS = ["aspect_ratio", "lora", "model", "sampler", "tag", "workflow_id"]


def comfy_png(seed: int, model: str, lora: str, sampler: str, prompt: str) -> bytes:
    """A PNG with a ComfyUI prompt graph: checkpoint → LoRA → KSampler → SaveImage."""
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
        "10": {"class_type": "LoraLoader", "inputs": {
            "lora_name": lora, "strength_model": 0.8, "strength_clip": 1.0, "model": ["4", 0], "clip": ["4", 1]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 7, "sampler_name": sampler, "scheduler": "normal", "denoise": 1,
            "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
    }
    return make_png(seed=seed, text={"prompt": json.dumps(graph)})


def source(model: str, loras: list[str], sampler: str) -> dict:
    return {"tool": "comfyui", "model": model, "sampler": sampler, "loras": [{"name": n} for n in loras]}


@pytest.fixture
def me(client):
    return visitor(client)


@pytest.fixture
def library(client, store, me):
    """Six images of the visitor: 3 flux (2 with the detail LoRA), 2 sdxl, 1 without a source; one trashed flux."""
    made = [
        add_image(store, me, seed=1, prompt="castle", aspect_ratio="16:9", workflow_id="w1", tags=["best"],
                  source=source("flux1-dev.safetensors", ["detail", "film"], "euler")),
        add_image(store, me, seed=2, prompt="dragon", aspect_ratio="1:1", workflow_id="w1",
                  source=source("flux1-dev.safetensors", ["detail"], "euler")),
        add_image(store, me, seed=3, prompt="forest", aspect_ratio="1:1", workflow_id="w2", tags=["best", "wip"],
                  source=source("flux1-dev.safetensors", [], "dpmpp_2m")),
        add_image(store, me, seed=4, prompt="castle", aspect_ratio="1:1", workflow_id="w2",
                  source=source("sdxl_base.safetensors", [], "dpmpp_2m")),
        add_image(store, me, seed=5, prompt="neon", aspect_ratio="16:9",
                  source=source("sdxl_base.safetensors", ["film"], "euler")),
        add_image(store, me, seed=6, prompt="plain upload"),
    ]
    store.trash(me, made[0].id)
    return made


def facets(client, qs: str = "") -> dict:
    resp = client.get(f"{API}/facets?{qs}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["facets"]


def test_facets_count_every_field_counts_descending(client, library):
    got = facets(client)
    assert sorted(got) == FIELDS
    assert got["model"] == [{"value": "flux1-dev.safetensors", "count": 2}, {"value": "sdxl_base.safetensors", "count": 2}]
    assert got["sampler"] == [{"value": "dpmpp_2m", "count": 2}, {"value": "euler", "count": 2}]
    assert got["lora"] == [{"value": "detail", "count": 1}, {"value": "film", "count": 1}]
    # the plain upload's aspect ratio comes from its pixels (64×64)
    assert got["aspect_ratio"] == [{"value": "1:1", "count": 4}, {"value": "16:9", "count": 1}]
    assert got["workflow_id"] == [{"value": "w2", "count": 2}, {"value": "w1", "count": 1}]
    assert got["tag"] == [{"value": "best", "count": 1}, {"value": "wip", "count": 1}]
    every = facets(client, "include=all")  # the trashed flux image counts again
    assert every["model"][0] == {"value": "flux1-dev.safetensors", "count": 3}
    assert every["lora"] == [{"value": "detail", "count": 2}, {"value": "film", "count": 2}]


def test_facets_follow_the_listing_filters_field_prefix_and_limit(client, library):
    assert facets(client, "model=flux1-dev.safetensors")["sampler"] == [
        {"value": "dpmpp_2m", "count": 1}, {"value": "euler", "count": 1}]
    assert facets(client, "q=castle&field=model") == {"model": [{"value": "sdxl_base.safetensors", "count": 1}]}
    assert facets(client, "tag=best&include=all&field=lora") == {"lora": [
        {"value": "detail", "count": 1}, {"value": "film", "count": 1}]}
    assert facets(client, "field=model&prefix=SD") == {"model": [{"value": "sdxl_base.safetensors", "count": 2}]}
    assert facets(client, "field=aspect_ratio&limit=1") == {"aspect_ratio": [{"value": "1:1", "count": 4}]}
    assert facets(client, "from_date=2000-01-01&to_date=2000-01-02") == {name: [] for name in FIELDS}
    assert facets(client, "lora=nothing-like-it&field=tag") == {"tag": []}


def test_facets_change_with_tags_trash_and_purge(client, library):
    client.patch(f"{API}/{library[3].id}", json={"tags": ["best"]})
    assert facets(client, "field=tag")["tag"][0] == {"value": "best", "count": 2}
    client.post(f"{API}/{library[4].id}/delete")
    assert facets(client, "field=lora") == {"lora": [{"value": "detail", "count": 1}]}
    client.post(f"{API}/{library[0].id}/restore")
    assert facets(client, "field=lora") == {"lora": [{"value": "detail", "count": 2}, {"value": "film", "count": 1}]}
    assert client.post(f"{API}/{library[4].id}/purge").status_code == 200
    assert facets(client, "field=lora&include=trash") == {"lora": []}


def test_listing_filters_by_model_lora_sampler(client, library):
    def ids(qs):
        return [i["id"] for i in client.get(f"{API}?{qs}").get_json()["items"]]

    assert ids("model=sdxl_base.safetensors") == [library[4].id, library[3].id]
    assert ids("lora=detail") == [library[1].id]
    assert ids("lora=detail&include=all") == [library[1].id, library[0].id]
    assert ids("sampler=euler&model=sdxl_base.safetensors") == [library[4].id]
    assert ids("model=flux1-dev") == []  # exact value, not a prefix
    assert ids("q=flux1") == [library[2].id, library[1].id]  # the search reads the model's words
    assert ids("q=dpmpp") == [library[3].id, library[2].id]
    assert ids("q=catsle") == [library[3].id]  # one typo


def test_facets_from_a_comfyui_png_ingested_over_http(app, client, me):
    pipeline = new_client(app)
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    for seed, sampler in ((11, "euler"), (12, "euler"), (13, "dpmpp_2m")):
        data = comfy_png(seed, "dreamshaper_8.safetensors", "pixel-art.safetensors", sampler, "a castle at dusk")
        resp = pipeline.post("/api/v1/ingest", headers=auth, data={"owner": me, "file": (io.BytesIO(data), "x.png")})
        assert resp.status_code == 201, resp.get_json()
    got = facets(client)
    assert got["model"] == [{"value": "dreamshaper_8.safetensors", "count": 3}]
    assert got["lora"] == [{"value": "pixel-art.safetensors", "count": 3}]
    assert got["sampler"] == [{"value": "euler", "count": 2}, {"value": "dpmpp_2m", "count": 1}]
    assert len(client.get(f"{API}?q=dreamshapr").get_json()["items"]) == 3  # typo in a model name


def test_facets_are_per_visitor_and_check_their_parameters(app, client, store, library):
    other = new_client(app)
    assert facets(other)["model"] == []
    add_image(store, visitor(other), seed=99, source=source("other.safetensors", [], "euler"))
    assert facets(other, "field=model") == {"model": [{"value": "other.safetensors", "count": 1}]}
    assert facets(client, "field=model&prefix=other") == {"model": []}
    for bad in ("field=seed", "limit=0", "limit=101", "limit=x", "include=gone", "favorite=maybe",
                "from_date=2026-1-1", "prefix=" + "x" * 201):
        resp = client.get(f"{API}/facets?{bad}")
        assert resp.status_code == 400 and error_code(resp) == "bad_request", bad
