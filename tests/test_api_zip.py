"""The streamed ZIP download: exact originals, clash-free names, limits, and flat memory for 500 images."""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile

import pytest
from PIL import Image

from casvault.store import Store
from tests.api_helpers import add_image, error_code, new_client, visitor
from tests.conftest import make_png, user

ZIP = "/api/v1/images/download.zip"


def noise_png(seed: int, size: int = 96) -> bytes:
    """An incompressible PNG (random pixels), about size*size*3 bytes."""
    rnd = __import__("random").Random(seed)
    img = Image.frombytes("RGB", (size, size), rnd.randbytes(size * size * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def test_zip_holds_the_originals_with_clash_free_names(client, store):
    me = visitor(client)
    a = add_image(store, me, seed=1, original_filename="cat.png")
    b = add_image(store, me, seed=2, original_filename="cat.png")
    c = add_image(store, me, seed=3, original_filename="CAT.png")
    d = add_image(store, me, seed=4)
    e = add_image(store, me, seed=5, original_filename="../../evil.jpg")
    store.trash(me, d.id)  # the owner may download trashed images too
    resp = client.get(f"{ZIP}?ids={a.id},{b.id},{c.id},{d.id},{e.id}")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.is_streamed
    zf = zipfile.ZipFile(io.BytesIO(resp.data))
    assert zf.testzip() is None
    y, m, dd = store.layout.day(d.created_at)
    assert zf.namelist() == ["cat.png", "cat (2).png", "CAT (3).png", f"{y}-{m}-{dd}_{d.id}.png", "evil.png"]
    for name, seed in zip(zf.namelist(), range(1, 6)):
        assert zf.read(name) == make_png(seed=seed)


def test_zip_and_download_names_carry_no_bidi_controls(client, store):
    """Bidi controls are removed on the way in, and from names stored before that rule (archive and download)."""
    from casvault.records import evolve
    from web import archive

    me = visitor(client)
    rec = add_image(store, me, seed=8, original_filename="cat\u202egnp.exe")
    assert rec.original_filename == "catgnp.exe"
    resp = client.get(f"{ZIP}?ids={rec.id}")
    assert zipfile.ZipFile(io.BytesIO(resp.data)).namelist() == ["catgnp.png"]
    old = evolve(rec, original_filename="invoice\u2067\u202efdp.\u2069\u200fexe")
    assert [m.name for m in archive.plan(store, [old])] == ["invoicefdp.png"]
    upload = client.post("/api/v1/inputs/upload", data={"file": (io.BytesIO(make_png(seed=9)), "x\u202egnp.exe")})
    assert upload.status_code == 201 and upload.get_json()["original_filename"] == "xgnp.exe"


def test_zip_refuses_unknown_foreign_and_too_many_before_streaming(client, store):
    me = visitor(client)
    mine = add_image(store, me, seed=1)
    theirs = add_image(store, user(7), seed=2)
    inp = add_image(store, me, seed=3, kind="input")
    for ids in (f"{mine.id},{theirs.id}", f"{mine.id},{'0' * 32}", inp.id, f"{mine.id},../../etc/passwd"):
        resp = client.get(f"{ZIP}?ids={ids}")
        assert resp.status_code == 404 and resp.is_json and error_code(resp) == "not_found", ids
    for qs in ("", "ids=", "ids=,,", "ids=" + ",".join(f"{i:032x}" for i in range(1001))):
        resp = client.get(f"{ZIP}?{qs}")
        assert resp.status_code == 400 and error_code(resp) == "bad_request", qs[:20]


@pytest.mark.timeout(240)
def test_zip_of_500_images_streams_with_flat_memory(tmp_path, config):
    from web import create_app

    cfg = config.with_(root=tmp_path / "big", fsync=False)
    app = create_app(cfg)
    client = new_client(app)
    me = visitor(client)
    store = Store(cfg)
    originals = {}
    for i in range(500):
        data = noise_png(i)
        rec = store.ingest(data, me, "generated", make_thumb=False, original_filename=f"img_{i % 50}.png").record
        originals[rec.id] = data
    total = sum(len(d) for d in originals.values())
    assert total > 12_000_000  # about 13.8 MB of incompressible images
    ids = ",".join(originals)
    tracemalloc.start()
    try:
        resp = client.get(f"{ZIP}?ids={ids}", buffered=False)
        assert resp.status_code == 200
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = tmp_path / "out.zip"
        largest = 0
        with open(out, "wb") as fh:
            for chunk in resp.response:
                largest = max(largest, len(chunk))
                fh.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
        resp.close()
    finally:
        tracemalloc.stop()
    growth = peak - base
    # NOTE: buffering the archive would need > 13 MB; streaming stays near one chunk.
    assert growth < 2_000_000, f"memory grew by {growth} bytes while streaming {total} bytes"
    assert largest <= 256 * 1024
    assert os.path.getsize(out) > total
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert len(infos) == 500 and len({i.filename for i in infos}) == 500
        by_name = {i.filename: i for i in infos}
        assert "img_0.png" in by_name and "img_0 (2).png" in by_name
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        got = sorted(zf.read(i) for i in infos)
    assert got == sorted(originals.values())  # exactly those originals, byte for byte
    print(f"\nZIP of 500 images ({total / 1e6:.1f} MB): tracemalloc peak growth {growth / 1e3:.0f} kB, "
          f"largest chunk {largest / 1e3:.0f} kB")


def _fill(store: Store, owner: str, count: int) -> dict[str, bytes]:
    """``count`` distinct small images of ``owner``, by id, newest last."""
    originals = {}
    for i in range(count):
        data = make_png(8, 8, seed=20_000 + i)
        rec = store.ingest(data, owner, "generated", make_thumb=False, original_filename=f"gen_{i}.png").record
        originals[rec.id] = data
    return originals


@pytest.mark.timeout(180)
def test_form_post_of_500_ids_through_gunicorn_is_one_archive_of_exactly_those(server, config):
    """The gallery's download form: 500 ids in the body (a URL of them is refused by gunicorn)."""
    import requests

    browser = requests.Session()
    base = server.url
    assert browser.get(base + "/", timeout=10).status_code == 200
    me = browser.cookies["anon_id"].split(".")[0]
    store = Store(config.with_(fsync=False))
    originals = _fill(store, me, 520)
    chosen = list(originals)[10:510]
    ids = ",".join(chosen)
    # The same selection in a link is over gunicorn's request-line limit.
    assert browser.get(f"{base}{ZIP}?ids={ids}", timeout=10).status_code == 414
    resp = browser.post(base + ZIP, data={"ids": ids}, headers={"Origin": base}, timeout=60)
    assert resp.status_code == 200, resp.text[:200]
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="casvault-500-images.zip"'
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names == [f"gen_{list(originals).index(rid)}.png" for rid in chosen]
        assert [zf.read(n) for n in names] == [originals[rid] for rid in chosen]


def test_form_post_is_refused_cross_site_and_checked_like_the_link(app, store):
    from tests.api_helpers import new_client

    plain = app.test_client()  # a browser form: no X-Requested-With
    assert plain.get("/").status_code == 200
    me = plain.get_cookie("anon_id").value.split(".")[0]
    a = add_image(store, me, seed=1, original_filename="a.png")
    b = add_image(store, me, seed=2, original_filename="b.png")
    form = {"ids": f"{a.id},{b.id}"}
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"}, {"Origin": "null"}):
        resp = plain.post(ZIP, data=form, headers=headers)
        assert resp.status_code == 403 and error_code(resp) == "csrf_failed", headers
    resp = plain.post(ZIP, data=form, headers={"Origin": "http://localhost"})
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        assert zf.namelist() == ["a.png", "b.png"]
        assert [zf.read(n) for n in zf.namelist()] == [make_png(seed=1), make_png(seed=2)]
    # The form is checked like the link: unknown, foreign, missing and too many ids.
    client = new_client(app)
    client.set_cookie("anon_id", plain.get_cookie("anon_id").value)
    theirs = add_image(store, user(7), seed=3)
    for ids in (f"{a.id},{theirs.id}", f"{a.id},{'0' * 32}"):
        resp = client.post(ZIP, data={"ids": ids})
        assert resp.status_code == 404 and error_code(resp) == "not_found", ids
    for body in ({}, {"ids": ""}, {"ids": ",".join(f"{i:032x}" for i in range(1001))}):
        resp = client.post(ZIP, data=body)
        assert resp.status_code == 400 and error_code(resp) == "bad_request"
    assert client.post(ZIP, data={"ids": ",".join([a.id] * 1000)}).status_code == 200
