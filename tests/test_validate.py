"""Validation: ids, user ids, image signatures, Pillow checks, limits."""

import zlib
import struct

import pytest

from casvault.errors import InvalidInput, NotAnImage, TooLarge
from casvault.validate import check_filename, check_image, check_tags, check_user_id, is_id, is_user_id
from tests.conftest import make_jpeg, make_png, make_webp

LIMITS = dict(max_bytes=10_000_000, max_pixels=10_000_000)


def test_ids():
    assert is_id("0" * 32)
    for bad in ("0" * 31, "A" * 32, "../" + "0" * 29, "0" * 32 + "\n", None, 5):
        assert not is_id(bad)


@pytest.mark.parametrize("uid", ["anon-" + "a" * 32, "u-alice", "u-" + "x" * 64, "u-a_b-c9"])
def test_user_ids_ok(uid):
    assert is_user_id(uid)


@pytest.mark.parametrize(
    "uid", ["anon-" + "A" * 32, "anon-" + "a" * 31, "u-", "u-" + "x" * 65, "u-Alice", "../u-a", "u-a/b", "admin", ""]
)
def test_user_ids_refused(uid):
    assert not is_user_id(uid)
    with pytest.raises(InvalidInput):
        check_user_id(uid)


def test_each_accepted_format(corpus):
    assert check_image(make_png(), **LIMITS).ext == "png"
    assert check_image(make_jpeg(), **LIMITS).mime == "image/jpeg"
    assert check_image(make_webp(), **LIMITS).ext == "webp"
    info = check_image((corpus / "flux_flux_dev_example.png").read_bytes(), **LIMITS)
    assert (info.width, info.height) == (1024, 1024)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a" + b"\0" * 20,
        b"<html><body>hi</body></html>",
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        b"\xff\xd8\xff\xe0" + b"\0" * 30,
        b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 8,
    ],
)
def test_not_images_refused(data):
    with pytest.raises(NotAnImage):
        check_image(data, **LIMITS)


def test_truncated_png_refused(corpus):
    data = (corpus / "lora_lora.png").read_bytes()
    with pytest.raises(NotAnImage):
        check_image(data[: len(data) // 2], **LIMITS)


def test_corrupt_crc_refused():
    data = bytearray(make_png(32, 32))
    data[40] ^= 0xFF  # inside IDAT or its CRC
    with pytest.raises(NotAnImage):
        check_image(bytes(data), **LIMITS)


def _png_header_only(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_pixel_bomb_refused_before_decoding():
    with pytest.raises(TooLarge):
        check_image(_png_header_only(100_000, 100_000), **LIMITS)


def test_byte_limit():
    with pytest.raises(TooLarge):
        check_image(make_png(), max_bytes=10, max_pixels=10**6)


def test_tags_and_filenames():
    assert check_tags(["a", " b ", "a", ""]) == ["a", "b"]
    assert check_tags("x,y") == ["x", "y"]
    with pytest.raises(InvalidInput):
        check_tags([1])
    with pytest.raises(InvalidInput):
        check_tags(["x" * 65])
    assert check_filename("../../etc/ComfyUI_00042_.png") == "ComfyUI_00042_.png"
    assert check_filename("C:\\temp\\a.png") == "a.png"
    with pytest.raises(InvalidInput):
        check_filename("a\x00b.png")


def test_bidi_controls_are_removed_from_file_names():
    """U+202E and friends would make "photo\u202egnp.exe" display as "photoexe.png"."""
    assert check_filename("photo\u202egnp.exe") == "photognp.exe"
    every = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    assert check_filename(f"a{every}b.png") == "ab.png"
    assert check_filename(every) is None
    assert check_filename("日本語\u200dname.png") == "日本語\u200dname.png"  # a joiner is not a bidi control
