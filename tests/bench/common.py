"""Shared parts of the benchmarks: timing, the image sets and the cached stores.

Every figure is a ratio against a baseline measured in the same run; runs of
the baseline and the candidate are interleaved and reduced to medians, so a
neighbour's load hits both sides alike.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("CASVAULT_CORPUS") or REPO / "tests" / "data" / "comfyui")
CACHE = Path(os.environ.get("CASVAULT_BENCH_CACHE", "/tmp/casvault-bench-cache"))
CACHE_VERSION = "1"


def cache_dir(name: str) -> Path:
    """A folder under the bench cache, versioned so a format change starts afresh."""
    path = CACHE / f"v{CACHE_VERSION}" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def scratch(name: str) -> Path:
    """A fresh, empty work folder under the cache (for stores made per run)."""
    path = CACHE / "scratch" / f"{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def clean_scratch() -> None:
    """Remove every per-run work folder."""
    shutil.rmtree(CACHE / "scratch", ignore_errors=True)


def median(values: list[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(
    baseline: Callable[[], float], candidate: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """Run baseline and candidate alternately ``rounds`` times each; their returned figures."""
    base, cand = [], []
    for i in range(rounds):
        # NOTE: alternate which goes first so neither always meets a warm
        # page cache or a freshly flushed journal.
        if i % 2:
            cand.append(candidate())
            base.append(baseline())
        else:
            base.append(baseline())
            cand.append(candidate())
    return base, cand


# --- images -----------------------------------------------------------------


def corpus_1024() -> list[Path]:
    """The corpus' 1024×1024 PNGs (real ComfyUI output with its metadata)."""
    found = []
    for path in sorted(CORPUS.glob("*.png")):
        with Image.open(path) as img:
            if img.size == (1024, 1024):
                found.append(path)
    return found


def _synthetic(seed: int) -> Image.Image:
    """Photographic-like content: smooth gradients, soft shapes and fine noise."""
    rnd = random.Random(seed)
    small = Image.new("RGB", (16, 16))
    small.putdata([(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(256)])
    img = small.resize((1024, 1024), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((1024, 1024), 10).convert("RGB")
    return Image.blend(img, noise, 0.12)


def _variant(base: Image.Image, info: dict[str, str], seed: int) -> bytes:
    """``base`` with a few random strokes and a noise patch: new pixels, new bytes."""
    rnd = random.Random(seed)
    img = base.copy()
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        xy = [rnd.randrange(1024) for _ in range(4)]
        draw.line(xy, fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)), width=rnd.randrange(1, 6))
    patch = Image.effect_noise((48, 48), 40).convert("RGB")
    img.paste(patch, (rnd.randrange(976), rnd.randrange(976)))
    pnginfo = PngInfo()
    for key, value in info.items():
        if isinstance(value, str):
            pnginfo.add_text(key, value)
    pnginfo.add_text("casvault-bench-variant", str(seed))
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=pnginfo)
    return buf.getvalue()


def realistic_pngs(count: int) -> list[Path]:
    """``count`` distinct 1024×1024 PNGs of about 1 MB (cached between runs).

    Corpus images re-drawn with variations (their ComfyUI metadata kept), and
    when there are none, synthetic photographic-like ones.
    """
    folder = cache_dir("pngs-1024")
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        bases: list[tuple[Image.Image, dict[str, str]]] = []
        for path in corpus_1024():
            with Image.open(path) as img:
                bases.append((img.convert("RGB"), dict(img.info)))
        bases.append((_synthetic(1), {}))
        for path in missing:
            i = int(path.stem)
            base, info = bases[i % len(bases)]
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(_variant(base, info, i))
            tmp.replace(path)
    return paths


def tiny_png(seed: int) -> bytes:
    """An 8×8 PNG whose bytes differ per seed (for big stores where pixels do not matter)."""
    img = Image.new("RGB", (8, 8), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def user(n: int) -> str:
    """A deterministic guest id."""
    return "anon-" + f"{n:032x}"


WORDS = (
    "cat dog castle forest neon city portrait sunset ocean mountain robot dragon "
    "flower garden street rain snow desert astronaut knight cyberpunk watercolor "
    "oil painting studio light cinematic macro bokeh vintage anime photo"
).split()
ASPECTS = ("1:1", "3:4", "4:3", "16:9", "9:16")
TAGS = ("favorite-set", "wip", "client", "portfolio", "draft", "print")
MODELS = ("flux1-dev.safetensors", "sd_xl_base_1.0.safetensors", "dreamshaper_8.safetensors",
          "juggernautXL_v9.safetensors", "realisticVision_v51.safetensors", "animagineXL_v3.safetensors")
SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde")
LORAS = tuple(f"{name}.safetensors" for name in (
    "add_detail", "film_grain", "pixel_art", "watercolor_v2", "lowra", "epi_noiseoffset", "more_details",
    "ghibli_style", "cyberpunk_neon", "hands_fix"))


def spread_times(count: int, days: int = 365, end: datetime | None = None) -> list[str]:
    """``count`` creation times spread over ``days`` days, oldest first."""
    end = end or datetime(2026, 11, 27, tzinfo=timezone.utc)
    start = end - timedelta(days=days)
    step = (end - start) / max(count, 1)
    return [(start + step * i).isoformat(timespec="milliseconds") for i in range(count)]
