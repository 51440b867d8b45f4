"""The gallery in Chromium: time to the first row of thumbnails.

- ``gallery.first_tiles_ms_100k_vs_1k``: from navigation start to the first
  row of tiles with their thumbnails decoded and a frame painted after them,
  for the 100,000-image user ÷ the 1,000-image user of the listing store;
  gunicorn (the shipped config, 2 workers), Debian's Chromium through
  Playwright with the flags of ``tests/e2e/conftest.py``, a fresh browser
  context (empty cache) per navigation, the two users alternated; the first
  navigations meet cold workers (the listing snapshot answers them).
- ``gallery.first_tiles_ms_slow_phone``: the same for the 100,000-image
  user with the CPU slowed 4× and the network at 150 ms RTT and 1.6 Mbit/s
  (CDP ``Emulation.setCPUThrottlingRate``, ``Network.emulateNetworkConditions``);
  a figure, no goal.
"""

from __future__ import annotations

import os

from casvault import identity

from common import interleave, median
from stores import BIG_USER, SMALL_USER, listing_store

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]
ROUNDS = 5

# Resolves with performance.now() once the first row of tiles shows decoded thumbnails and a frame followed.
_FIRST_ROW = """() => new Promise((resolve) => {
  const check = () => {
    const tiles = [...document.querySelectorAll('[data-testid=gallery-item]')];
    if (tiles.length) {
      const top = Math.min(...tiles.map(t => t.getBoundingClientRect().top));
      const row = tiles.filter(t => Math.abs(t.getBoundingClientRect().top - top) < 2);
      const imgs = row.map(t => t.querySelector('img')).filter(Boolean);
      if (imgs.length === row.length && imgs.every(i => i.complete && i.naturalWidth > 0)) {
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now())));
        return;
      }
    }
    requestAnimationFrame(check);
  };
  check();
})"""


def first_tiles_ms(browser, base: str, owner: str, slow: bool = False) -> float:
    """Milliseconds from navigation start to the first painted row of thumbnails, fresh context."""
    from tests.conftest import SECRET

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.add_cookies([{"name": identity.COOKIE_NAME, "value": identity.issue(SECRET, owner)[1],
                              "url": base}])
        page = context.new_page()
        if slow:
            cdp = context.new_cdp_session(page)
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": 150, "downloadThroughput": 1.6e6 / 8, "uploadThroughput": 750e3 / 8,
            })
        page.goto(base + "/", wait_until="commit")
        return float(page.evaluate(_FIRST_ROW))
    finally:
        context.close()


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['gallery']``."""
    section = results.setdefault("gallery", {})
    if not os.path.exists(CHROMIUM):
        section["missing"] = f"{CHROMIUM} is not installed"
        return
    from playwright.sync_api import sync_playwright

    from tests.servers import Gunicorn

    root = listing_store()
    server = Gunicorn(root, workers=2)
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                rounds = 2 if quick else ROUNDS
                small, big = interleave(
                    lambda: first_tiles_ms(browser, server.url, SMALL_USER),
                    lambda: first_tiles_ms(browser, server.url, BIG_USER),
                    rounds,
                )
                slow = [first_tiles_ms(browser, server.url, BIG_USER, slow=True) for _ in range(1 if quick else 3)]
            finally:
                browser.close()
    finally:
        server.stop()
    section.update(
        first_tiles_ms_100k_vs_1k=round(median(big) / median(small), 3),
        first_tiles_ms_100k=round(median(big), 1),
        first_tiles_ms_1k=round(median(small), 1),
        first_tiles_ms_100k_first_visit=round(big[0], 1),
        first_tiles_ms_slow_phone=round(median(slow), 1),
    )
