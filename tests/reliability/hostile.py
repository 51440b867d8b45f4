"""Hostile files, generated in code: polyglots, damaged images, decompression bombs, wrong types."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image

from tests.conftest import make_jpeg, make_png, make_webp


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_raw(width: int, height: int, idat: bytes, *, color: int = 0, depth: int = 8) -> bytes:
    """A PNG built chunk by chunk (valid CRCs) around any IDAT payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(side: int = 10_000) -> bytes:
    """A grey PNG of side×side zero pixels: ~100 KB on disk, ``side²`` pixels decoded."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.flush())
    return png_raw(side, side, b"".join(parts))


def png_solid_rgba(side: int = 8000) -> bytes:
    """A side×side RGBA PNG of one colour (~250 KB for 8000: 256 MB once decoded), built without decoding it."""
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x28\x5a\xc8\xff" * side
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def png_bad_zlib() -> bytes:
    """Good chunk CRCs around an IDAT that is not zlib at all."""
    return png_raw(32, 32, b"\x78\x9c" + b"\xde\xad\xbe\xef" * 20)


def zip_bytes() -> bytes:
    """A small ZIP holding an HTML page."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.html", "<script>alert(document.cookie)</script>")
    return buf.getvalue()


def gif() -> bytes:
    """A real GIF (not an accepted format)."""
    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


def pil_bytes(fmt: str, mode: str = "RGB") -> bytes:
    """A small image in a format the store does not accept."""
    buf = io.BytesIO()
    Image.new(mode, (8, 8), 3).save(buf, fmt)
    return buf.getvalue()


def jpeg_huge_dims() -> bytes:
    """A JPEG whose SOF header claims 65000×65000 pixels."""
    data = bytearray(make_jpeg())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)
    return bytes(data)


def webp_huge_canvas() -> bytes:
    """A VP8X WebP header claiming a 16384×16384 canvas, with no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") * 2
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def flip(data: bytes, at: int) -> bytes:
    """``data`` with one byte inverted."""
    b = bytearray(data)
    b[at] ^= 0xFF
    return bytes(b)


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<!doctype html><html><body><script>fetch('/api/v1/images').then(r=>r.text()).then(alert)</script></body></html>"

# name → (file name, bytes factory); every one must be refused with a 4xx.
FILES = {
    "empty": ("empty.png", lambda: b""),
    "html_named_png": ("page.png", lambda: HTML),
    "javascript": ("x.js", lambda: b"alert(document.cookie);//"),
    "svg": ("x.svg", lambda: SVG),
    "svg_named_png": ("x.png", lambda: SVG),
    "html_then_png": ("x.png", lambda: HTML + make_png()),
    "png_then_html": ("x.png", lambda: make_png() + HTML),
    "png_then_zip": ("x.png", lambda: make_png() + zip_bytes()),
    "webp_then_html": ("x.webp", lambda: make_webp() + HTML),
    "gifar": ("x.gif", lambda: gif() + zip_bytes()),
    "gif": ("x.gif", gif),
    "bmp_named_png": ("x.png", lambda: pil_bytes("BMP")),
    "tiff": ("x.tiff", lambda: pil_bytes("TIFF")),
    "ico": ("x.ico", lambda: pil_bytes("ICO")),
    "pdf": ("x.pdf", lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
    "elf": ("x.png", lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 57),
    "zip": ("x.zip", zip_bytes),
    "wav_riff": ("x.webp", lambda: b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28),
    "png_signature_only": ("x.png", lambda: b"\x89PNG\r\n\x1a\n"),
    "png_truncated_half": ("x.png", lambda: make_png(seed=5)[: len(make_png(seed=5)) // 2]),
    "png_without_iend": ("x.png", lambda: make_png(seed=6)[:-12]),
    "png_bad_crc": ("x.png", lambda: flip(make_png(seed=7), 40)),
    "png_bad_zlib_good_crc": ("x.png", png_bad_zlib),
    "png_huge_ihdr": ("x.png", lambda: png_raw(100_000, 100_000, zlib.compress(b"\x00" * 64))),
    "png_zero_size": ("x.png", lambda: png_raw(0, 0, zlib.compress(b""))),
    "png_zip_bomb": ("bomb.png", png_bomb),
    "png_sig_jpeg_body": ("x.png", lambda: b"\x89PNG\r\n\x1a\n" + make_jpeg()[3:]),
    "jpeg_sig_png_body": ("x.jpg", lambda: b"\xff\xd8\xff" + make_png()[8:]),
    "jpeg_soi_only": ("x.jpg", lambda: b"\xff\xd8\xff"),
    "jpeg_truncated": ("x.jpg", lambda: make_jpeg(seed=3)[: len(make_jpeg(seed=3)) // 3]),
    "jpeg_garbage": ("x.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\x13\x37" * 200),
    "jpeg_huge_dims": ("x.jpg", jpeg_huge_dims),
    "webp_truncated": ("x.webp", lambda: make_webp()[:30]),
    "webp_garbage": ("x.webp", lambda: b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\xaa" * 20),
    "webp_huge_canvas": ("x.webp", webp_huge_canvas),
}
