"""Fingerprinted static assets for the gallery and admin pages.

Every file under ``web/static`` is served at ``/assets/<version>/<path>``,
where ``version`` is a digest of the whole tree computed once at start. The
URL changes whenever any file changes, so the answers are ``immutable`` and a
warm reload asks the server for nothing; relative ES module imports
(``./api.js``) resolve under the same version. Text assets are gzipped once in
memory and sent compressed to clients that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Response, request

STATIC = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".txt")
IMPORT_RE = re.compile(rb"""^\s*import\s[^;]*?from\s+["']\./([\w.-]+\.js)["']""", re.M)
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    """One static file: its bytes, their gzip form (text only) and content type."""

    data: bytes
    gzipped: bytes | None
    mimetype: str


class StaticAssets:
    """The static tree read once: version digest, files by relative path."""

    def __init__(self, root: Path = STATIC) -> None:
        self.files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            suffix = path.suffix.lower()
            packed = gzip.compress(data, 9, mtime=0) if suffix in COMPRESSIBLE else None
            mimetype = TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self.files[rel] = Asset(data, packed if packed and len(packed) < len(data) else None, mimetype)
        self.version = digest.hexdigest()[:12]

    def url(self, rel: str) -> str:
        """The fingerprinted URL of a static file."""
        return f"/assets/{self.version}/{rel}"

    def modules(self, entry: str) -> list[str]:
        """The URLs of the ES modules ``entry`` imports, directly or not (for modulepreload: no import waterfall)."""
        seen: list[str] = []
        todo = [entry]
        while todo:
            rel = todo.pop()
            if rel in seen or rel not in self.files:
                continue
            seen.append(rel)
            todo += ["js/" + name.decode() for name in IMPORT_RE.findall(self.files[rel].data)]
        return [self.url(rel) for rel in sorted(seen) if rel != entry]

    def answer(self, version: str, rel: str) -> Response | None:
        """The response for one asset URL, or None when there is no such file."""
        asset = self.files.get(rel)
        if asset is None:
            return None
        accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        body = asset.gzipped if asset.gzipped is not None and accepts_gzip else asset.data
        resp = Response(body, mimetype=asset.mimetype.split(";")[0])
        resp.headers["Content-Type"] = asset.mimetype
        if body is asset.gzipped:
            resp.headers["Content-Encoding"] = "gzip"
        if asset.gzipped is not None:
            resp.headers["Vary"] = "Accept-Encoding"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        # NOTE: a page of an older deploy may ask for its version: it gets the
        # current file, revalidated, never cached for a year under the wrong name.
        resp.headers["Cache-Control"] = IMMUTABLE if version == self.version else "no-cache"
        return resp
