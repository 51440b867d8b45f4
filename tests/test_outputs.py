"""/outputs: only active originals and thumbnails, to their owner or the admin, with the right
headers; everything else 404 JSON.

Also the shipped ops/nginx.conf and ops/gunicorn.conf.py (with the environment of
ops/systemd/casvault.service), run for real: only the root, the ports and nginx's runtime
paths (pid, logs, temp folders) are substituted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from casvault.config import Config
from tests.api_helpers import ADMIN, add_image, error_code, new_client, owner_client
from tests.conftest import ADMIN_TOKEN, ROOT, SECRET, make_jpeg, make_png, need, user


@pytest.fixture
def client(app):
    """The owner of user(1)'s images: /outputs answers only its owner (or the admin)."""
    return owner_client(app, user(1))


def url_of(store, path: Path) -> str:
    """The /outputs URL of a file under outputs/."""
    return store.layout.rel_url(path)


def test_active_original_headers_and_conditional_get(client, store):
    rec = add_image(store, user(1))
    image = store.layout.image_path(rec)
    resp = client.get(url_of(store, image))
    assert resp.status_code == 200 and resp.data == make_png(seed=0)
    assert resp.mimetype == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["ETag"] == f'"{rec.sha256}"'
    assert resp.headers["Cache-Control"] == "private, max-age=31536000, immutable"  # owner-only
    assert resp.headers["Last-Modified"]
    assert "Set-Cookie" not in resp.headers
    etag = client.get(url_of(store, image), headers={"If-None-Match": f'"{rec.sha256}"'})
    assert etag.status_code == 304 and etag.data == b""
    since = client.get(url_of(store, image), headers={"If-Modified-Since": resp.headers["Last-Modified"]})
    assert since.status_code == 304


def test_thumbnails_inputs_and_controls(client, store):
    rec = add_image(store, user(1))
    thumb = client.get(url_of(store, store.layout.thumb_path(rec)))
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp" and thumb.data[:4] == b"RIFF"
    assert thumb.headers["X-Content-Type-Options"] == "nosniff"
    inp = store.ingest(make_jpeg(seed=2), user(1), "input").record
    ctl = add_image(store, user(1), seed=3, kind="control")
    assert "/inputs/" in url_of(store, store.layout.image_path(inp))
    got = client.get(url_of(store, store.layout.image_path(inp)))
    assert got.status_code == 200 and got.mimetype == "image/jpeg" and got.data == make_jpeg(seed=2)
    assert client.get(url_of(store, store.layout.image_path(ctl))).status_code == 200
    assert client.get(url_of(store, store.layout.thumb_path(ctl))).status_code == 200


def _not_found(client, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 404, (url, resp.status_code)
    if resp.is_json:
        assert resp.get_json()["error"]["code"] == "not_found"
    else:  # werkzeug/router answered before our blueprint (e.g. a path it normalised away)
        assert not url.startswith("/outputs/users/") or ".." in url, url
    assert resp.data != make_png(seed=0)


def test_everything_else_is_404(client, store):
    me = user(1)
    rec = add_image(store, me)
    image, sidecar, thumb = store.layout.paths(rec)
    good = url_of(store, image)
    d = good.rsplit("/", 1)[0]
    y, m, dd = store.layout.day(rec.created_at)
    (image.parent / f"{'c' * 32}.png").write_bytes(make_png(seed=9))  # a file not in the index
    (image.parent / ".hidden.png").write_bytes(b"x")
    bad = [
        url_of(store, sidecar),                                  # the sidecar
        good.replace(".png", ".jpg"), good.replace(".png", ".webp"), good + ".json", good + "/",
        good.replace(rec.id, rec.id.upper()),
        f"{d}/{'c' * 32}.png",                                   # exists on disk, not a record
        f"{d}/.hidden.png", f"{d}/thumb/{rec.id}.png",
        good.replace(f"/users/{me}/", f"/users/{me}/inputs/"),   # wrong kind folder
        good.replace(f"/users/{me}/", f"/users/{user(2)}/"),     # wrong owner
        good.replace(f"/{y}/{m}/{dd}/", "/2001/01/01/"),         # wrong date
        good.replace(f"/users/{me}/", "/users/anon-XYZ/"),
        f"/outputs/users/{me}", "/outputs/", "/outputs/users/", "/outputs/casvault.json",
        f"/outputs/../meta/users/{me}/manifest.jsonl", f"/outputs/%2e%2e/meta/users/{me}/manifest.jsonl",
        f"/outputs/..%2fmeta%2fusers%2f{me}%2fmanifest.jsonl",
        f"/outputs/../blobs/sha256/{rec.sha256[:2]}/{rec.sha256[2:4]}/{rec.sha256}",
        f"/outputs/users/{me}/../../trash/users/{me}/{y}/{m}/{dd}/{rec.id}.png",
        f"/outputs/users/{me}/{y}/{m}/{dd}/{rec.id}.png%00.json",
        f"/outputs/users/{me}/{y}/{m}/{dd}/{rec.id}.p%C5%84g",
        f"/outputs/users/{me}/{y}/{m}/{dd}/{'a' * 5000}.png",
        f"/outputs/users//{me}/{y}/{m}/{dd}/{rec.id}.png",
        "/outputs/tmp/x.png", "/outputs/.casvault", "/outputs/users/%00",
    ]
    for url in bad:
        _not_found(client, url)
    # the trash is not served, neither at the old path nor at the trash path
    store.trash(me, rec.id)
    _not_found(client, good)
    _not_found(client, url_of(store, thumb))
    t_image = store.layout.paths(rec, trashed=True)[0]
    _not_found(client, "/outputs/" + t_image.relative_to(store.layout.root).as_posix())


def test_symlinked_thumbnail_escaping_outputs_is_refused(client, store, tmp_path):
    rec = add_image(store, user(1))
    thumb = store.layout.thumb_path(rec)
    secret = tmp_path / "secret.webp"
    secret.write_bytes(b"RIFF-secret")
    thumb.unlink()
    thumb.symlink_to(secret)
    _not_found(client, url_of(store, thumb))


def test_symlink_projections_are_served(tmp_path, config):
    from web import create_app

    cfg = config.with_(root=tmp_path / "sym", link_mode="symlink")
    app = create_app(cfg)
    store = app.extensions["casvault.store"]
    rec = add_image(store, user(1))
    image = store.layout.image_path(rec)
    assert image.is_symlink() and not os.readlink(image).startswith("/")  # relative, into blobs/
    resp = owner_client(app, user(1)).get(url_of(store, image))
    assert resp.status_code == 200 and resp.data == make_png(seed=0)


def test_outputs_answer_only_the_owner_or_the_admin(app, store):
    rec = add_image(store, user(1))
    urls = [url_of(store, store.layout.image_path(rec)), url_of(store, store.layout.thumb_path(rec))]
    for url in urls:
        for stranger in (new_client(app), owner_client(app, user(2))):
            resp = stranger.get(url)
            assert resp.status_code == 404 and error_code(resp) == "not_found", url
            assert resp.data != make_png(seed=0) and "Set-Cookie" not in resp.headers
        assert new_client(app).get(url, headers={"Authorization": "Bearer wrong"}).status_code == 404
        admin = new_client(app).get(url, headers=ADMIN)
        assert admin.status_code == 200 and admin.headers["Cache-Control"].startswith("private")
        owner = owner_client(app, user(1)).get(url)
        assert owner.status_code == 200 and owner.headers["Cache-Control"].startswith("private")
    assert owner_client(app, user(1)).get(urls[0]).data == make_png(seed=0)


def test_outputs_public_serves_everyone_with_public_caching(tmp_path, config):
    from web import create_app

    assert Config.from_env({"CASVAULT_OUTPUTS_PUBLIC": "1"}, root=tmp_path).outputs_public is True
    app = create_app(config.with_(root=tmp_path / "public", outputs_public=True))
    store = app.extensions["casvault.store"]
    rec = add_image(store, user(1))
    resp = new_client(app).get(url_of(store, store.layout.image_path(rec)))
    assert resp.status_code == 200 and resp.data == make_png(seed=0)
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Set-Cookie" not in resp.headers  # cacheable by shared caches
    thumb = new_client(app).get(url_of(store, store.layout.thumb_path(rec)))
    assert thumb.status_code == 200 and thumb.headers["Cache-Control"].startswith("public")
    sidecar = new_client(app).get(url_of(store, store.layout.paths(rec)[1]))
    assert sidecar.status_code == 404


def test_swapped_projection_serves_the_record_bytes_never_the_target(client, store, tmp_path):
    victim = add_image(store, user(2), seed=5)
    rec = add_image(store, user(1))
    image = store.layout.image_path(rec)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG-secret")
    for target in (store.layout.manifest_path(user(2)), secret, Path("/etc/passwd"), store.layout.image_path(victim)):
        image.unlink()
        image.symlink_to(target)
        resp = client.get(url_of(store, image))
        assert resp.status_code in (200, 404), target
        if resp.status_code == 200:
            assert resp.data == make_png(seed=0), target  # the record's blob, by digest


def test_a_blob_replaced_by_a_symlink_or_fifo_is_not_followed(client, store, tmp_path):
    rec = add_image(store, user(1))
    blob = store.blobs.path(rec.sha256)
    url = url_of(store, store.layout.image_path(rec))
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside bytes")
    blob.chmod(0o644)
    blob.unlink()
    blob.symlink_to(outside)
    resp = client.get(url)
    assert resp.status_code == 404 and b"outside bytes" not in resp.data
    blob.unlink()
    os.mkfifo(blob)
    resp = client.get(url)  # must not block on the FIFO
    assert resp.status_code == 404


def test_accel_mode_hands_off_to_nginx(tmp_path, config):
    from web import create_app

    app = create_app(config.with_(root=tmp_path / "accel", accel="nginx"))
    store = app.extensions["casvault.store"]
    rec = add_image(store, user(1))
    h = rec.sha256
    rel = store.layout.image_path(rec).relative_to(store.layout.outputs).as_posix()
    client = owner_client(app, user(1))
    resp = client.get("/outputs/" + rel)
    assert resp.status_code == 200 and resp.data == b""
    # the original by its digest, never the projection path
    assert resp.headers["X-Accel-Redirect"] == f"/_casvault_blobs/{h[:2]}/{h[2:4]}/{h}"
    assert resp.headers["Content-Type"] == "image/png" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Casvault-Cache"] == "private, max-age=31536000, immutable"  # nginx's Cache-Control
    thumb_rel = store.layout.thumb_path(rec).relative_to(store.layout.outputs).as_posix()
    t = client.get("/outputs/" + thumb_rel)
    assert t.headers["X-Accel-Redirect"] == "/_casvault_thumbs/" + thumb_rel
    assert t.headers["Content-Type"] == "image/webp"
    assert client.get("/outputs/" + rel.replace(".png", ".json")).status_code == 404
    stranger = new_client(app).get("/outputs/" + rel)
    assert stranger.status_code == 404 and "X-Accel-Redirect" not in stranger.headers
    store.trash(user(1), rec.id)
    assert "X-Accel-Redirect" not in client.get("/outputs/" + rel).headers


# --- the shipped nginx.conf and gunicorn.conf.py, for real ---------------------------------

SHIPPED_ROOT = "/srv/casvault/data"


def _nginx_conf(tmp: Path, root: Path, port: int, upstream_port: int) -> Path:
    """ops/nginx.conf with the root and the ports substituted, plus a private pid, log and temp folders."""
    text = (ROOT / "ops" / "nginx.conf").read_text()
    assert "/srv/casvault/" not in text.replace(SHIPPED_ROOT, "")  # one root, as in systemd and cron
    text = text.replace(SHIPPED_ROOT, str(root)).replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("pid /run/nginx-casvault.pid;", f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\ndaemon off;"
                        + ("\nuser root;" if os.geteuid() == 0 else ""))
    text = text.replace("http {", f"http {{\n    access_log off;\n    client_body_temp_path {tmp}/body;\n"
                        f"    proxy_temp_path {tmp}/proxy;\n    fastcgi_temp_path {tmp}/fcgi;\n"
                        f"    uwsgi_temp_path {tmp}/uwsgi;\n    scgi_temp_path {tmp}/scgi;", 1)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


def _unit_env(root: Path) -> dict[str, str]:
    """The Environment= lines of ops/systemd/casvault.service, with the root substituted."""
    env = {}
    for line in (ROOT / "ops" / "systemd" / "casvault.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line[len("Environment="):].partition("=")
            env[key] = value.replace(SHIPPED_ROOT, str(root))
    assert env["CASVAULT_ROOT"] == str(root) and env["CASVAULT_ACCEL"] == "nginx"
    env.pop("CASVAULT_BIND")  # the test's free port
    return env


def test_nginx_conf_is_valid():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    need(os.path.exists(nginx), "nginx binary")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"casvault-nginx-t-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    try:
        conf = _nginx_conf(tmp, tmp, 8081, 8000)
        out = subprocess.run([nginx, "-t", "-c", str(conf), "-e", str(tmp / "error.log")],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def shipped(tmp_path):
    """nginx from ops/nginx.conf in front of gunicorn from ops/gunicorn.conf.py, over tmp_path/root."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    need(os.path.exists(nginx), "nginx binary")
    from tests.servers import Gunicorn, free_port

    root = tmp_path / "root"
    srv = Gunicorn(root, workers=2, env=_unit_env(root))
    srv.start()
    tmp = tmp_path / "nginx"
    tmp.mkdir()
    port = free_port()
    conf = _nginx_conf(tmp, root, port, srv.port)
    proc = subprocess.Popen([nginx, "-c", str(conf), "-e", str(tmp / "error.log")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(base + "/outputs/", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, (tmp / "error.log").read_text()
                time.sleep(0.1)
        from casvault.store import Store

        yield base, Store(Config(root=root, secret_key=SECRET)), tmp / "error.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        srv.stop()


def _as(owner: str) -> dict[str, str]:
    from casvault import identity

    return {"anon_id": identity.issue(SECRET, owner)[1]}


@pytest.mark.timeout(120)
def test_nginx_in_front_of_gunicorn_serves_only_active_images(shipped):
    base, store, error_log = shipped
    rec = add_image(store, user(1))
    image, sidecar, thumb = store.layout.paths(rec)
    owner = _as(user(1))
    resp = requests.get(base + url_of(store, image), cookies=owner, timeout=10)
    assert resp.status_code == 200, error_log.read_text()[-2000:]
    assert resp.content == make_png(seed=0)
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.raw.headers.getlist("Cache-Control") == ["private, max-age=31536000, immutable"]
    assert "X-Accel-Redirect" not in resp.headers
    t = requests.get(base + url_of(store, thumb), cookies=owner, timeout=10)
    assert t.status_code == 200 and t.headers["Content-Type"] == "image/webp" and t.content[:4] == b"RIFF"
    assert len(t.raw.headers.getlist("Cache-Control")) == 1
    admin = requests.get(base + url_of(store, image), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert admin.status_code == 200 and admin.content == make_png(seed=0)
    h = rec.sha256
    for bad in (url_of(store, sidecar), "/outputs/../meta/users/x", url_of(store, image) + ".json",
                f"/_casvault_blobs/{h[:2]}/{h[2:4]}/{h}",
                "/_casvault_thumbs/" + thumb.relative_to(store.layout.outputs).as_posix()):
        r = requests.get(base + bad, cookies=owner, timeout=10)
        assert r.status_code == 404 and r.content != make_png(seed=0), bad
    for stranger in ({}, _as(user(2))):  # not the owner: 404, no bytes
        r = requests.get(base + url_of(store, image), cookies=stranger, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    store.trash(user(1), rec.id)
    assert requests.get(base + url_of(store, image), cookies=owner, timeout=10).status_code == 404
    api = requests.get(base + "/api/v1/quota", cookies=owner, timeout=10)
    assert api.status_code == 200 and api.json()["usage"]["count"] == 1  # in the trash


@pytest.mark.timeout(120)
def test_nginx_never_serves_the_target_of_a_swapped_projection(shipped, tmp_path):
    base, store, error_log = shipped
    victim = add_image(store, user(2), seed=7)
    rec = add_image(store, user(1))
    image, _, thumb = store.layout.paths(rec)
    owner = _as(user(1))
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    forbidden = [store.layout.manifest_path(user(2)).read_bytes(), Path("/etc/passwd").read_bytes(),
                 secret.read_bytes(), make_png(seed=7)]
    for target in (store.layout.manifest_path(user(2)), Path("/etc/passwd"), secret, store.layout.image_path(victim)):
        image.unlink()
        image.symlink_to(target)
        r = requests.get(base + url_of(store, image), cookies=owner, timeout=10)
        assert r.status_code in (200, 404), (target, r.status_code, error_log.read_text()[-2000:])
        assert r.content not in forbidden, target
        if r.status_code == 200:
            assert r.content == make_png(seed=0)  # the record's own blob, named by digest
        thumb_bytes = thumb.read_bytes() if not thumb.is_symlink() else None
        thumb.unlink()
        thumb.symlink_to(target)
        r = requests.get(base + url_of(store, thumb), cookies=owner, timeout=10)
        assert r.status_code == 404 and r.content not in forbidden, target
        assert r.json()["error"]["code"] == "not_found" and "immutable" not in r.headers.get("Cache-Control", "")
        thumb.unlink()
        thumb.write_bytes(thumb_bytes)
    # a day folder swapped for a symlink to a look-alike folder outside the root
    day = image.parent
    outside = tmp_path / "elsewhere"
    shutil.copytree(day, outside, symlinks=True)
    (outside / "thumb" / thumb.name).write_bytes(b"RIFF not yours")
    shutil.rmtree(day)
    day.symlink_to(outside)
    r = requests.get(base + url_of(store, thumb), cookies=owner, timeout=10)
    assert r.status_code == 404 and r.content != b"RIFF not yours"
    r = requests.get(base + url_of(store, image), cookies=owner, timeout=10)
    assert r.status_code in (200, 404)
    if r.status_code == 200:
        assert r.content == make_png(seed=0)  # by digest, whatever the day folder is
