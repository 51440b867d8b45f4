"""Write paths for the crash-consistency suite, runnable in a subprocess.

``python -m tests.reliability.driver ROOT STATE SCENARIO`` opens the store at
ROOT, performs one write (the scenario) on the records named in the STATE
file, and prints the result as JSON when the write returned. With a point
armed in ``CASVAULT_FAULTS`` the process dies (exit 137) part way instead.
:func:`trace` runs the same write in-process and lists the fault points it
passes, so the suite crashes at every one of them.
"""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from casvault import faults
from casvault.config import Config
from casvault.store import Store

OWNER = "anon-" + "c" * 32
OTHER = "anon-" + "d" * 32
SECRET = "reliability-secret"

# An expected state of one record: (status, tags, favorite), or None for "gone".
State = tuple[str, tuple[str, ...], bool] | None


def png(seed: int, size: int = 24) -> bytes:
    """A small PNG with content unique to ``seed``."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rnd.randrange(256) for _ in range(3)))
    img.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, 7))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def open_store(root: Path, fsync: bool = True) -> Store:
    """The store at ``root`` as the crashing process opens it."""
    return Store(Config(root=root, secret_key=SECRET, thumb_size=32, fsync=fsync))


def setup(store: Store) -> dict[str, Any]:
    """Acknowledged writes every scenario starts from; returns ids and their expected states."""
    a = store.ingest(png(1), OWNER, prompt="kept", tags=["keep"]).record
    b = store.ingest(png(2), OWNER, prompt="trashed").record
    store.trash(OWNER, b.id)
    c = store.ingest(png(3), OWNER, "input", original_filename="in.png").record
    d = store.ingest(png(1), OTHER, prompt="same bytes, other user").record
    ids = {"a": a.id, "b": b.id, "c": c.id, "d": d.id}
    states = {
        a.id: ("active", ("keep",), False),
        b.id: ("trash", (), False),
        c.id: ("active", (), False),
        d.id: ("active", (), False),
    }
    return {"ids": ids, "owners": {a.id: OWNER, b.id: OWNER, c.id: OWNER, d.id: OTHER}, "states": states}


def _upload(store: Store, ids: dict[str, str]) -> dict[str, Any]:
    from casvault import identity
    from web import create_app

    app = create_app(store.config)
    client = app.test_client()
    client.set_cookie("anon_id", identity.issue(SECRET, OWNER)[1])
    resp = client.post(
        "/api/v1/inputs/upload",
        data={"file": (io.BytesIO(png(101)), "upload.png")},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    if resp.status_code != 201:
        raise RuntimeError(f"upload answered {resp.status_code}: {resp.get_data(as_text=True)}")
    return {"new": resp.get_json()["id"]}


# name → (operation, which setup record it changes and the state it may end in)
SCENARIOS: dict[str, tuple[Callable[[Store, dict[str, str]], dict[str, Any]], str | None, State]] = {
    "ingest": (lambda s, ids: {"new": s.ingest(png(100), OWNER, prompt="crash").record.id}, None, None),
    "ingest_dup": (lambda s, ids: {"new": s.ingest(png(2), OWNER, prompt="dup of a trashed one").record.id}, None, None),
    "upload": (_upload, None, None),
    "copy": (lambda s, ids: {"new": s.copy_as_input(OWNER, ids["a"]).id}, None, None),
    "trash": (lambda s, ids: {"id": s.trash(OWNER, ids["a"]).id}, "a", ("trash", ("keep",), False)),
    "restore": (lambda s, ids: {"id": s.restore(OWNER, ids["b"]).id}, "b", ("active", (), False)),
    "purge": (lambda s, ids: {"bytes": s.purge(OWNER, ids["b"])}, "b", None),
    "meta": (
        lambda s, ids: {"id": s.update_meta(OWNER, ids["a"], tags=["x", "y"], favorite=True).id},
        "a",
        ("active", ("x", "y"), True),
    ),
}


def trace(scenario: str, root: Path) -> list[str]:
    """The fault points one scenario passes, in order (run in-process over a fresh store at ``root``)."""
    op = SCENARIOS[scenario][0]
    store = open_store(root, fsync=False)
    ids = setup(store)["ids"]
    passed: list[str] = []
    original = faults.point
    faults.point = passed.append  # type: ignore[assignment]
    try:
        op(open_store(root, fsync=False), ids)
    finally:
        faults.point = original  # type: ignore[assignment]
    return passed


def main(argv: list[str]) -> int:
    """Run one scenario over a store whose setup state is in a JSON file."""
    root, state_file, scenario = Path(argv[0]), Path(argv[1]), argv[2]
    ids = json.loads(state_file.read_text())["ids"]
    result = SCENARIOS[scenario][0](open_store(root), ids)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
