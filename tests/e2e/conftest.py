"""Fixtures for the browser tests: a filled store, a real gunicorn, Debian's Chromium.

One server and one browser per test module keep the suite fast; each test
gets a fresh browser context (its own cookies) that already carries the
signed ``anon_id`` of the store's main visitor.
"""

from __future__ import annotations

import io
import os
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image, ImageDraw

from casvault import identity
from casvault.atomic import write_file
from casvault.blobs import blake3_digest, digest
from casvault.config import Config
from casvault.records import AddEvent, GeneratedRecord, encode_record, now_iso
from casvault.store import Store
from tests.conftest import ADMIN_TOKEN, CORPUS, SECRET, make_png, need, user

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VISITOR = user(1)
OTHER = user(2)
SHOTS = Path(os.environ["CASVAULT_E2E_SHOTS"]) if os.environ.get("CASVAULT_E2E_SHOTS") else None
DOCS = Path(__file__).resolve().parents[2] / "docs"

ASPECT_SIZES = {"1:1": (192, 192), "16:9": (256, 144), "2:3": (160, 240)}
CORPUS_SHOWCASE = ("flux_flux_dev_example.png", "sdxl_sdxl_refiner_prompt_example.png")
WORKFLOWS = ("txt2img", "upscale", "inpaint")
TAG_CYCLE = (["portrait"], ["landscape"], [], ["portrait", "night"], [], ["cat"])
SUBJECTS = ("red fox", "lighthouse", "city street", "mountain lake", "old robot", "tea house", "desert road", "koi pond")
STYLES = ("watercolor", "oil painting", "photo", "pixel art", "ink sketch")
START = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)


@dataclass
class Gallery:
    """What the e2e store holds for the visitor, newest first."""

    ids: list[str] = field(default_factory=list)
    records: dict[str, object] = field(default_factory=dict)
    comfy_id: str | None = None
    special_id: str | None = None


def art_png(width: int, height: int, seed: int) -> bytes:
    """A small PNG with a seeded two-colour gradient and a disc (readable in screenshots)."""
    rnd = random.Random(seed)
    top = tuple(rnd.randrange(30, 230) for _ in range(3))
    bottom = tuple(rnd.randrange(30, 230) for _ in range(3))
    mask = Image.linear_gradient("L").rotate(rnd.choice((0, 45, 90, 135)), expand=False).resize((width, height))
    img = Image.composite(Image.new("RGB", (width, height), top), Image.new("RGB", (width, height), bottom), mask)
    draw = ImageDraw.Draw(img)
    r = min(width, height) // rnd.randrange(3, 6)
    cx, cy = rnd.randrange(r, width - r + 1), rnd.randrange(r, height - r + 1)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(255 - c for c in top))
    img.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, 7))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def fast_config(root: Path) -> Config:
    """The set-up configuration: no fsync (set-up only, nothing is measured); 256 px thumbnails for sharp screenshots."""
    return Config(root=root, secret_key=SECRET, admin_token=ADMIN_TOKEN, thumb_size=256, fsync=False)


def fill_gallery(store: Store, count: int = 140) -> Gallery:
    """``count`` generated images for the visitor over 8 days, real ComfyUI PNGs on top, and a second user."""
    gallery = Gallery()
    for i in range(count):
        aspect = ("1:1", "16:9", "2:3")[i % 3]
        w, h = ASPECT_SIZES[aspect]
        created = START - timedelta(hours=1.4 * i)
        prompt = f"{STYLES[i % len(STYLES)]} of a {SUBJECTS[i % len(SUBJECTS)]}, number {i}"
        result = store.ingest(
            art_png(w, h, seed=1000 + i),
            VISITOR,
            original_filename=f"ComfyUI_{i:05d}_.png",
            created_at=created,
            workflow_id=WORKFLOWS[i % len(WORKFLOWS)],
            aspect_ratio=aspect,
            seed=424242 + i,
            prompt=prompt,
            negative_prompt="blurry, low quality" if i % 4 == 0 else None,
            tags=TAG_CYCLE[i % len(TAG_CYCLE)],
        )
        gallery.records[result.record.id] = result.record
    special = store.ingest(
        make_png(60, 40, seed=7),
        VISITOR,
        created_at=START - timedelta(days=20),
        workflow_id="txt2img",
        aspect_ratio="3:2",
        seed=7,
        prompt="a unique zebracorn grazing under aurora",
        tags=["rare"],
    )
    gallery.special_id = special.record.id
    gallery.records[special.record.id] = special.record
    # The newest few are real ComfyUI PNGs (prompt, seed and workflow read from their metadata).
    for n, name in enumerate(CORPUS_SHOWCASE):
        path = CORPUS / name
        if not path.is_file():
            continue
        result = store.ingest(path.read_bytes(), VISITOR, original_filename=name, created_at=START + timedelta(minutes=10 * (n + 1)), tags=["comfyui"])
        gallery.comfy_id = gallery.comfy_id or result.record.id
        gallery.records[result.record.id] = result.record
    for i in range(3):
        store.ingest(make_png(32, 32, seed=5000 + i), OTHER, prompt=f"someone else's image {i}", created_at=START - timedelta(days=i))
    order = sorted(gallery.records.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    gallery.ids = [r.id for r in order]
    return gallery


def fill_many(store: Store, owner: str, count: int) -> list[str]:
    """``count`` records on a few blobs, written through the library's record and manifest code; their ids, newest first.

    Sidecars and projections are written as ingest writes them (no fsync, no
    thumbnails: the tiles show the 16 px originals), several thousand records a second.
    """
    blobs = []
    for i in range(16):
        data = make_png(16, 16, seed=90_000 + i)
        sha = digest(data)
        store.blobs.put(data, sha)
        blobs.append((sha, blake3_digest(data), len(data)))
    rnd = random.Random(3)
    events = []
    ids = []
    for i in range(count):
        sha, b3, size = blobs[i % len(blobs)]
        record = GeneratedRecord(
            id=uuid.uuid4().hex,
            owner=owner,
            workflow_id="txt2img",
            aspect_ratio="1:1",
            seed=rnd.randrange(2**32),
            prompt=f"bulk image {i}",
            original_filename=None,
            mime="image/png",
            bytes=size,
            sha256=sha,
            created_at=(START - timedelta(minutes=37 * i)).isoformat(timespec="milliseconds"),
            status="active",
            thumb=None,
            tags=[],
            width=16,
            height=16,
            blake3=b3,
        )
        events.append(AddEvent(at=now_iso(), record=record))
        ids.append(record.id)

    def write(event: AddEvent) -> None:
        image, sidecar, _ = store.layout.paths(event.record)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        write_file(sidecar, encode_record(event.record), store.layout.tmp, fsync=False)
        store.project(event.record, image)

    # NOTE: the time goes into creating files; threads overlap those system calls.
    with ThreadPoolExecutor(4) as pool:
        for _ in pool.map(write, events, chunksize=256):
            pass
    store.manifest(owner).append(*events)
    return ids


def visitor_cookie(base_url: str, user_id: str = VISITOR) -> dict:
    """The signed identity cookie of ``user_id`` for Playwright's context.add_cookies."""
    _, value = identity.issue(SECRET, user_id)
    return {"name": identity.COOKIE_NAME, "value": value, "url": base_url, "httpOnly": True, "sameSite": "Lax"}


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    need(Path(CHROMIUM).exists(), "chromium (/usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


def watch_console(page, errors: list[str]) -> None:
    """Collect console errors and page errors of ``page`` into ``errors``."""
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))


def new_context(browser, base_url: str, *, user_id: str | None = VISITOR, **options):
    """A fresh context with the visitor's cookie (or none)."""
    ctx = browser.new_context(base_url=base_url, accept_downloads=True, **options)
    if user_id:
        ctx.add_cookies([visitor_cookie(base_url, user_id)])
    return ctx


def shot(page, name: str, *, docs: bool = False) -> Image.Image:
    """Screenshot the page, check it is not blank, and keep it.

    Kept in CASVAULT_E2E_SHOTS (a folder) when set; with ``docs=True`` and
    CASVAULT_UPDATE_DOCS=1 it also becomes ``docs/<name>.png``, reduced to a
    256-colour palette so it stays small in the repository.
    """
    img = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    colours = img.resize((160, 100)).getcolors(16_000)
    assert colours is None or len(colours) > 12, f"screenshot {name} looks blank"
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        img.save(SHOTS / f"{name}.png")
    if docs and os.environ.get("CASVAULT_UPDATE_DOCS") == "1":
        path = DOCS / f"{name}.png"
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
        assert path.stat().st_size < 350_000, f"{path} is {path.stat().st_size} bytes"
    return img


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory) -> Path:
    """A fresh store root for this module."""
    return tmp_path_factory.mktemp("e2e") / "root"


@pytest.fixture(scope="module")
def served(e2e_root: Path) -> Iterator[tuple[str, Store, Gallery]]:
    """(base url, store, gallery): a filled store behind a real gunicorn with 2 workers."""
    from tests.servers import Gunicorn

    store = Store(fast_config(e2e_root))
    gallery = fill_gallery(store)
    srv = Gunicorn(e2e_root, workers=2)
    srv.start()
    try:
        yield srv.url, Store(fast_config(e2e_root)), gallery
    finally:
        srv.stop()


@pytest.fixture
def page(browser, served):
    """A fresh context and page as the visitor; fails the test if the page logged a console error."""
    base_url = served[0]
    ctx = new_context(browser, base_url, viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    errors: list[str] = []
    watch_console(pg, errors)
    yield pg
    ctx.close()
    assert errors == [], f"console errors: {errors}"


def open_gallery(page, path: str = "/") -> None:
    """Load a gallery URL and wait for the first page of tiles (or the empty notice)."""
    page.goto(path)
    page.wait_for_function("() => document.querySelector('#summary').textContent.length > 0")


def tile_ids(page) -> list[str]:
    """The ids of the tiles in the DOM now, in layout order."""
    return page.eval_on_selector_all(
        "[data-testid=gallery-item]",
        "els => els.sort((a, b) => a.dataset.index - b.dataset.index).map(e => e.dataset.id)",
    )


def scroll_to_tile(page, rid: str, limit: int = 80):
    """Scroll down a viewport at a time until the tile of ``rid`` is rendered; returns its locator."""
    tile = page.locator(f'[data-testid=gallery-item][data-id="{rid}"]')
    for _ in range(limit):
        if tile.count():
            tile.scroll_into_view_if_needed()
            return tile
        page.mouse.wheel(0, 700)
        page.wait_for_timeout(60)
    raise AssertionError(f"tile {rid} never appeared")


# --- axe-core ---------------------------------------------------------------------------

# Moderate findings the audit listed, checked besides every serious and critical one.
AXE_LISTED = {"page-has-heading-one", "region", "landmark-unique", "scrollable-region-focusable", "color-contrast"}


def axe_source() -> str:
    """axe-core's script, as the axe-playwright-python package ships it (no network)."""
    try:
        import axe_playwright_python
    except ImportError:
        need(False, "axe-playwright-python (axe-core)")
    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


def axe_violations(page) -> list[str]:
    """Run axe-core on the page; the serious, critical and listed findings as readable lines."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' + (n.failureSummary || '').split('\\n').slice(1, 2).join(''))}));
    }""")
    return [f"{v['impact']} {v['id']}: {v['help']} {v['nodes']}" for v in found
            if v["impact"] in ("serious", "critical") or v["id"] in AXE_LISTED]
