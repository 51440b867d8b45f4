"""ComfyUI API-format graphs, one per sampler/guider family, with what a person reading them would say.

Each graph is written the way ComfyUI's own example workflows wire these
nodes (node names, input names and link shapes of ComfyUI 0.8.0's built-in
nodes); :func:`png_of` embeds one into a PNG as SaveImage does (a tEXt
``prompt`` chunk, plus a ``workflow`` chunk). ``EXPECTED`` holds, per
family: seed, positive prompt, negative prompt, (width, height) of the
graph, and model.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

Graph = dict[str, dict[str, Any]]


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    """One API-format node."""
    return {"class_type": class_type, "inputs": inputs}


def link(node_id: str | int, output: int = 0) -> list[Any]:
    """A link to output ``output`` of node ``node_id``."""
    return [str(node_id), output]


def png_of(graph: Graph, size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG carrying ``graph`` as ComfyUI's SaveImage writes it."""
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    info.add_text("workflow", json.dumps({"last_node_id": len(graph), "nodes": []}))
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 200)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


POS, NEG = "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality, watermark"
EDIT, EDIT_NEG = "make it a drawing", "low quality, blurry, distorted"


def _decode_save(sampler: str, vae: list[Any], prefix: str = "ComfyUI") -> Graph:
    return {"90": node("VAEDecode", samples=link(sampler), vae=vae), "91": node("SaveImage", images=link(90), filename_prefix=prefix)}


KSAMPLER: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors"),
    "6": node("CLIPTextEncode", text=POS, clip=link(4, 1)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(4, 1)),
    "5": node("EmptyLatentImage", width=512, height=768, batch_size=1),
    "3": node("KSampler", seed=156680208700286, steps=20, cfg=8.0, sampler_name="euler", scheduler="normal",
              denoise=1.0, model=link(4), positive=link(6), negative=link(7), latent_image=link(5)),
    **_decode_save("3", link(4, 2)),
}

KSAMPLER_ADVANCED_REFINER: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors"),
    "12": node("CheckpointLoaderSimple", ckpt_name="sd_xl_refiner_1.0.safetensors"),
    "6": node("CLIPTextEncodeSDXL", text_g=POS, text_l=POS, width=4096, height=4096, crop_w=0, crop_h=0,
              target_width=4096, target_height=4096, clip=link(4, 1)),
    "7": node("CLIPTextEncodeSDXL", text_g=NEG, text_l=NEG, width=4096, height=4096, crop_w=0, crop_h=0,
              target_width=4096, target_height=4096, clip=link(4, 1)),
    "15": node("CLIPTextEncodeSDXLRefiner", ascore=6.0, width=2048, height=2048, text=POS, clip=link(12, 1)),
    "16": node("CLIPTextEncodeSDXLRefiner", ascore=2.5, width=2048, height=2048, text=NEG, clip=link(12, 1)),
    "5": node("EmptyLatentImage", width=1024, height=1024, batch_size=1),
    "10": node("KSamplerAdvanced", add_noise="enable", noise_seed=721897303308196, steps=25, cfg=8.0,
               sampler_name="euler", scheduler="normal", start_at_step=0, end_at_step=20,
               return_with_leftover_noise="enable", model=link(4), positive=link(6), negative=link(7),
               latent_image=link(5)),
    "11": node("KSamplerAdvanced", add_noise="disable", noise_seed=0, steps=25, cfg=8.0, sampler_name="euler",
               scheduler="normal", start_at_step=20, end_at_step=10000, return_with_leftover_noise="disable",
               model=link(12), positive=link(15), negative=link(16), latent_image=link(10)),
    **_decode_save("11", link(12, 2)),
}

SAMPLER_CUSTOM: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="sd_xl_turbo_1.0_fp16.safetensors"),
    "6": node("CLIPTextEncode", text=POS, clip=link(4, 1)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(4, 1)),
    "5": node("EmptyLatentImage", width=512, height=512, batch_size=1),
    "14": node("KSamplerSelect", sampler_name="euler_ancestral"),
    "22": node("SDTurboScheduler", steps=1, denoise=1.0, model=link(4)),
    "13": node("SamplerCustom", add_noise=True, noise_seed=1001, cfg=1.0, model=link(4), positive=link(6),
               negative=link(7), sampler=link(14), sigmas=link(22), latent_image=link(5)),
    **_decode_save("13", link(4, 2)),
}

BASIC_GUIDER_FLUX: Graph = {
    "12": node("UNETLoader", unet_name="flux1-dev.safetensors", weight_dtype="default"),
    "11": node("DualCLIPLoader", clip_name1="t5xxl_fp16.safetensors", clip_name2="clip_l.safetensors", type="flux"),
    "10": node("VAELoader", vae_name="ae.safetensors"),
    "6": node("CLIPTextEncode", text=POS, clip=link(11)),
    "26": node("FluxGuidance", guidance=3.5, conditioning=link(6)),
    "22": node("BasicGuider", model=link(12), conditioning=link(26)),
    "25": node("RandomNoise", noise_seed=219670278747233),
    "16": node("KSamplerSelect", sampler_name="euler"),
    "17": node("BasicScheduler", scheduler="simple", steps=20, denoise=1.0, model=link(12)),
    "27": node("EmptySD3LatentImage", width=1024, height=1024, batch_size=1),
    "13": node("SamplerCustomAdvanced", noise=link(25), guider=link(22), sampler=link(16), sigmas=link(17),
               latent_image=link(27)),
    "8": node("VAEDecode", samples=link(13), vae=link(10)),
    "9": node("SaveImage", filename_prefix="flux", images=link(8)),
}

CFG_GUIDER: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="sd3.5_medium.safetensors"),
    "6": node("CLIPTextEncode", text=POS, clip=link(4, 1)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(4, 1)),
    "20": node("CFGGuider", cfg=4.5, model=link(4), positive=link(6), negative=link(7)),
    "25": node("RandomNoise", noise_seed=42),
    "16": node("KSamplerSelect", sampler_name="dpmpp_2m"),
    "17": node("BasicScheduler", scheduler="sgm_uniform", steps=28, denoise=1.0, model=link(4)),
    "27": node("EmptySD3LatentImage", width=1152, height=896, batch_size=1),
    "13": node("SamplerCustomAdvanced", noise=link(25), guider=link(20), sampler=link(16), sigmas=link(17),
               latent_image=link(27)),
    **_decode_save("13", link(4, 2)),
}

# Omnigen2-style editing: cond1 = the instruction with the reference image,
# cond2 = the negative text with the reference image, negative = the negative text.
DUAL_CFG_GUIDER: Graph = {
    "1": node("UNETLoader", unet_name="omnigen2_fp16.safetensors", weight_dtype="default"),
    "2": node("CLIPLoader", clip_name="qwen_2.5_vl_fp16.safetensors", type="omnigen2"),
    "3": node("VAELoader", vae_name="ae.safetensors"),
    "10": node("LoadImage", image="photo.png"),
    "11": node("ImageScaleToTotalPixels", upscale_method="area", megapixels=1.0, image=link(10)),
    "12": node("VAEEncode", pixels=link(11), vae=link(3)),
    "6": node("CLIPTextEncode", text=EDIT, clip=link(2)),
    "7": node("CLIPTextEncode", text=EDIT_NEG, clip=link(2)),
    "20": node("ReferenceLatent", conditioning=link(6), latent=link(12)),
    "21": node("ReferenceLatent", conditioning=link(7), latent=link(12)),
    "22": node("DualCFGGuider", cfg_conds=5.0, cfg_cond2_negative=2.0, model=link(1), cond1=link(20),
               cond2=link(21), negative=link(7)),
    "25": node("RandomNoise", noise_seed=9001),
    "16": node("KSamplerSelect", sampler_name="euler"),
    "17": node("BasicScheduler", scheduler="simple", steps=20, denoise=1.0, model=link(1)),
    "27": node("EmptySD3LatentImage", width=1024, height=1024, batch_size=1),
    "13": node("SamplerCustomAdvanced", noise=link(25), guider=link(22), sampler=link(16), sigmas=link(17),
               latent_image=link(27)),
    **_decode_save("13", link(3)),
}

# InstructPix2Pix through DualCFGGuider: the conditioning node returns
# (positive, negative, latent); cond2 is its negative output.
INSTRUCT_PIX2PIX: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="instruct-pix2pix-00-22000.safetensors"),
    "10": node("LoadImage", image="photo.png"),
    "11": node("ImageScale", upscale_method="lanczos", width=512, height=512, crop="center", image=link(10)),
    "6": node("CLIPTextEncode", text=EDIT, clip=link(4, 1)),
    "7": node("CLIPTextEncode", text=EDIT_NEG, clip=link(4, 1)),
    "20": node("InstructPixToPixConditioning", positive=link(6), negative=link(7), vae=link(4, 2), pixels=link(11)),
    "22": node("DualCFGGuider", cfg_conds=7.5, cfg_cond2_negative=1.5, model=link(4), cond1=link(20, 0),
               cond2=link(20, 1), negative=link(20, 1)),
    "25": node("RandomNoise", noise_seed=777),
    "16": node("KSamplerSelect", sampler_name="euler_ancestral"),
    "17": node("BasicScheduler", scheduler="normal", steps=20, denoise=1.0, model=link(4)),
    "13": node("SamplerCustomAdvanced", noise=link(25), guider=link(22), sampler=link(16), sigmas=link(17),
               latent_image=link(20, 2)),
    **_decode_save("13", link(4, 2)),
}

# Flux Kontext: the prompt with a reference latent, the negative a zeroed copy.
REFERENCE_LATENT: Graph = {
    "37": node("UNETLoader", unet_name="flux1-dev-kontext_fp8_scaled.safetensors", weight_dtype="default"),
    "38": node("DualCLIPLoader", clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp8_e4m3fn_scaled.safetensors",
               type="flux"),
    "39": node("VAELoader", vae_name="ae.safetensors"),
    "142": node("LoadImage", image="kontext_input.png"),
    "42": node("FluxKontextImageScale", image=link(142)),
    "124": node("VAEEncode", pixels=link(42), vae=link(39)),
    "6": node("CLIPTextEncode", text=EDIT, clip=link(38)),
    "177": node("ReferenceLatent", conditioning=link(6), latent=link(124)),
    "35": node("FluxGuidance", guidance=2.5, conditioning=link(177)),
    "135": node("ConditioningZeroOut", conditioning=link(6)),
    "31": node("KSampler", seed=5555, steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0,
               model=link(37), positive=link(35), negative=link(135), latent_image=link(124)),
    **_decode_save("31", link(39)),
}

# unCLIP: the image is the prompt; the text encoder of the positive side is empty and zeroed.
UNCLIP: Graph = {
    "4": node("unCLIPCheckpointLoader", ckpt_name="sd21-unclip-h.ckpt"),
    "10": node("LoadImage", image="mountains.png"),
    "11": node("CLIPVisionEncode", crop="center", clip_vision=link(4, 3), image=link(10)),
    "6": node("CLIPTextEncode", text="", clip=link(4, 1)),
    "12": node("ConditioningZeroOut", conditioning=link(6)),
    "13": node("unCLIPConditioning", strength=1.0, noise_augmentation=0.1, conditioning=link(12),
               clip_vision_output=link(11)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(4, 1)),
    "5": node("EmptyLatentImage", width=768, height=768, batch_size=1),
    "3": node("KSampler", seed=2024, steps=30, cfg=10.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=1.0,
              model=link(4), positive=link(13), negative=link(7), latent_image=link(5)),
    **_decode_save("3", link(4, 2)),
}

FLUX_GUIDANCE: Graph = {
    "30": node("CheckpointLoaderSimple", ckpt_name="flux1-schnell-fp8.safetensors"),
    "6": node("CLIPTextEncodeFlux", clip_l=POS, t5xxl=POS, guidance=3.5, clip=link(30, 1)),
    "33": node("ConditioningZeroOut", conditioning=link(6)),
    "27": node("EmptySD3LatentImage", width=1344, height=768, batch_size=1),
    "31": node("KSampler", seed=972054013131368, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple",
               denoise=1.0, model=link(30), positive=link(6), negative=link(33), latent_image=link(27)),
    **_decode_save("31", link(30, 2)),
}

# SD3: the negative text is used for the first 10 % of the steps, zeroed after.
SD3: Graph = {
    "252": node("CheckpointLoaderSimple", ckpt_name="sd3_medium.safetensors"),
    "11": node("TripleCLIPLoader", clip_name1="clip_g.safetensors", clip_name2="clip_l.safetensors",
               clip_name3="t5xxl_fp16.safetensors"),
    "6": node("CLIPTextEncode", text=POS, clip=link(11)),
    "71": node("CLIPTextEncode", text=NEG, clip=link(11)),
    "67": node("ConditioningZeroOut", conditioning=link(71)),
    "68": node("ConditioningSetTimestepRange", start=0.1, end=1.0, conditioning=link(67)),
    "70": node("ConditioningSetTimestepRange", start=0.0, end=0.1, conditioning=link(71)),
    "69": node("ConditioningCombine", conditioning_1=link(68), conditioning_2=link(70)),
    "13": node("ModelSamplingSD3", shift=3.0, model=link(252)),
    "135": node("EmptySD3LatentImage", width=1024, height=1024, batch_size=1),
    "271": node("KSampler", seed=945512652412924, steps=28, cfg=4.5, sampler_name="dpmpp_2m", scheduler="sgm_uniform",
                denoise=1.0, model=link(13), positive=link(6), negative=link(69), latent_image=link(135)),
    **_decode_save("271", link(252, 2)),
}

# Wan 2.1 image to video: WanImageToVideo returns (positive, negative, latent);
# the frames become a video (CreateVideo -> SaveVideo) and an animated WebP.
VIDEO: Graph = {
    "37": node("UNETLoader", unet_name="wan2.1_i2v_480p_14B_fp16.safetensors", weight_dtype="default"),
    "38": node("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan"),
    "39": node("VAELoader", vae_name="wan_2.1_vae.safetensors"),
    "49": node("CLIPVisionLoader", clip_name="clip_vision_h.safetensors"),
    "52": node("LoadImage", image="flux_start.png"),
    "51": node("CLIPVisionEncode", crop="none", clip_vision=link(49), image=link(52)),
    "6": node("CLIPTextEncode", text=POS, clip=link(38)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(38)),
    "50": node("WanImageToVideo", width=832, height=480, length=33, batch_size=1, positive=link(6), negative=link(7),
               vae=link(39), clip_vision_output=link(51), start_image=link(52)),
    "54": node("ModelSamplingSD3", shift=8.0, model=link(37)),
    "3": node("KSampler", seed=987948718394761, steps=20, cfg=6.0, sampler_name="uni_pc", scheduler="simple",
              denoise=1.0, model=link(54), positive=link(50, 0), negative=link(50, 1), latent_image=link(50, 2)),
    "8": node("VAEDecode", samples=link(3), vae=link(39)),
    "28": node("SaveAnimatedWEBP", filename_prefix="wan", fps=16.0, lossless=False, quality=90, method="default",
               images=link(8)),
    "60": node("CreateVideo", fps=16.0, images=link(8)),
    "61": node("SaveVideo", filename_prefix="video/wan", format="auto", codec="auto", video=link(60)),
}

# A batch: four latents, sampled at once, then repeated and saved.
BATCH: Graph = {
    "4": node("CheckpointLoaderSimple", ckpt_name="dreamshaper_8.safetensors"),
    "10": node("LoraLoader", lora_name="add_detail.safetensors", strength_model=0.8, strength_clip=0.8,
               model=link(4), clip=link(4, 1)),
    "6": node("CLIPTextEncode", text=POS, clip=link(10, 1)),
    "7": node("CLIPTextEncode", text=NEG, clip=link(10, 1)),
    "5": node("EmptyLatentImage", width=640, height=448, batch_size=4),
    "3": node("KSampler", seed=3, steps=25, cfg=7.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=1.0,
              model=link(10), positive=link(6), negative=link(7), latent_image=link(5)),
    "8": node("VAEDecode", samples=link(3), vae=link(4, 2)),
    "11": node("RepeatImageBatch", amount=2, image=link(8)),
    "9": node("SaveImage", filename_prefix="batch/ComfyUI", images=link(11)),
}

FAMILIES: dict[str, Graph] = {
    "KSampler": KSAMPLER,
    "KSamplerAdvanced+refiner": KSAMPLER_ADVANCED_REFINER,
    "SamplerCustom": SAMPLER_CUSTOM,
    "SamplerCustomAdvanced+BasicGuider (Flux)": BASIC_GUIDER_FLUX,
    "CFGGuider": CFG_GUIDER,
    "DualCFGGuider+ReferenceLatent": DUAL_CFG_GUIDER,
    "InstructPixToPix (DualCFGGuider)": INSTRUCT_PIX2PIX,
    "ReferenceLatent (Flux Kontext)": REFERENCE_LATENT,
    "unCLIP (empty zeroed prompt)": UNCLIP,
    "Flux guidance (CLIPTextEncodeFlux)": FLUX_GUIDANCE,
    "SD3": SD3,
    "video (WanImageToVideo, SaveVideo)": VIDEO,
    "batch (LoRA, RepeatImageBatch)": BATCH,
}

# family: (seed, prompt, negative prompt, (width, height), model)
EXPECTED: dict[str, tuple[int | None, str | None, str | None, tuple[int | None, int | None], str | None]] = {
    "KSampler": (156680208700286, POS, NEG, (512, 768), "v1-5-pruned-emaonly.safetensors"),
    "KSamplerAdvanced+refiner": (721897303308196, POS, NEG, (1024, 1024), "sd_xl_base_1.0.safetensors"),
    "SamplerCustom": (1001, POS, NEG, (512, 512), "sd_xl_turbo_1.0_fp16.safetensors"),
    "SamplerCustomAdvanced+BasicGuider (Flux)": (219670278747233, POS, None, (1024, 1024), "flux1-dev.safetensors"),
    "CFGGuider": (42, POS, NEG, (1152, 896), "sd3.5_medium.safetensors"),
    "DualCFGGuider+ReferenceLatent": (9001, EDIT, EDIT_NEG, (1024, 1024), "omnigen2_fp16.safetensors"),
    "InstructPixToPix (DualCFGGuider)": (777, EDIT, EDIT_NEG, (512, 512), "instruct-pix2pix-00-22000.safetensors"),
    "ReferenceLatent (Flux Kontext)": (5555, EDIT, None, (None, None), "flux1-dev-kontext_fp8_scaled.safetensors"),
    "unCLIP (empty zeroed prompt)": (2024, None, NEG, (768, 768), "sd21-unclip-h.ckpt"),
    "Flux guidance (CLIPTextEncodeFlux)": (972054013131368, POS, None, (1344, 768), "flux1-schnell-fp8.safetensors"),
    "SD3": (945512652412924, POS, NEG, (1024, 1024), "sd3_medium.safetensors"),
    "video (WanImageToVideo, SaveVideo)": (987948718394761, POS, NEG, (832, 480),
                                            "wan2.1_i2v_480p_14B_fp16.safetensors"),
    "batch (LoRA, RepeatImageBatch)": (3, POS, NEG, (640, 448), "dreamshaper_8.safetensors"),
}
