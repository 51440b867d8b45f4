"""Bounded decoding: the per-process pixel budget, PNG in strips, reduced decodes, and the memory they take."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from casvault import decoding, thumbs
from casvault.errors import Busy, NotAnImage
from casvault.validate import check_image
from tests.api_helpers import error_code
from tests.conftest import ROOT, make_jpeg, make_png

LIMITS = dict(max_bytes=100_000_000, max_pixels=64_000_000)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def solid_rgba_png(side: int) -> bytes:
    """A side×side RGBA PNG of one colour, built row by row (never held decoded): the issue's 250 KB upload."""
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x28\x5a\xc8\xff" * side
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    idat = b"".join(_chunk(b"IDAT", body[i:i + 65536]) for i in range(0, len(body), 65536))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def noise(mode: str, size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Random pixels in ``mode`` (every filter type shows up when saved as PNG)."""
    import random

    rnd = random.Random(seed)
    img = Image.frombytes("RGBA", size, bytes(rnd.randrange(256) for _ in range(size[0] * size[1] * 4)))
    if mode == "P":
        return img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    return img.convert(mode)


def png(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA", "P", "P_transparent"])
def test_png_in_strips_equals_a_full_decode(mode, monkeypatch):
    """Strip by strip (many strips here) gives the very pixels a full load and reduce gives."""
    monkeypatch.setattr(decoding, "STRIP_BYTES", 20_000)
    monkeypatch.setattr(decoding, "STRIP_FROM_PIXELS", 0)
    img = noise(mode.split("_")[0], (601, 433))
    data = png(img, transparency=3) if mode == "P_transparent" else png(img)
    reduced = check_image(data, **LIMITS, keep=True, fit=64).image
    full = Image.open(io.BytesIO(data))
    full.load()
    factor = decoding.reduce_factor(601, 433, 64)
    expected = full.convert("RGBA" if mode in ("RGBA", "LA", "P_transparent") else "RGB").reduce(factor)
    assert reduced.size == expected.size == (67, 49)
    assert reduced.mode == expected.mode and reduced.tobytes() == expected.tobytes()


def test_damaged_png_streams_are_refused_in_strips(monkeypatch):
    monkeypatch.setattr(decoding, "STRIP_FROM_PIXELS", 0)

    def raw_png(w: int, h: int, rows: bytes) -> bytes:
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")

    row = b"\x00" + b"\x10" * 40
    assert check_image(raw_png(10, 10, row * 10), **LIMITS, keep=True, fit=4).image.size == (5, 5)
    for bad in (row * 9, b"\x07" + row[1:] + row * 9, (row * 10)[:-1]):
        with pytest.raises(NotAnImage):
            check_image(raw_png(10, 10, bad), **LIMITS, keep=True, fit=4)


def test_thumbnails_from_bytes_and_jpeg_decode_reduced():
    data = make_jpeg(2000, 1000)
    img = decoding.decode_reduced(data, "JPEG", 256)
    assert img.size[0] < 2000 and img.size[0] >= 256  # draft: decoded at 1/4 scale, still covers 256
    thumb = Image.open(io.BytesIO(thumbs.make_thumbnail(make_png(1200, 300, seed=3), 256)))
    assert thumb.size == (256, 64)
    with pytest.raises(NotAnImage):
        thumbs.make_thumbnail(b"GIF89a....", 64)


def test_budget_makes_decodes_wait_and_then_answers_busy():
    budget = decoding.PixelBudget(100)
    order: list[str] = []
    with budget.hold(70):
        def second() -> None:
            with budget.hold(50, wait=5):
                order.append("second ran")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        assert order == [] and budget.used == 70  # waits while 70 + 50 > 100
        with pytest.raises(Busy) as caught:
            with budget.hold(40, wait=0.05):
                pass
        assert caught.value.details["retry_after"] == decoding.RETRY_AFTER
    t.join(5)
    assert order == ["second ran"] and budget.used == 0
    with budget.hold(10_000):  # bigger than the whole budget: runs alone
        assert budget.used == 100


def test_upload_answers_503_busy_with_retry_after_when_the_budget_is_full(client, monkeypatch):
    monkeypatch.setattr(decoding, "DECODE_WAIT", 0.05)
    budget = decoding.budget()
    with budget.hold(budget.capacity):
        resp = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_jpeg(seed=2)), "a.jpg")})
    assert resp.status_code == 503 and error_code(resp) == "busy"
    assert resp.headers["Retry-After"] == str(decoding.RETRY_AFTER)
    resp = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_jpeg(seed=2)), "a.jpg")})
    assert resp.status_code == 201


def test_the_8000px_rgba_png_upload_holds_no_full_size_copy(tmp_path: Path):
    """The issue's case: validate and thumbnail an 8000×8000 RGBA PNG (~250 KB): it took ~500 MB, one full copy is 256 MB."""
    path = tmp_path / "big.png"
    path.write_bytes(solid_rgba_png(8000))
    assert path.stat().st_size < 400_000
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from casvault import thumbs\n"
        "from casvault.validate import check_image\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "info = check_image(data, max_bytes=10**8, max_pixels=64_000_000, keep=True, fit=256)\n"
        "thumb = thumbs.make_thumbnail(info.image, 256)\n"
        "assert info.width == info.height == 8000 and len(thumb) > 0\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.strip()) / 1024
    assert peak_mb < 128, f"peak RSS {peak_mb:.0f} MB"
