"""The gallery's static assets: fingerprinted URLs, immutable caching, gzip, no identity cookie."""

from __future__ import annotations

import gzip
import re

from web.gallery import assets


def test_page_links_fingerprinted_assets_served_immutable_and_gzipped(client):
    page = client.get("/")
    html = page.get_data(as_text=True)
    script = re.search(r'<script type="module" src="(/assets/([0-9a-f]{12})/js/gallery\.js)"', html)
    assert script and script.group(2) == assets.version
    assert f'<link rel="modulepreload" href="/assets/{assets.version}/js/api.js">' in html
    resp = client.get(script.group(1), headers={"Accept-Encoding": "gzip, br"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["Vary"] == "Accept-Encoding"
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert "Set-Cookie" not in resp.headers
    body = gzip.decompress(resp.data)
    plain = client.get(script.group(1))
    assert "Content-Encoding" not in plain.headers and plain.data == body
    assert b"import" in body and len(resp.data) < len(body)


def test_an_old_version_is_revalidated_and_a_missing_file_is_a_json_404(client):
    resp = client.get("/assets/000000000000/css/app.css")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-cache"
    missing = client.get(f"/assets/{assets.version}/js/nope.js")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
