"""Generation metadata from PNG files written by ComfyUI.

ComfyUI's SaveImage node stores two JSON documents in PNG text chunks
(SaveAnimatedPNG in ``comf`` chunks, SaveAnimatedWEBP in EXIF strings
``prompt:{...}`` and ``workflow:{...}``, SaveVideo and SaveWEBM in the
container's metadata; :func:`read_texts` reads all of them):
``prompt``, the API-format graph that ran (``{node_id: {"class_type",
"inputs", "_meta"?}}``, where an input that is a link reads
``[node_id, output_index]``), and ``workflow``, the UI graph, present only
when the job came from the UI. :func:`extract` walks the ``prompt`` graph
upstream from the node that saved the image to the sampler that made it, and
from that sampler to its seed, prompts, model, LoRAs and latent size.

Graphs come from users and from custom nodes, so nothing here trusts their
shape: every walk keeps a visited set and a step bound, dangling links and
malformed nodes are skipped, and the functions return what they could find
instead of raising.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import msgspec

__all__ = [
    "ComfyMeta",
    "Lora",
    "extract",
    "prompt_json",
    "read_png_text",
    "read_texts",
    "summarize",
    "workflow_json",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# "comf": SaveAnimatedPNG's private chunk, laid out like tEXt (keyword, NUL, text).
_TEXT_CHUNK_TYPES = frozenset({b"tEXt", b"zTXt", b"iTXt", b"comf"})
# NOTE: a PNG may hold many IDAT chunks, and text chunks may legally follow
# them, so the whole file is walked; these bounds keep a hostile file cheap.
_MAX_CHUNKS = 1 << 20
_MAX_TEXT_CHARS = 64 << 20
_MAX_INFLATED_BYTES = 32 << 20

# Bounds on graph walks: nodes visited per walk, links followed to resolve
# one value, and samplers compared when choosing the final one.
_MAX_WALK_STEPS = 4096
_MAX_VALUE_HOPS = 32
_MAX_SAMPLER_CANDIDATES = 64

_SUMMARY_TEXT_CHARS = 2000
_SUMMARY_NAME_CHARS = 256
_SUMMARY_MAX_LORAS = 16

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1

T = TypeVar("T")


class Lora(msgspec.Struct, omit_defaults=True):
    """One LoRA applied on the way from the checkpoint to the sampler."""

    name: str
    strength_model: float | None = None
    strength_clip: float | None = None


class ComfyMeta(msgspec.Struct, omit_defaults=True):
    """What a ComfyUI ``prompt`` graph says about how one image was made."""

    seed: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None
    model: str | None = None
    loras: list[Lora] = []
    width: int | None = None
    height: int | None = None
    guidance: float | None = None
    sampler_node: str | None = None
    has_workflow: bool = False


# --------------------------------------------------------------------------
# PNG text chunks


def read_png_text(data: bytes) -> dict[str, str]:
    """Return the PNG's tEXt, zTXt and iTXt chunks as {keyword: text}; {} if not a PNG."""
    view = memoryview(data)
    if bytes(view[:8]) != _PNG_SIGNATURE:
        return {}
    texts: dict[str, str] = {}
    budget = _MAX_TEXT_CHARS
    pos = 8
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(view):
            break
        length, chunk_type = struct.unpack_from(">I4s", view, pos)
        body_end = pos + 8 + length
        if body_end + 4 > len(view):
            break  # truncated file: keep what was read intact
        if chunk_type == b"IEND":
            break
        if chunk_type in _TEXT_CHUNK_TYPES and budget > 0:
            body = view[pos + 8 : body_end]
            (crc,) = struct.unpack_from(">I", view, body_end)
            # NOTE: a chunk whose CRC fails is skipped, not trusted.
            if zlib.crc32(body, zlib.crc32(chunk_type)) == crc:
                entry = _decode_text_chunk(chunk_type, bytes(body))
                if entry is not None and len(entry[1]) <= budget:
                    key, text = entry
                    # NOTE: the first chunk with a keyword wins; ComfyUI
                    # writes each keyword once.
                    if key not in texts:
                        texts[key] = text
                        budget -= len(text)
        pos = body_end + 4
    return texts


def _decode_text_chunk(chunk_type: bytes, body: bytes) -> tuple[str, str] | None:
    """Decode one text chunk body into (keyword, text), or None if malformed."""
    key_bytes, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(key_bytes) <= 79:
        return None
    key = key_bytes.decode("latin-1")
    if chunk_type in (b"tEXt", b"comf"):
        return key, _decode_latin1_text(rest)
    if chunk_type == b"zTXt":
        if rest[:1] != b"\0":
            return None
        inflated = _inflate(rest[1:])
        return None if inflated is None else (key, _decode_latin1_text(inflated))
    # iTXt: compression flag, method, language tag\0, translated keyword\0, text
    if len(rest) < 2:
        return None
    compressed, method = rest[0], rest[1]
    _lang, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, payload = rest.partition(b"\0")
    if not (sep1 and sep2):
        return None
    if compressed:
        if method != 0:
            return None
        inflated = _inflate(payload)
        if inflated is None:
            return None
        payload = inflated
    return key, payload.decode("utf-8", errors="replace")


def _decode_latin1_text(raw: bytes) -> str:
    """Decode a tEXt/zTXt payload."""
    # NOTE: the PNG spec says Latin-1, but several generators put UTF-8 in
    # tEXt; valid UTF-8 is almost never meant as Latin-1, so it is tried first.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _inflate(payload: bytes) -> bytes | None:
    """Inflate a zlib stream, or None if it is corrupt or inflates too far."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, _MAX_INFLATED_BYTES)
    except zlib.error:
        return None
    if inflater.unconsumed_tail or not inflater.eof:
        return None
    return out


def _json_object(text: str | None) -> dict[str, Any] | None:
    """Parse text as a JSON object, or None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


_WEBP_EXIF_MAX = 16 << 20


def _webp_exif_texts(data: bytes) -> dict[str, str]:
    """ComfyUI's ``key:text`` strings in an (animated) WebP's EXIF chunk; {} if none."""
    pos, end = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end:
        fourcc, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if fourcc == b"EXIF":
            if size > _WEBP_EXIF_MAX:
                return {}
            return _exif_texts(data[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    return {}


def _exif_texts(exif: bytes) -> dict[str, str]:
    """{key: text} of EXIF string values that read ``key:text`` (ComfyUI's Make/Model use)."""
    from PIL import Image

    texts: dict[str, str] = {}
    try:
        parsed = Image.Exif()
        parsed.load(exif if exif.startswith(b"Exif\0\0") else b"Exif\0\0" + exif)
        values = list(parsed.values())
    except Exception:  # Pillow raises many types for a damaged EXIF block
        return texts
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str):
            key, sep, text = value.partition(":")
            if sep and key in ("prompt", "workflow") and key not in texts:
                texts[key] = text
    return texts


def read_texts(data: bytes) -> dict[str, str]:
    """ComfyUI's text entries (``prompt``, ``workflow``, ...) of a PNG, APNG, WebP, MP4 or WebM file; {} if none."""
    if data[:8] == _PNG_SIGNATURE:
        return read_png_text(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_exif_texts(data)
    from . import media  # NOTE: PyAV is loaded only for videos

    if media.sniff_video(data) is not None:
        return {key.lower(): value for key, value in media.video_metadata(data).items()}
    return {}


def workflow_json(data: bytes) -> bytes | None:
    """Return the file's ``workflow`` (the UI graph) as UTF-8 JSON bytes, or None if absent or not a JSON object."""
    text = read_texts(data).get("workflow")
    if text is None or _json_object(text) is None:
        return None
    return text.encode("utf-8")


def prompt_json(data: bytes) -> bytes | None:
    """Return the file's ``prompt`` (the API-format graph) as UTF-8 JSON bytes, or None."""
    text = read_texts(data).get("prompt")
    if text is None or _json_object(text) is None:
        return None
    return text.encode("utf-8")


# --------------------------------------------------------------------------
# The prompt graph


class _Node(NamedTuple):
    id: str
    class_type: str
    inputs: dict[str, Any]


_Link = tuple[str, int]
_Graph = dict[str, _Node]


def _parse_graph(prompt: dict[str, Any]) -> _Graph:
    """Keep the well-formed part of an API-format graph."""
    graph: _Graph = {}
    for node_id, node in prompt.items():
        if not isinstance(node, dict):
            continue
        class_type = node.get("class_type")
        inputs = node.get("inputs")
        graph[node_id] = _Node(
            node_id,
            class_type if isinstance(class_type, str) else "",
            inputs if isinstance(inputs, dict) else {},
        )
    return graph


def _as_link(value: Any) -> _Link | None:
    """Return (node_id, output_index) if value has the shape of a link."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    node_id, output = value
    if isinstance(node_id, bool) or not isinstance(node_id, (str, int)):
        return None
    if isinstance(output, bool) or not isinstance(output, int) or output < 0:
        return None
    return str(node_id), output


def _links(node: _Node, names: Iterable[str] | None = None) -> list[_Link]:
    """Links among the node's inputs, all of them or those named."""
    if names is None:
        values = list(node.inputs.values())
    else:
        values = [node.inputs.get(name) for name in names]
    return [link for link in map(_as_link, values) if link is not None]


def _linked_node(graph: _Graph, value: Any) -> _Node | None:
    """The node a link points to, or None."""
    link = _as_link(value)
    return None if link is None else graph.get(link[0])


def _walk(
    graph: _Graph,
    start: Iterable[_Link],
    expand: Callable[[_Node, int], list[_Link]],
) -> Iterator[tuple[_Node, int]]:
    """Breadth-first walk upstream, yielding (node, output index it was reached by)."""
    queue = deque(start)
    seen: set[_Link] = set()
    steps = 0
    while queue and steps < _MAX_WALK_STEPS:
        link = queue.popleft()
        if link in seen:
            continue
        seen.add(link)
        node = graph.get(link[0])
        if node is None:
            continue
        steps += 1
        yield node, link[1]
        queue.extend(expand(node, link[1]))


def _all_links(node: _Node, _output: int) -> list[_Link]:
    return _links(node)


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX:
        return value
    return None


def _as_size(value: Any) -> int | None:
    number = _as_int(value)
    return number if number is not None and 0 < number <= 1 << 20 else None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# Inputs that hold the value of primitive / literal nodes (core PrimitiveInt,
# PrimitiveString, "Seed (rgthree)", "String Literal", "Int Literal", ...).
_VALUE_KEYS = ("value", "seed", "noise_seed", "int", "float", "number", "string", "text")


def _resolve(graph: _Graph, value: Any, accept: Callable[[Any], T | None], name: str) -> T | None:
    """A literal input value, following links into primitive nodes."""
    keys = (name, *_VALUE_KEYS)
    seen: set[str] = set()
    for _ in range(_MAX_VALUE_HOPS):
        link = _as_link(value)
        if link is None:
            return accept(value)
        node = graph.get(link[0])
        if node is None or node.id in seen:
            return None
        seen.add(node.id)
        candidates = [node.inputs[key] for key in keys if key in node.inputs]
        found = next((v for v in candidates if accept(v) is not None), None)
        if found is not None:
            return accept(found)
        value = next((v for v in candidates if _as_link(v) is not None), None)
    return None


def _value(graph: _Graph, node: _Node, names: tuple[str, ...], accept: Callable[[Any], T | None]) -> T | None:
    """The first of the named inputs that resolves to an accepted value."""
    for name in names:
        if name in node.inputs:
            found = _resolve(graph, node.inputs[name], accept, name)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------
# Node kinds


def _is_sampler(node: _Node) -> bool:
    """A node that turns a latent into a denoised latent (KSampler and kin)."""
    # NOTE: "Sampler" alone would also match KSamplerSelect and the
    # SamplerDPMPP_* nodes, which only feed a SAMPLER object to SamplerCustom;
    # a real sampling pass takes a latent.
    return "Sampler" in node.class_type and ("latent_image" in node.inputs or "latent" in node.inputs)


# Nodes that save frames as an animation or a video (ComfyUI core and VideoHelperSuite).
_SAVE_ANIMATION = ("SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveVideo", "SaveWEBM", "VHS_VideoCombine")


def _output_rank(node: _Node) -> int | None:
    """0 for a node that saves images (or animations, videos), 1 for one that previews them, else None."""
    if "SaveImage" in node.class_type or node.class_type in _SAVE_ANIMATION:
        return 0
    if "PreviewImage" in node.class_type:
        return 1
    return None


def _adds_noise(graph: _Graph, sampler: _Node) -> bool:
    """False for a pass that continues a latent without adding noise (refiner)."""
    if "add_noise" in sampler.inputs:
        flag = _resolve(graph, sampler.inputs["add_noise"], _as_flag, "add_noise")
        if flag is False:
            return False
    noise = _linked_node(graph, sampler.inputs.get("noise"))
    return not (noise is not None and noise.class_type == "DisableNoise")


def _as_flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() not in ("disable", "disabled", "false", "off")
    return None


_TEXT_ENCODER_KEYS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeFlux": ("t5xxl", "clip_l"),
    "CLIPTextEncodeSD3": ("t5xxl", "clip_g", "clip_l"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
}
_GENERIC_TEXT_KEYS = ("text", "text_g", "text_l", "t5xxl", "clip_l", "prompt")


def _text_keys(node: _Node) -> tuple[str, ...] | None:
    """The inputs holding prompt text if the node is a text encoder, else None."""
    known = _TEXT_ENCODER_KEYS.get(node.class_type)
    if known is not None:
        return known
    if "TextEncode" in node.class_type or "clip" in node.inputs:
        present = tuple(key for key in _GENERIC_TEXT_KEYS if key in node.inputs)
        return present or None
    return None


# --------------------------------------------------------------------------
# Walks from one sampler


# A guider's or sampler's inputs on each side. DualCFGGuider's cond2 is the
# middle term of its two CFG scales (in InstructPix2Pix and Omnigen2 graphs the
# negative text with the image): it is on neither side.
_POSITIVE_INPUTS = ("positive", "conditioning", "cond1")
_NEGATIVE_INPUTS = ("negative",)
_OTHER_SIDE = {"positive": "negative", "negative": "positive"}


def _conditioning_inputs(side: str) -> Callable[[_Node, int], list[_Link]]:
    """Where conditioning entering a node came from, on one side ("positive" or "negative")."""
    other = _OTHER_SIDE[side]

    def expand(node: _Node, output: int) -> list[_Link]:
        # NOTE: ConditioningZeroOut makes an empty conditioning (the usual Flux
        # and SD3 negative); the text upstream of it was not used as a prompt.
        if _text_keys(node) is not None or node.class_type == "ConditioningZeroOut" or _is_sampler(node):
            return []
        if "positive" in node.inputs and "negative" in node.inputs:
            # NOTE: ControlNetApplyAdvanced, InstructPixToPixConditioning,
            # WanImageToVideo and kin take positive and negative and return
            # them as outputs 0 and 1 (a latent after them is not conditioning).
            if output == 0:
                return _links(node, ("positive",))
            if output == 1:
                return _links(node, ("negative",))
            return []
        # NOTE: a walk never crosses into an input of the other side (a
        # positive path never follows an input named "negative"), nor into
        # a guider's cond2.
        names = [name for name in node.inputs if other not in name.lower() and name != "cond2"]
        named = [name for name in names if "cond" in name.lower()]
        return _links(node, named or names)

    return expand


def _conditioning(graph: _Graph, start: list[_Link], side: str) -> tuple[str | None, float | None]:
    """The prompt text feeding one side's conditioning input, and any Flux guidance on the way."""
    texts: list[str] = []
    guidance: float | None = None
    for node, _ in _walk(graph, start, _conditioning_inputs(side)):
        if guidance is None and "guidance" in node.inputs:
            guidance = _value(graph, node, ("guidance",), _as_float)
        keys = _text_keys(node)
        if keys is None:
            continue
        for key in keys:
            text = _resolve(graph, node.inputs.get(key), _as_str, key)
            # NOTE: prompts are stripped of surrounding whitespace; texts met
            # twice (text_g == text_l, a combine of one encoder) are kept once.
            if text is not None and text.strip() and text.strip() not in texts:
                texts.append(text.strip())
    return ("\n".join(texts) or None), guidance


def _model_inputs(node: _Node, _output: int) -> list[_Link]:
    """Where the model entering this node came from."""
    if _is_sampler(node) or "ckpt_name" in node.inputs or "unet_name" in node.inputs:
        return []
    named = [name for name in node.inputs if "model" in name.lower()]
    return _links(node, named) if named else _links(node)


def _loras(graph: _Graph, node: _Node) -> list[Lora]:
    """LoRAs a loader node applies (LoraLoader, LoraLoaderModelOnly, rgthree stacks)."""
    found: list[Lora] = []
    name = _value(graph, node, ("lora_name",), _as_str)
    if name is not None and name != "None":
        found.append(
            Lora(
                name,
                _value(graph, node, ("strength_model",), _as_float),
                _value(graph, node, ("strength_clip",), _as_float),
            )
        )
    for value in node.inputs.values():
        # rgthree's Power Lora Loader: {"on": true, "lora": ..., "strength": ...}
        if isinstance(value, dict) and isinstance(value.get("lora"), str) and value.get("on") is True:
            strength = _as_float(value.get("strength"))
            strength_clip = _as_float(value.get("strengthTwo"))
            found.append(Lora(value["lora"], strength, strength if strength_clip is None else strength_clip))
    return found


def _model(graph: _Graph, start: list[_Link]) -> tuple[str | None, list[Lora]]:
    """The checkpoint or UNET feeding a model input, and the LoRAs applied on the way."""
    loras: list[Lora] = []
    for node, _ in _walk(graph, start, _model_inputs):
        loras.extend(_loras(graph, node))
        name = _value(graph, node, ("ckpt_name", "unet_name"), _as_str)
        if name is not None:
            # Walked upstream, so reversed to the order they are applied in.
            return name, loras[::-1]
    return None, loras[::-1]


_LATENT_INPUTS = ("samples", "latent", "latent_image", "pixels", "image", "images")


def _latent_inputs(node: _Node, _output: int) -> list[_Link]:
    """Where the latent (or the image encoded into it) entering this node came from."""
    if _is_sampler(node):
        return _links(node, ("latent_image", "latent"))
    preferred = _links(node, _LATENT_INPUTS)
    return preferred or _links(node)


def _latent(graph: _Graph, sampler: _Node) -> tuple[int | None, int | None, list[_Node]]:
    """Latent size upstream of a sampler, and the samplers met on the latent path."""
    width = height = None
    upstream: list[_Node] = []
    for node, _ in _walk(graph, _links(sampler, ("latent_image", "latent")), _latent_inputs):
        if _is_sampler(node):
            upstream.append(node)
        elif width is None:
            # NOTE: the first node on the latent path with a width and height
            # wins: EmptyLatentImage and kin, or a LatentUpscale after them
            # (the size the image was decoded at). An img2img latent from a
            # VAEEncode of a LoadImage has no size in the graph: None.
            w = _value(graph, node, ("width",), _as_size)
            h = _value(graph, node, ("height",), _as_size)
            if w is not None and h is not None:
                width, height = w, h
    return width, height, upstream


def _sigmas_source(graph: _Graph, value: Any) -> _Node | None:
    """The scheduler node (BasicScheduler, KarrasScheduler, ...) behind a sigmas input."""
    link = _as_link(value)
    if link is None:
        return None
    for node, _ in _walk(graph, [link], lambda n, _o: _links(n, ("sigmas",))):
        if "steps" in node.inputs or "scheduler" in node.inputs:
            return node
    return None


def _read_pass(graph: _Graph, sampler: _Node) -> dict[str, Any]:
    """Everything one sampling pass says: seed, texts, settings, model."""
    inputs = sampler.inputs
    seed = _value(graph, sampler, ("seed", "noise_seed"), _as_int)
    noise = _linked_node(graph, inputs.get("noise"))
    if seed is None and noise is not None:
        seed = _value(graph, noise, ("noise_seed", "seed"), _as_int)

    steps = _value(graph, sampler, ("steps",), _as_int)
    cfg = _value(graph, sampler, ("cfg",), _as_float)
    sampler_name = _value(graph, sampler, ("sampler_name",), _as_str)
    scheduler = _value(graph, sampler, ("scheduler",), _as_str)
    denoise = _value(graph, sampler, ("denoise",), _as_float)

    select = _linked_node(graph, inputs.get("sampler"))
    if sampler_name is None and select is not None:
        # NOTE: nodes like SamplerDPMPP_2M_SDE are the sampler themselves and
        # have no sampler_name; their class_type names it.
        sampler_name = _value(graph, select, ("sampler_name",), _as_str) or select.class_type or None

    sigmas = _sigmas_source(graph, inputs.get("sigmas"))
    if sigmas is not None:
        steps = steps if steps is not None else _value(graph, sigmas, ("steps",), _as_int)
        denoise = denoise if denoise is not None else _value(graph, sigmas, ("denoise",), _as_float)
        if scheduler is None:
            # NOTE: KarrasScheduler, AlignYourStepsScheduler and kin have no
            # scheduler input; their class_type names the schedule.
            scheduler = _value(graph, sigmas, ("scheduler",), _as_str) or sigmas.class_type or None

    positive = _links(sampler, ("positive",))
    negative = _links(sampler, ("negative",))
    model = _links(sampler, ("model",))
    guider = _linked_node(graph, inputs.get("guider"))
    if guider is not None:
        # BasicGuider (model, conditioning), CFGGuider (model, positive,
        # negative, cfg), DualCFGGuider (cond1, cond2, negative, ...).
        cfg = cfg if cfg is not None else _value(graph, guider, ("cfg", "cfg_conds"), _as_float)
        positive = positive or _links(guider, _POSITIVE_INPUTS)
        negative = negative or _links(guider, _NEGATIVE_INPUTS)
        model = model or _links(guider, ("model",))
    if not model and sigmas is not None:
        model = _links(sigmas, ("model",))

    prompt, guidance = _conditioning(graph, positive, "positive")
    negative_prompt, _ = _conditioning(graph, negative, "negative")
    model_name, loras = _model(graph, model)
    return {
        "seed": seed,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "steps": steps,
        "cfg": cfg,
        "sampler": sampler_name,
        "scheduler": scheduler,
        "denoise": denoise,
        "model": model_name,
        "loras": loras,
        "guidance": guidance,
        "sampler_node": sampler.class_type or None,
    }


# --------------------------------------------------------------------------
# Choosing the sampler


def _links_unless_sampler(node: _Node, _output: int) -> list[_Link]:
    return [] if _is_sampler(node) else _links(node)


def _nearest_sampler(graph: _Graph, output: _Node) -> _Node | None:
    """The first sampler met walking upstream from an output node."""
    for node, _ in _walk(graph, _links(output), _links_unless_sampler):
        if _is_sampler(node):
            return node
    return None


def _upstream_ids(graph: _Graph, node: _Node) -> set[str]:
    """Ids of every node upstream of this one."""
    return {upstream.id for upstream, _ in _walk(graph, _links(node), _all_links)}


def _final_sampler(graph: _Graph) -> _Node | None:
    """The sampler whose latent became the saved image."""
    candidates: list[_Node] = []
    # NOTE: SaveImage nodes are asked first, PreviewImage only if no SaveImage
    # leads to a sampler; without either, every sampler is a candidate.
    for rank in (0, 1):
        for node in graph.values():
            if _output_rank(node) == rank:
                found = _nearest_sampler(graph, node)
                if found is not None and all(found.id != seen.id for seen in candidates):
                    candidates.append(found)
        if candidates:
            break
    if not candidates:
        candidates = [node for node in graph.values() if _is_sampler(node)]
    candidates = candidates[:_MAX_SAMPLER_CANDIDATES]
    if not candidates:
        return None
    upstream = {node.id: _upstream_ids(graph, node) for node in candidates}
    # NOTE: a candidate upstream of another (the base pass of a hires fix or a
    # refiner saved twice) is not the final image. Independent branches left
    # after that cannot be told apart; the first in graph order is taken.
    downstream = [
        node
        for node in candidates
        if not any(node.id in upstream[other.id] for other in candidates if other is not node)
    ]
    return (downstream or candidates)[0]


def extract(data: bytes) -> ComfyMeta | None:
    """Read generation metadata from a file written by ComfyUI (PNG, APNG, WebP, MP4, WebM).

    Returns None when the file has no ``prompt`` holding a JSON object
    (not from ComfyUI, or written with ``--disable-metadata``).
    Fields the graph does not reveal are None. Never raises on bad input.
    """
    texts = read_texts(data)
    prompt = _json_object(texts.get("prompt"))
    if prompt is None:
        return None
    has_workflow = _json_object(texts.get("workflow")) is not None
    graph = _parse_graph(prompt)
    final = _final_sampler(graph)
    if final is None:
        return ComfyMeta(has_workflow=has_workflow)
    width, height, upstream = _latent(graph, final)
    # NOTE: with several passes (SDXL base + refiner), the pass that added the
    # noise made the image; seed, prompts, settings and model come from it.
    primary = final
    if not _adds_noise(graph, final):
        primary = next((node for node in upstream if _adds_noise(graph, node)), final)
    return ComfyMeta(**_read_pass(graph, primary), width=width, height=height, has_workflow=has_workflow)


def summarize(meta: ComfyMeta) -> dict[str, Any]:
    """Return a bounded dict of meta for a record's ``source`` field, tagged ``"tool": "comfyui"``."""
    summary: dict[str, Any] = {"tool": "comfyui"}
    for name, value in msgspec.to_builtins(meta).items():
        if name == "loras":
            summary["loras"] = [_summarize_lora(lora) for lora in value[:_SUMMARY_MAX_LORAS]]
            if len(value) > _SUMMARY_MAX_LORAS:
                summary["loras_omitted"] = len(value) - _SUMMARY_MAX_LORAS
        elif isinstance(value, str):
            limit = _SUMMARY_TEXT_CHARS if name in ("prompt", "negative_prompt") else _SUMMARY_NAME_CHARS
            summary[name] = value[:limit]
        else:
            summary[name] = value
    return summary


def _summarize_lora(lora: dict[str, Any]) -> dict[str, Any]:
    return {key: value[:_SUMMARY_NAME_CHARS] if isinstance(value, str) else value for key, value in lora.items()}
