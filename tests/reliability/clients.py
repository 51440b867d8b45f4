"""HTTP helpers for the reliability suite: signed cookies, ingest, listings, a 4-worker gunicorn."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from casvault import identity
from tests.conftest import INGEST_TOKEN, SECRET
from tests.servers import Gunicorn

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
XRW = {"X-Requested-With": "XMLHttpRequest"}


def owner(n: int) -> str:
    """A deterministic guest id for client ``n``."""
    return f"anon-{n:032x}"


def cookie(user_id: str) -> dict[str, str]:
    """The signed ``anon_id`` cookie of ``user_id`` (as the server would issue it)."""
    return {"anon_id": identity.issue(SECRET, user_id)[1]}


def tiny_png(seed: int, size: int = 16, compress: int = 6) -> bytes:
    """A very small PNG, unique per seed."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rnd.randrange(256) for _ in range(3)))
    img.putpixel((0, 0), (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255))
    img.putpixel((1, 0), ((seed >> 24) & 255, 1, 2))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=compress)
    return buf.getvalue()


def ingest(session: requests.Session, url: str, user_id: str, data: bytes, timeout: float = 30, **fields: Any):
    """POST one image to the pipeline endpoint."""
    return session.post(
        url + "/api/v1/ingest",
        files={"file": ("gen.png", data, "image/png")},
        data={"owner": user_id, **{k: str(v) for k, v in fields.items()}},
        headers=AUTH,
        timeout=timeout,
    )


def listed(url: str, user_id: str, include: str = "active", kind: str = "images") -> tuple[int, set[str]]:
    """(total, ids) of a user's listing, paging through it on a fresh connection."""
    ids: set[str] = set()
    total = -1
    cursor = ""
    with requests.Session() as s:
        s.cookies.update(cookie(user_id))
        while True:
            r = s.get(f"{url}/api/v1/{kind}", params={"size": 200, "include": include, "cursor": cursor}, timeout=30)
            r.raise_for_status()
            body = r.json()
            total = body["total"] if total < 0 else total
            ids |= {item["id"] for item in body["items"]}
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return total, ids


def server(root: Path, workers: int = 4, **env: str) -> Gunicorn:
    """A gunicorn over ``root`` with small thumbnails and extra ``CASVAULT_*`` settings."""
    return Gunicorn(root, workers=workers, env={"CASVAULT_THUMB_SIZE": "32", **env})
