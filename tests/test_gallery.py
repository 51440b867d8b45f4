"""The page routes: / and /admin render their shell, set the identity cookie,
and every static file they reference is served."""

from __future__ import annotations

import re

from casvault import identity
from tests.conftest import SECRET, user


def test_gallery_page_sets_the_identity_cookie(client):
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{identity.COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert identity.verify(value, SECRET) is not None


def test_known_visitor_keeps_their_cookie(client):
    _, value = identity.issue(SECRET, user(7))
    client.set_cookie(identity.COOKIE_NAME, value)
    resp = client.get("/")
    assert resp.status_code == 200
    assert "Set-Cookie" not in resp.headers


def test_gallery_page_has_every_test_hook(client):
    html = client.get("/").get_data(as_text=True)
    for hook in (
        "search", "filter-aspect", "filter-tag", "filter-workflow", "filter-from", "filter-to", "favorites-only",
        "lightbox", "lightbox-next", "lightbox-prev", "lightbox-close", "favorite-toggle", "tag-input",
        "bulk-delete", "bulk-restore", "bulk-tag", "bulk-download", "confirm", "trash-view", "gallery-view",
        "share-button", "share-url", "inputs-view", "upload-input", "quota",
    ):
        assert f'data-testid="{hook}"' in html, hook
    # Tiles are built by the grid module, with their hooks.
    tiles = client.get("/static/js/tiles.js").get_data(as_text=True)
    assert '"data-testid": "gallery-item"' in tiles and '"data-testid": "select-toggle"' in tiles


def test_pages_carry_a_strict_content_security_policy(client):
    for path in ("/", "/admin"):
        resp = client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        html = resp.get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html and "onclick=" not in html


def test_every_referenced_static_file_is_served(client):
    """Scripts, styles and icons of both pages, and every module they import, answer 200 from this server."""
    seen: set[str] = set()
    todo = []
    for path in ("/", "/admin"):
        html = client.get(path).get_data(as_text=True)
        todo += re.findall(r'(?:src|href)="(/assets/[0-9a-f]{12}/[^"]+)"', html)
    assert any(p.endswith("gallery.js") for p in todo) and any(p.endswith("admin.js") for p in todo)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        resp = client.get(path)
        assert resp.status_code == 200, path
        if path.endswith(".js"):
            assert resp.mimetype in ("text/javascript", "application/javascript")
            body = resp.get_data(as_text=True)
            base = path.rsplit("/", 1)[0]
            for module in re.findall(r'from "\./([\w.-]+\.js)"', body):
                todo.append(f"{base}/{module}")
            remote = re.findall(r"https?://[^\s\"']+", body.replace("http://www.w3.org/2000/svg", ""))
            assert remote == [], f"{path} refers to {remote}"
    assert len([p for p in seen if p.endswith(".js")]) >= 12


def test_admin_page_needs_no_token_to_load_but_the_api_does(client):
    resp = client.get("/admin")
    assert resp.status_code == 200
    assert 'data-testid="admin-token"' in resp.get_data(as_text=True)
    assert client.get("/api/v1/admin/users").status_code == 401


def test_page_knows_the_partition_zone_and_retention(tmp_path):
    from casvault.config import Config
    from web import create_app

    app = create_app(Config(root=tmp_path / "r", secret_key=SECRET, partition_tz="Asia/Seoul", trash_retention_days=12))
    html = app.test_client().get("/").get_data(as_text=True)
    assert 'data-partition-tz="Asia/Seoul"' in html
    assert 'data-retention-days="12"' in html


def test_unknown_page_is_an_html_404(client):
    resp = client.get("/no-such-page")
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"


def test_zip_form_posts_to_the_archive_route_that_the_policy_allows(client):
    """The selection's ZIP is a plain same-origin form post, which the page's CSP permits and the API accepts."""
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    form = re.search(r'<form id="zip-form" method="post" action="([^"]+)" target="([^"]+)"', html)
    assert form, "no download form"
    assert form.group(1) == "/api/v1/images/download.zip"
    assert f'<iframe name="{form.group(2)}"' in html
    assert "form-action 'self'" in resp.headers["Content-Security-Policy"]
    assert re.search(r'<input type="hidden" name="ids"', html)
    rule = [r for r in client.application.url_map.iter_rules() if r.rule == form.group(1)]
    assert {"GET", "POST"} <= set().union(*(r.methods for r in rule))
