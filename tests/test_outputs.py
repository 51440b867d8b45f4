"""/outputs: only active originals and thumbnails, with the right headers; everything else 404 JSON.

Also the shipped ops/nginx.conf, run for real in front of gunicorn with CASVAULT_ACCEL=nginx.
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
from tests.api_helpers import add_image, new_client
from tests.conftest import ROOT, make_jpeg, make_png, need, user


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
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Last-Modified"]
    assert "Set-Cookie" not in resp.headers  # cacheable by shared caches
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
    resp = new_client(app).get(url_of(store, image))
    assert resp.status_code == 200 and resp.data == make_png(seed=0)


def test_accel_mode_hands_off_to_nginx(tmp_path, config):
    from web import create_app

    app = create_app(config.with_(root=tmp_path / "accel", accel="nginx"))
    store = app.extensions["casvault.store"]
    rec = add_image(store, user(1))
    rel = store.layout.image_path(rec).relative_to(store.layout.outputs).as_posix()
    client = new_client(app)
    resp = client.get("/outputs/" + rel)
    assert resp.status_code == 200 and resp.data == b""
    assert resp.headers["X-Accel-Redirect"] == "/_protected_outputs/" + rel
    assert resp.headers["Content-Type"] == "image/png" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/outputs/" + rel.replace(".png", ".json")).status_code == 404
    store.trash(user(1), rec.id)
    assert "X-Accel-Redirect" not in client.get("/outputs/" + rel).headers


# --- the shipped nginx.conf, for real ------------------------------------------------------


def _nginx_conf(tmp: Path, root: Path, port: int, upstream_port: int) -> Path:
    text = (ROOT / "ops" / "nginx.conf").read_text()
    text = text.replace("/srv/casvault", str(root)).replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("pid /run/nginx-casvault.pid;", f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\ndaemon off;"
                        + ("\nuser root;" if os.geteuid() == 0 else ""))
    text = text.replace("http {", f"http {{\n    access_log off;\n    client_body_temp_path {tmp}/body;\n"
                        f"    proxy_temp_path {tmp}/proxy;\n    fastcgi_temp_path {tmp}/fcgi;\n"
                        f"    uwsgi_temp_path {tmp}/uwsgi;\n    scgi_temp_path {tmp}/scgi;", 1)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


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


@pytest.mark.timeout(120)
def test_nginx_in_front_of_gunicorn_serves_only_active_images(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    need(os.path.exists(nginx), "nginx binary")
    from casvault.store import Store
    from tests.conftest import SECRET
    from tests.servers import Gunicorn, free_port

    root = tmp_path / "root"
    srv = Gunicorn(root, workers=2, env={"CASVAULT_ACCEL": "nginx"})
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
        store = Store(Config(root=root, secret_key=SECRET))
        rec = add_image(store, user(1))
        image, sidecar, thumb = store.layout.paths(rec)
        resp = requests.get(base + url_of(store, image), timeout=10)
        assert resp.status_code == 200, (tmp / "error.log").read_text()[-2000:]
        assert resp.content == make_png(seed=0)
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "immutable" in resp.headers["Cache-Control"]
        assert "X-Accel-Redirect" not in resp.headers
        t = requests.get(base + url_of(store, thumb), timeout=10)
        assert t.status_code == 200 and t.headers["Content-Type"] == "image/webp"
        for bad in (url_of(store, sidecar), "/outputs/../meta/users/x", "/_protected_outputs/" +
                    image.relative_to(store.layout.outputs).as_posix(), url_of(store, image) + ".json"):
            r = requests.get(base + bad, timeout=10)
            assert r.status_code == 404 and r.content != make_png(seed=0), bad
        store.trash(user(1), rec.id)
        assert requests.get(base + url_of(store, image), timeout=10).status_code == 404
        api = requests.get(base + "/api/v1/quota", timeout=10)
        assert api.status_code == 200 and api.json()["usage"]["count"] == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        srv.stop()
