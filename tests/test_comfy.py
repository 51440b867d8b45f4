"""Tests for casvault.comfy: real ComfyUI PNGs, then synthetic graphs."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from casvault.comfy import ComfyMeta, Lora, extract, read_png_text, summarize, workflow_json
from tests.comfy_families import EXPECTED, FAMILIES, link, node, png_of

CORPUS = Path(os.environ.get("CASVAULT_CORPUS") or Path(__file__).resolve().parent / "data" / "comfyui")


@pytest.fixture(scope="module")
def corpus() -> Path:
    # The corpus is a required input: a missing directory is a failure, not a skip.
    if not CORPUS.is_dir():
        pytest.fail(f"ComfyUI corpus not found at {CORPUS} (set CASVAULT_CORPUS)")
    return CORPUS


def corpus_file(corpus: Path, name: str) -> bytes:
    return (corpus / name).read_bytes()


def png(prompt: Any = None, workflow: Any = None, **texts: str) -> bytes:
    """A small PNG carrying the given graphs as text chunks, the way SaveImage writes them."""
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", prompt if isinstance(prompt, str) else json.dumps(prompt))
    if workflow is not None:
        info.add_text("workflow", workflow if isinstance(workflow, str) else json.dumps(workflow))
    for key, value in texts.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def link(node_id: str, output: int = 0) -> list[Any]:
    return [node_id, output]


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": class_type}}


def sd15_graph(**sampler: Any) -> dict[str, Any]:
    """A plain txt2img graph; keyword arguments override KSampler inputs."""
    return {
        "3": node(
            "KSampler",
            **{
                "seed": 42,
                "steps": 30,
                "cfg": 7.5,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 1.0,
                "model": link("4"),
                "positive": link("6"),
                "negative": link("7"),
                "latent_image": link("5"),
                **sampler,
            },
        ),
        "4": node("CheckpointLoaderSimple", ckpt_name="dreamshaper_8.safetensors"),
        "5": node("EmptyLatentImage", width=768, height=512, batch_size=1),
        "6": node("CLIPTextEncode", text="a red fox in snow", clip=link("4", 1)),
        "7": node("CLIPTextEncode", text="blurry", clip=link("4", 1)),
        "8": node("VAEDecode", samples=link("3"), vae=link("4", 2)),
        "9": node("SaveImage", filename_prefix="ComfyUI", images=link("8")),
    }


# --------------------------------------------------------------------------
# Real ComfyUI outputs (expected values read by hand from each prompt chunk)


def test_lora_png(corpus: Path) -> None:
    meta = extract(corpus_file(corpus, "lora_lora.png"))
    assert meta == ComfyMeta(
        seed=851616030078638,
        prompt="masterpiece best quality girl",
        negative_prompt="bad hands",
        steps=20,
        cfg=8.0,
        sampler="euler",
        scheduler="normal",
        denoise=1.0,
        model="v1-5-pruned-emaonly.ckpt",
        loras=[Lora("epiNoiseoffset_v2.safetensors", 1.0, 1.0)],
        width=512,
        height=512,
        sampler_node="KSampler",
        has_workflow=True,
    )


def test_flux_png(corpus: Path) -> None:
    meta = extract(corpus_file(corpus, "flux_flux_dev_example.png"))
    assert meta is not None
    assert meta.seed == 219670278747233  # from RandomNoise, via SamplerCustomAdvanced.noise
    assert meta.prompt is not None
    assert meta.prompt.startswith("cute anime girl with massive fluffy fennec ears")
    assert meta.prompt.endswith("to the foggy forest and very expensive stuff everywhere")
    assert meta.negative_prompt is None  # BasicGuider has no negative
    assert meta.steps == 20  # BasicScheduler
    assert meta.cfg is None  # BasicGuider has no cfg
    assert meta.sampler == "euler"  # KSamplerSelect
    assert meta.scheduler == "simple"
    assert meta.denoise == 1.0
    assert meta.model == "flux1-dev.safetensors"  # UNETLoader, through ModelSamplingFlux
    assert meta.loras == []
    assert (meta.width, meta.height) == (1024, 1024)  # EmptySD3LatentImage
    assert meta.guidance == 3.5  # FluxGuidance
    assert meta.sampler_node == "SamplerCustomAdvanced"
    assert meta.has_workflow is True


def test_sdxl_refiner_png_takes_the_pass_that_added_noise(corpus: Path) -> None:
    meta = extract(corpus_file(corpus, "sdxl_sdxl_refiner_prompt_example.png"))
    assert meta == ComfyMeta(
        seed=6767725640732,  # base pass (add_noise enable), not the refiner's 0
        prompt="daytime sky nature dark blue galaxy bottle",
        negative_prompt="text, watermark",
        steps=25,
        cfg=8.0,
        sampler="euler",
        scheduler="normal",
        denoise=None,  # KSamplerAdvanced has start/end steps, no denoise
        model="sd_xl_base_1.0.safetensors",
        width=1024,
        height=1024,
        sampler_node="KSamplerAdvanced",
        has_workflow=True,
    )


def test_img2img_png_has_no_latent_size(corpus: Path) -> None:
    meta = extract(corpus_file(corpus, "img2img_img2img_workflow.png"))
    # The latent comes from VAEEncode(LoadImage): the graph holds no size, so
    # width and height are None (the PNG's own size is not the latent's).
    assert meta == ComfyMeta(
        seed=280823642470253,
        prompt="photograph of victorian woman with wings, sky clouds, meadow grass",
        negative_prompt="watermark, text",
        steps=20,
        cfg=8.0,
        sampler="dpmpp_2m",
        scheduler="normal",
        denoise=0.8700000000000001,
        model="v1-5-pruned-emaonly.ckpt",
        width=None,
        height=None,
        sampler_node="KSampler",
        has_workflow=True,
    )


def test_scribble_input_has_no_metadata(corpus: Path) -> None:
    data = corpus_file(corpus, "controlnet_input_scribble_example.png")
    assert read_png_text(data) == {}
    assert extract(data) is None
    assert workflow_json(data) is None


@pytest.mark.parametrize(
    "name",
    [
        "lora_lora.png",
        "flux_flux_dev_example.png",
        "sdxl_sdxl_refiner_prompt_example.png",
        "img2img_img2img_workflow.png",
    ],
)
def test_corpus_text_chunks_match_pillow(corpus: Path, name: str) -> None:
    data = corpus_file(corpus, name)
    with Image.open(io.BytesIO(data)) as image:
        expected = dict(image.text)
    assert set(expected) == {"prompt", "workflow"}
    assert read_png_text(data) == expected
    workflow = workflow_json(data)
    assert workflow is not None
    assert json.loads(workflow) == json.loads(expected["workflow"])


def test_corpus_summary_is_json_ready(corpus: Path) -> None:
    meta = extract(corpus_file(corpus, "lora_lora.png"))
    assert meta is not None
    summary = summarize(meta)
    assert summary == {
        "tool": "comfyui",
        "seed": 851616030078638,
        "prompt": "masterpiece best quality girl",
        "negative_prompt": "bad hands",
        "steps": 20,
        "cfg": 8.0,
        "sampler": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": "v1-5-pruned-emaonly.ckpt",
        "loras": [{"name": "epiNoiseoffset_v2.safetensors", "strength_model": 1.0, "strength_clip": 1.0}],
        "width": 512,
        "height": 512,
        "sampler_node": "KSampler",
        "has_workflow": True,
    }
    assert json.loads(msgspec.json.encode(summary)) == summary


def test_corpus_mutations_never_raise(corpus: Path) -> None:
    data = corpus_file(corpus, "lora_lora.png")
    rng = random.Random(1234)
    for _ in range(300):
        mutated = bytearray(data[: rng.randrange(len(data) + 1)])
        for _ in range(rng.randrange(1, 8)):
            if mutated:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        read_png_text(bytes(mutated))
        result = extract(bytes(mutated))
        assert result is None or isinstance(result, ComfyMeta)


# --------------------------------------------------------------------------
# read_png_text and workflow_json


def test_read_png_text_rejects_non_png() -> None:
    assert read_png_text(b"") == {}
    assert read_png_text(b"GIF89a....") == {}
    assert read_png_text(b"\x89PNG\r\n\x1a\n") == {}
    assert extract(b"not a png") is None


def test_read_png_text_all_chunk_kinds() -> None:
    info = PngInfo()
    info.add_text("plain", "caf\xe9")  # Latin-1 tEXt
    info.add_text("packed", "z" * 5000, zip=True)  # zTXt
    info.add_itxt("unicode", "\uc548\ub155 \u2603", lang="ko")  # iTXt
    info.add_itxt("packed_unicode", "\u2603" * 3000, zip=True)  # compressed iTXt
    buf = io.BytesIO()
    Image.new("L", (2, 2)).save(buf, "PNG", pnginfo=info)
    assert read_png_text(buf.getvalue()) == {
        "plain": "caf\xe9",
        "packed": "z" * 5000,
        "unicode": "\uc548\ub155 \u2603",
        "packed_unicode": "\u2603" * 3000,
    }


def _chunk(chunk_type: bytes, body: bytes, crc: int | None = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(body, zlib.crc32(chunk_type))
    return struct.pack(">I4s", len(body), chunk_type) + body + struct.pack(">I", crc)


def test_read_png_text_skips_bad_crc_and_stops_at_truncation() -> None:
    signature = b"\x89PNG\r\n\x1a\n"
    good = _chunk(b"tEXt", b"good\0yes")
    bad = _chunk(b"tEXt", b"bad\0no", crc=0)
    after_idat = _chunk(b"tEXt", b"late\0still read")
    data = signature + good + bad + _chunk(b"IDAT", b"\0" * 10) + after_idat
    assert read_png_text(data + _chunk(b"IEND", b"")) == {"good": "yes", "late": "still read"}
    # A chunk cut off by truncation is dropped; those before it are kept.
    assert read_png_text(data[:-3]) == {"good": "yes"}
    # Chunks after IEND are not read.
    assert read_png_text(signature + good + _chunk(b"IEND", b"") + after_idat) == {"good": "yes"}


def test_read_png_text_rejects_zip_bomb_and_bad_zlib() -> None:
    signature = b"\x89PNG\r\n\x1a\n"
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    data = (
        signature
        + _chunk(b"zTXt", b"bomb\0\0" + bomb)
        + _chunk(b"zTXt", b"broken\0\0not zlib")
        + _chunk(b"iTXt", b"short\0")
        + _chunk(b"tEXt", b"ok\0fine")
        + _chunk(b"IEND", b"")
    )
    assert read_png_text(data) == {"ok": "fine"}


def test_workflow_json() -> None:
    workflow = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}]}
    data = png(sd15_graph(), workflow=workflow)
    raw = workflow_json(data)
    assert raw is not None
    assert json.loads(raw) == workflow
    meta = extract(data)
    assert meta is not None and meta.has_workflow is True

    assert workflow_json(png(sd15_graph())) is None
    listed = png(sd15_graph(), workflow="[1, 2]")
    assert workflow_json(listed) is None
    meta = extract(listed)
    assert meta is not None and meta.has_workflow is False


@pytest.mark.parametrize("prompt", ["[1, 2, 3]", "null", "{not json", '"text"', "[" * 100_000])
def test_prompt_chunk_that_is_not_a_json_object(prompt: str) -> None:
    assert extract(png(prompt)) is None


def test_no_prompt_chunk() -> None:
    assert extract(png(workflow={"nodes": []}, parameters="a1111 text")) is None


# --------------------------------------------------------------------------
# Synthetic graphs: one per variant


def test_ksampler_direct() -> None:
    meta = extract(png(sd15_graph()))
    assert meta == ComfyMeta(
        seed=42,
        prompt="a red fox in snow",
        negative_prompt="blurry",
        steps=30,
        cfg=7.5,
        sampler="dpmpp_2m",
        scheduler="karras",
        denoise=1.0,
        model="dreamshaper_8.safetensors",
        width=768,
        height=512,
        sampler_node="KSampler",
    )


def test_ksampler_advanced_two_passes() -> None:
    graph = {
        "10": node(
            "KSamplerAdvanced",
            add_noise="enable", noise_seed=1111, steps=40, cfg=6.0, sampler_name="dpmpp_2m_sde",
            scheduler="karras", start_at_step=0, end_at_step=32, return_with_leftover_noise="enable",
            model=link("4"), positive=link("6"), negative=link("7"), latent_image=link("5"),
        ),
        "11": node(
            "KSamplerAdvanced",
            add_noise="disable", noise_seed=0, steps=40, cfg=5.0, sampler_name="euler",
            scheduler="normal", start_at_step=32, end_at_step=10000, return_with_leftover_noise="disable",
            model=link("12"), positive=link("15"), negative=link("16"), latent_image=link("10"),
        ),
        "4": node("CheckpointLoaderSimple", ckpt_name="base.safetensors"),
        "12": node("CheckpointLoaderSimple", ckpt_name="refiner.safetensors"),
        "5": node("EmptyLatentImage", width=1152, height=896, batch_size=1),
        "6": node("CLIPTextEncodeSDXL", text_g="castle on a hill", text_l="castle", clip=link("4", 1),
                  width=4096, height=4096, crop_w=0, crop_h=0, target_width=4096, target_height=4096),
        "7": node("CLIPTextEncodeSDXL", text_g="lowres", text_l="lowres", clip=link("4", 1)),
        "15": node("CLIPTextEncodeSDXLRefiner", text="refiner words", ascore=6.0, clip=link("12", 1)),
        "16": node("CLIPTextEncodeSDXLRefiner", text="refiner negative", ascore=2.5, clip=link("12", 1)),
        "17": node("VAEDecode", samples=link("11"), vae=link("12", 2)),
        "19": node("SaveImage", images=link("17")),
    }
    meta = extract(png(graph))
    assert meta is not None
    assert meta.seed == 1111
    assert meta.prompt == "castle on a hill\ncastle"  # text_g, then text_l when it differs
    assert meta.negative_prompt == "lowres"
    assert (meta.steps, meta.cfg, meta.sampler, meta.scheduler) == (40, 6.0, "dpmpp_2m_sde", "karras")
    assert meta.model == "base.safetensors"
    assert (meta.width, meta.height) == (1152, 896)
    assert meta.sampler_node == "KSamplerAdvanced"


def test_sampler_custom() -> None:
    graph = sd15_graph()
    graph["3"] = node(
        "SamplerCustom",
        model=link("4"), add_noise=True, noise_seed=777, cfg=4.5,
        positive=link("6"), negative=link("7"), sampler=link("20"), sigmas=link("22"),
        latent_image=link("5"),
    )
    graph["20"] = node("SamplerDPMPP_2M_SDE", solver_type="midpoint", eta=1.0, s_noise=1.0, noise_device="gpu")
    graph["21"] = node("KarrasScheduler", steps=28, sigma_max=14.6, sigma_min=0.03, rho=7.0)
    graph["22"] = node("SplitSigmas", sigmas=link("21"), step=0)
    meta = extract(png(graph))
    assert meta is not None
    assert (meta.seed, meta.cfg, meta.steps) == (777, 4.5, 28)
    assert meta.sampler == "SamplerDPMPP_2M_SDE"  # a sampler node without sampler_name
    assert meta.scheduler == "KarrasScheduler"  # a sigmas node without scheduler
    assert meta.denoise is None
    assert (meta.prompt, meta.negative_prompt) == ("a red fox in snow", "blurry")
    assert meta.model == "dreamshaper_8.safetensors"
    assert meta.sampler_node == "SamplerCustom"


def flux_graph() -> dict[str, Any]:
    return {
        "6": node("CLIPTextEncodeFlux", t5xxl="a lighthouse at dusk", clip_l="a lighthouse at dusk",
                  guidance=4.0, clip=link("11")),
        "8": node("VAEDecode", samples=link("13"), vae=link("10")),
        "9": node("SaveImage", filename_prefix="flux", images=link("8")),
        "10": node("VAELoader", vae_name="ae.safetensors"),
        "11": node("DualCLIPLoader", clip_name1="t5xxl.safetensors", clip_name2="clip_l.safetensors", type="flux"),
        "12": node("UNETLoader", unet_name="flux1-schnell.safetensors", weight_dtype="fp8_e4m3fn"),
        "13": node("SamplerCustomAdvanced", noise=link("25"), guider=link("22"), sampler=link("16"),
                   sigmas=link("17"), latent_image=link("27")),
        "16": node("KSamplerSelect", sampler_name="euler"),
        "17": node("BasicScheduler", scheduler="beta", steps=4, denoise=1.0, model=link("31")),
        "22": node("BasicGuider", model=link("31"), conditioning=link("6")),
        "25": node("RandomNoise", noise_seed=987654321),
        "27": node("EmptySD3LatentImage", width=896, height=1152, batch_size=1),
        "30": node("LoraLoaderModelOnly", lora_name="style_a.safetensors", strength_model=0.8, model=link("12")),
        "31": node("LoraLoaderModelOnly", lora_name="style_b.safetensors", strength_model=0.5, model=link("30")),
    }


def test_sampler_custom_advanced_basic_guider() -> None:
    meta = extract(png(flux_graph()))
    assert meta == ComfyMeta(
        seed=987654321,
        prompt="a lighthouse at dusk",  # t5xxl == clip_l: kept once
        steps=4,
        sampler="euler",
        scheduler="beta",
        denoise=1.0,
        model="flux1-schnell.safetensors",
        loras=[Lora("style_a.safetensors", 0.8), Lora("style_b.safetensors", 0.5)],  # applied order
        width=896,
        height=1152,
        guidance=4.0,
        sampler_node="SamplerCustomAdvanced",
    )


def test_cfg_guider_with_zeroed_negative() -> None:
    graph = flux_graph()
    graph["22"] = node("CFGGuider", model=link("31"), positive=link("26"), negative=link("40"), cfg=3.5)
    graph["26"] = node("FluxGuidance", guidance=2.5, conditioning=link("6"))
    graph["40"] = node("ConditioningZeroOut", conditioning=link("6"))
    meta = extract(png(graph))
    assert meta is not None
    assert meta.cfg == 3.5
    assert meta.guidance == 2.5  # FluxGuidance is met before the encoder's own input
    assert meta.prompt == "a lighthouse at dusk"
    assert meta.negative_prompt is None  # zeroed, so the positive text was not a negative


def test_cfg_guider_with_text_negative() -> None:
    graph = flux_graph()
    graph["22"] = node("CFGGuider", model=link("31"), positive=link("6"), negative=link("41"), cfg=2.0)
    graph["41"] = node("CLIPTextEncode", text="fog", clip=link("11"))
    meta = extract(png(graph))
    assert meta is not None
    assert (meta.cfg, meta.negative_prompt) == (2.0, "fog")


def test_disable_noise_pass_falls_back_to_the_noisy_one() -> None:
    graph = flux_graph()
    graph["13"]["inputs"]["latent_image"] = link("50")
    graph["50"] = node("SamplerCustomAdvanced", noise=link("51"), guider=link("22"), sampler=link("16"),
                       sigmas=link("17"), latent_image=link("27"))
    graph["51"] = node("RandomNoise", noise_seed=5555)
    graph["25"] = node("DisableNoise")
    meta = extract(png(graph))
    assert meta is not None and meta.seed == 5555


def test_controlnet_advanced_maps_outputs_to_positive_and_negative() -> None:
    graph = sd15_graph(positive=link("30", 0), negative=link("30", 1))
    graph["30"] = node("ControlNetApplyAdvanced", positive=link("6"), negative=link("7"),
                       control_net=link("31"), image=link("32"), strength=0.9,
                       start_percent=0.0, end_percent=1.0)
    graph["31"] = node("ControlNetLoader", control_net_name="control_scribble.pth")
    graph["32"] = node("LoadImage", image="scribble.png")
    meta = extract(png(graph))
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt) == ("a red fox in snow", "blurry")


def test_controlnet_apply_and_conditioning_combine() -> None:
    graph = sd15_graph(positive=link("30"))
    graph["30"] = node("ControlNetApply", conditioning=link("33"), control_net=link("31"),
                       image=link("32"), strength=1.0)
    graph["31"] = node("ControlNetLoader", control_net_name="canny.pth")
    graph["32"] = node("LoadImage", image="edges.png")
    graph["33"] = node("ConditioningCombine", conditioning_1=link("6"), conditioning_2=link("34"))
    graph["34"] = node("ConditioningSetArea", conditioning=link("35"), width=256, height=256, x=0, y=0, strength=1.0)
    graph["35"] = node("CLIPTextEncode", text="aurora in the sky", clip=link("4", 1))
    meta = extract(png(graph))
    assert meta is not None
    assert meta.prompt == "a red fox in snow\naurora in the sky"
    assert (meta.width, meta.height) == (768, 512)  # ConditioningSetArea's size is not the latent's


def test_seed_text_and_checkpoint_through_primitive_nodes() -> None:
    graph = sd15_graph(seed=link("40"), steps=link("43"))
    graph["40"] = node("Seed (rgthree)", seed=link("41"))
    graph["41"] = node("PrimitiveInt", value=123456789012)
    graph["43"] = node("Int Literal", int=12)
    graph["6"]["inputs"]["text"] = link("42")
    graph["42"] = node("PrimitiveStringMultiline", value="a fox from a primitive")
    graph["4"]["inputs"]["ckpt_name"] = link("44")
    graph["44"] = node("String Literal", string="linked.safetensors")
    meta = extract(png(graph))
    assert meta is not None
    assert (meta.seed, meta.steps) == (123456789012, 12)
    assert meta.prompt == "a fox from a primitive"
    assert meta.model == "linked.safetensors"


@pytest.mark.timeout(10)
def test_cycles_do_not_hang() -> None:
    graph = sd15_graph(positive=link("30"), seed=link("40"))
    graph["30"] = node("ConditioningCombine", conditioning_1=link("31"), conditioning_2=link("6"))
    graph["31"] = node("ConditioningConcat", conditioning_to=link("30"), conditioning_from=link("31"))
    graph["40"] = node("PrimitiveInt", value=link("41"))
    graph["41"] = node("PrimitiveInt", value=link("40"))
    graph["4"] = node("MysteryModelPatch", model=link("45"))
    graph["45"] = node("MysteryModelPatch", model=link("4"))
    graph["5"] = node("LatentUpscaleBy", samples=link("3"), scale_by=1.5)  # latent loops back to the sampler
    meta = extract(png(graph))
    assert meta is not None
    assert meta.prompt == "a red fox in snow"
    assert meta.seed is None
    assert meta.model is None
    assert (meta.width, meta.height) == (None, None)
    assert meta.steps == 30


@pytest.mark.timeout(10)
def test_cycle_between_samplers() -> None:
    graph = sd15_graph(latent_image=link("20"))
    graph["20"] = node("KSampler", seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal",
                       denoise=1.0, model=link("4"), positive=link("6"), negative=link("7"),
                       latent_image=link("3"))
    del graph["9"]
    meta = extract(png(graph))
    assert meta is not None and meta.sampler_node == "KSampler"


def test_dangling_links() -> None:
    graph = sd15_graph(positive=link("999"), model=link("404", 0))
    meta = extract(png(graph))
    assert meta is not None
    assert meta.prompt is None
    assert meta.model is None
    assert (meta.seed, meta.negative_prompt, meta.width) == (42, "blurry", 768)


def test_dangling_link_before_the_sampler_falls_back_to_samplers() -> None:
    graph = sd15_graph()
    graph["8"]["inputs"]["samples"] = link("777")
    meta = extract(png(graph))
    assert meta is not None and meta.seed == 42


def test_garbage_shapes() -> None:
    graph: dict[str, Any] = sd15_graph(
        positive=["6"],  # link of the wrong arity
        negative=["7", 0, 1],
        model=[True, 0],
        steps="30",
        cfg=True,
        denoise=float("nan"),
        seed=1 << 70,
    )
    graph["1"] = "a node that is a string"
    graph["2"] = {"class_type": 5, "inputs": [1, 2, 3]}
    graph["5"] = {"class_type": "EmptyLatentImage", "inputs": ["width", 512]}
    graph["6"] = None
    graph["8"]["inputs"]["vae"] = {"not": "a link"}
    meta = extract(png(graph))
    assert meta is not None
    assert meta.sampler == "dpmpp_2m"
    assert (meta.seed, meta.steps, meta.cfg, meta.denoise) == (None, None, None, None)
    assert (meta.prompt, meta.negative_prompt, meta.model, meta.width) == (None, None, None, None)
    msgspec.json.encode(meta)


def test_graph_without_samplers() -> None:
    meta = extract(png({"1": node("LoadImage", image="x.png"), "2": node("SaveImage", images=link("1"))}))
    assert meta == ComfyMeta()


def test_unknown_custom_nodes_in_the_middle() -> None:
    graph = sd15_graph(positive=link("30"), model=link("33"))
    graph["30"] = node("AcmePromptStyler", cond_in=link("31"), style="cinematic")
    graph["31"] = node("AcmeMystery", x=link("6"), y=42)
    graph["33"] = node("AcmeModelPatcher", m=link("34"), strength=0.3)
    graph["34"] = node("LoraLoader", lora_name="detail.safetensors", strength_model=0.7, strength_clip=0.6,
                       model=link("4"), clip=link("4", 1))
    graph["9"]["inputs"]["images"] = link("35")
    graph["35"] = node("AcmeSharpen", img=link("8"), amount=2)
    meta = extract(png(graph))
    assert meta is not None
    assert meta.prompt == "a red fox in snow"
    assert meta.model == "dreamshaper_8.safetensors"
    assert meta.loras == [Lora("detail.safetensors", 0.7, 0.6)]
    assert meta.seed == 42


def test_final_sampler_is_found_by_links_not_node_order() -> None:
    decoy = node("KSampler", seed=13, steps=5, cfg=1.0, sampler_name="lcm", scheduler="sgm_uniform",
                 denoise=1.0, model=link("4"), positive=link("6"), negative=link("7"), latent_image=link("5"))
    before = {"1": decoy, **sd15_graph()}
    after = {**sd15_graph(), "99": decoy}
    for graph in (before, after):
        meta = extract(png(graph))
        assert meta is not None and meta.seed == 42


def hires_graph() -> dict[str, Any]:
    graph = sd15_graph()
    graph["20"] = node("LatentUpscale", samples=link("3"), upscale_method="nearest-exact",
                       width=1536, height=1024, crop="disabled")
    graph["21"] = node("KSampler", seed=99, steps=15, cfg=7.5, sampler_name="euler", scheduler="normal",
                       denoise=0.5, model=link("4"), positive=link("6"), negative=link("7"),
                       latent_image=link("20"))
    graph["8"]["inputs"]["samples"] = link("21")
    return graph


def test_hires_fix_takes_the_last_pass_and_upscaled_size() -> None:
    meta = extract(png(hires_graph()))
    assert meta is not None
    assert (meta.seed, meta.steps, meta.denoise) == (99, 15, 0.5)
    assert (meta.width, meta.height) == (1536, 1024)


def test_several_outputs_pick_the_most_downstream_save() -> None:
    graph = hires_graph()
    graph["50"] = node("VAEDecode", samples=link("3"), vae=link("4", 2))
    graph["51"] = node("SaveImage", images=link("50"))  # saves the base pass too
    graph["52"] = node("PreviewImage", images=link("50"))
    meta = extract(png(graph))
    assert meta is not None and meta.seed == 99

    preview_only = hires_graph()
    preview_only["9"] = node("PreviewImage", images=link("8"))
    meta = extract(png(preview_only))
    assert meta is not None and meta.seed == 99


def test_save_is_preferred_to_preview() -> None:
    graph = hires_graph()
    graph["9"] = node("PreviewImage", images=link("8"))
    graph["50"] = node("VAEDecode", samples=link("3"), vae=link("4", 2))
    graph["51"] = node("SaveImage", images=link("50"))
    meta = extract(png(graph))
    assert meta is not None and meta.seed == 42


def test_no_output_node_uses_the_last_sampler() -> None:
    graph = hires_graph()
    del graph["9"], graph["8"]
    meta = extract(png(graph))
    assert meta is not None and meta.seed == 99


def test_huge_prompt_and_many_loras_are_bounded_in_summary() -> None:
    graph = sd15_graph(model=link("119"))
    graph["6"]["inputs"]["text"] = "fox " * 5000
    previous = "4"
    for i in range(100, 120):
        graph[str(i)] = node("LoraLoader", lora_name=f"lora_{i}.safetensors", strength_model=1.0,
                             strength_clip=0.5, model=link(previous), clip=link(previous, 1))
        previous = str(i)
    meta = extract(png(graph))
    assert meta is not None
    assert meta.prompt == ("fox " * 5000).strip()
    assert [lora.name for lora in meta.loras] == [f"lora_{i}.safetensors" for i in range(100, 120)]

    summary = summarize(meta)
    assert summary["tool"] == "comfyui"
    assert len(summary["prompt"]) == 2000
    assert meta.prompt.startswith(summary["prompt"])
    assert len(summary["loras"]) == 16
    assert summary["loras"][0] == {"name": "lora_100.safetensors", "strength_model": 1.0, "strength_clip": 0.5}
    assert summary["loras_omitted"] == 4
    assert len(msgspec.json.encode(summary)) < 4000


def test_summary_of_empty_meta() -> None:
    assert summarize(ComfyMeta()) == {"tool": "comfyui"}


# --------------------------------------------------------------------------
# Arbitrary graphs never raise

CLASS_TYPES = [
    "KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced", "SaveImage",
    "PreviewImage", "VAEDecode", "CLIPTextEncode", "CLIPTextEncodeSDXL", "ConditioningCombine",
    "ControlNetApplyAdvanced", "ConditioningZeroOut", "FluxGuidance", "CFGGuider", "BasicGuider",
    "RandomNoise", "DisableNoise", "BasicScheduler", "KSamplerSelect", "LoraLoader",
    "CheckpointLoaderSimple", "UNETLoader", "EmptyLatentImage", "PrimitiveInt", "Mystery",
]
INPUT_NAMES = [
    "seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "model", "positive",
    "negative", "latent_image", "samples", "images", "conditioning", "conditioning_1", "text", "text_g",
    "clip", "noise", "guider", "sampler", "sigmas", "add_noise", "lora_name", "ckpt_name", "width",
    "height", "value", "guidance", "lora_1",
]
NODE_IDS = [str(i) for i in range(8)]
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.sampled_from(["enable", "disable", "euler"]),
)
input_value = st.one_of(
    json_leaf,
    st.tuples(st.sampled_from(NODE_IDS), st.integers(-1, 3)).map(list),
    st.lists(json_leaf, max_size=3),
    st.dictionaries(st.sampled_from(["on", "lora", "strength"]), json_leaf, max_size=3),
)
graph_node = st.one_of(
    st.fixed_dictionaries(
        {"class_type": st.sampled_from(CLASS_TYPES),
         "inputs": st.dictionaries(st.sampled_from(INPUT_NAMES), input_value, max_size=8)}
    ),
    json_leaf,
    st.lists(json_leaf, max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(NODE_IDS), graph_node, max_size=8))
def test_arbitrary_graphs_never_raise(graph: dict[str, Any]) -> None:
    meta = extract(png(json.dumps(graph)))
    assert isinstance(meta, ComfyMeta)
    summary = summarize(meta)
    msgspec.json.encode(summary)
    msgspec.json.encode(meta)


# --- one graph per sampler/guider family (tests/comfy_families.py), through a real ingest ---------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_record_has_what_a_reader_of_the_graph_would_say(family: str, store) -> None:
    seed, prompt, negative, size, model = EXPECTED[family]
    record = store.ingest(png_of(FAMILIES[family]), "u-reader", "generated").record
    assert (record.seed, record.prompt, record.negative_prompt) == (seed, prompt, negative)
    assert (record.source.get("width"), record.source.get("height")) == size
    assert record.source.get("model") == model
    assert record.source["has_workflow"] is True


def test_a_positive_path_never_crosses_into_a_negative_input() -> None:
    # A custom node that takes a conditioning and a negative, reached from the positive side.
    graph = {
        "1": node("CheckpointLoaderSimple", ckpt_name="m.safetensors"),
        "2": node("CLIPTextEncode", text="the cat", clip=link(1, 1)),
        "3": node("CLIPTextEncode", text="the dog", clip=link(1, 1)),
        "4": node("CustomConditioningMixer", conditioning=link(2), negative=link(3), strength=0.5),
        "5": node("CustomPositiveOnly", positive_cond=link(3)),
        "6": node("EmptyLatentImage", width=64, height=64, batch_size=1),
        "7": node("KSampler", seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=link(1), positive=link(4), negative=link(5), latent_image=link(6)),
        "8": node("SaveImage", images=link(7), filename_prefix="x"),
    }
    meta = extract(png_of(graph))
    assert meta is not None and (meta.prompt, meta.negative_prompt) == ("the cat", None)


def test_animation_and_video_saves_are_outputs() -> None:
    # The SaveVideo branch's sampler is the one saved, not the preview's.
    graph = {
        "1": node("CheckpointLoaderSimple", ckpt_name="m.safetensors"),
        "2": node("CLIPTextEncode", text="saved", clip=link(1, 1)),
        "3": node("CLIPTextEncode", text="previewed", clip=link(1, 1)),
        "6": node("EmptyLatentImage", width=64, height=64, batch_size=1),
        "7": node("KSampler", seed=7, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=link(1), positive=link(2), negative=link(3), latent_image=link(6)),
        "8": node("KSampler", seed=8, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=link(1), positive=link(3), negative=link(2), latent_image=link(6)),
        "9": node("VAEDecode", samples=link(7), vae=link(1, 2)),
        "10": node("VAEDecode", samples=link(8), vae=link(1, 2)),
        "11": node("PreviewImage", images=link(10)),
        "12": node("CreateVideo", fps=8.0, images=link(9)),
        "13": node("SaveVideo", filename_prefix="video/x", format="auto", codec="auto", video=link(12)),
    }
    meta = extract(png_of(graph))
    assert meta is not None and (meta.seed, meta.prompt) == (7, "saved")


def test_dual_cfg_guider_gives_its_cfg_conds_as_cfg() -> None:
    meta = extract(png_of(FAMILIES["DualCFGGuider+ReferenceLatent"]))
    assert meta is not None and (meta.cfg, meta.sampler, meta.steps) == (5.0, "euler", 20)
