"""Big stores for the listing benchmarks, built once and cached.

Records go through the library (record types, ``write_file``, projections,
``Manifest.append``, ``Store.trash``) with tiny images, because a listing
never looks at pixels. ``fsync`` is off for this SET-UP only; no measured
write runs without it.
"""

from __future__ import annotations

import io
import random
import shutil
import uuid
from pathlib import Path

from PIL import Image

from casvault.atomic import write_file
from casvault.blobs import blake3_digest, digest
from casvault.config import Config
from casvault.records import AddEvent, GeneratedRecord, MetaEvent, encode_record, now_iso
from casvault.store import Store
from casvault.thumbs import THUMB_EXT, make_thumbnail

from common import ASPECTS, LORAS, MODELS, SAMPLERS, TAGS, WORDS, cache_dir, realistic_pngs, spread_times, tiny_png, user

BIG = 100_000
SMALL = 1_000
BIG_USER = user(100_000)
SMALL_USER = user(1_000)
DISTINCT_BLOBS = 500
BATCH = 2_000
SCRUB_USER = user(12)
SCRUB_SMALL = 240  # realistic 1024×1024 PNGs, ~1.2 MB
SCRUB_LARGE = 200  # 2048×2048 stand-ins for upscaled outputs, ~12.6 MB


def listing_config(root: Path) -> Config:
    """The configuration the listing store is built and read with."""
    return Config(root=root, secret_key="bench-secret-0123456789abcdef-0123456789", fsync=False, thumb_size=64)


def _source(rnd: random.Random) -> dict:
    """What a ComfyUI record's ``source`` says about model, sampler and LoRAs (the facets' fields)."""
    loras = rnd.sample(LORAS, rnd.choice((0, 0, 1, 2)))
    source: dict = {"tool": "comfyui", "model": rnd.choice(MODELS), "sampler": rnd.choice(SAMPLERS)}
    if loras:
        source["loras"] = [{"name": name, "strength_model": 0.8} for name in loras]
    return source


def _fill(store: Store, owner: str, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    blobs = []
    for i in range(DISTINCT_BLOBS):
        data = tiny_png(seed * 10_000 + i)
        sha = digest(data)
        store.blobs.put(data, sha)
        blobs.append((sha, blake3_digest(data), len(data), make_thumbnail(data, 64)))
    manifest = store.manifest(owner)
    tmp = store.layout.tmp
    events = []
    for i, created in enumerate(spread_times(count)):
        sha, b3, size, thumb = blobs[i % DISTINCT_BLOBS]
        rid = uuid.uuid4().hex
        record = GeneratedRecord(
            id=rid,
            owner=owner,
            workflow_id=f"wf-{rnd.randrange(8)}",
            aspect_ratio=ASPECTS[rnd.randrange(len(ASPECTS))],
            seed=rnd.randrange(2**32),
            prompt=" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(6, 16))),
            original_filename=f"ComfyUI_{i:05d}_.png",
            mime="image/png",
            bytes=size,
            sha256=sha,
            created_at=created,
            status="active",
            thumb=f"thumb/{rid}.{THUMB_EXT}",
            tags=[TAGS[rnd.randrange(len(TAGS))]] if rnd.random() < 0.1 else [],
            source=_source(rnd),
            width=8,
            height=8,
            blake3=b3,
        )
        image, sidecar, thumb_path = store.layout.paths(record)
        thumb_path.parent.mkdir(parents=True, exist_ok=True)
        write_file(sidecar, encode_record(record), tmp, fsync=False)
        store.project(record, image)
        write_file(thumb_path, thumb, tmp, fsync=False)
        events.append(AddEvent(at=now_iso(), record=record))
        if rnd.random() < 0.01:
            events.append(MetaEvent(at=now_iso(), id=rid, favorite=True))
        if len(events) >= BATCH:
            manifest.append(*events)
            events = []
    if events:
        manifest.append(*events)
    ids = sorted(store.index(owner).records)
    for rid in rnd.sample(ids, count // 100):
        store.trash(owner, rid)


def listing_store() -> Path:
    """Root of a store with a 100,000-image user and a 1,000-image user (cached)."""
    root = cache_dir("store-list-2") / "root"  # 2: records carry a ComfyUI source (model, sampler, LoRAs)
    done = root.parent / "complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    store = Store(listing_config(root))
    _fill(store, SMALL_USER, SMALL, seed=1)
    _fill(store, BIG_USER, BIG, seed=2)
    done.write_text("ok\n")
    return root


def large_png(seed: int, side: int = 2048) -> bytes:
    """A ``side``×``side`` PNG of noise, stored uncompressed (~3 bytes a pixel).

    A scrub reads bytes and never pixels: this stands in for an upscaled
    output at a fraction of the cost of encoding real content.
    """
    pixels = random.Random(seed).randbytes(side * side * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def scrub_store() -> Path:
    """Root of a store with ~2.8 GB of blobs for the scrub benchmark (cached).

    240 realistic 1024×1024 PNGs and 200 large ones. A real history holds
    far more (100,000 images are ~120 GB); at ~0.2 s the command's fixed
    costs (start-up, the structural checks) would still be a third of a
    blake3 scrub of 1.5 GB on 2 cores, so the store is sized for them to
    stop dominating.
    """
    root = cache_dir("store-scrub") / "root"
    done = root.parent / f"complete-{SCRUB_SMALL}-{SCRUB_LARGE}"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    store = Store(Config(root=root, fsync=False))
    for path in realistic_pngs(SCRUB_SMALL):
        store.ingest(path.read_bytes(), SCRUB_USER, prompt="bench scrub", make_thumb=False)
    for i in range(SCRUB_LARGE):
        store.ingest(large_png(i), SCRUB_USER, prompt="bench scrub, upscaled", make_thumb=False)
    done.write_text("ok\n")
    return root
