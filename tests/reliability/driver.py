"""Write paths for the crash-consistency suite, runnable in a subprocess.

``python -m tests.reliability.driver ROOT STATE SCENARIO`` opens the store at
ROOT, performs one write (the scenario) on the records named in the STATE
file, and prints the result as JSON when the write returned. With a point
armed in ``CASVAULT_FAULTS`` the process dies (exit 137) part way instead.
:func:`trace` runs the same write in-process and lists the fault points it
passes, so the suite crashes at every one of them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from casvault import faults
from casvault.config import Config
from casvault.store import Store

OWNER = "anon-" + "c" * 32
OTHER = "anon-" + "d" * 32
SECRET = "reliability-secret-0123456789abcdef-0123"

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
    e = store.ingest(png(4), OWNER, prompt="purged: its blob is left for gc").record
    store.trash(OWNER, e.id)
    store.purge(OWNER, e.id)
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


def _cli(store: Store, *args: str) -> dict[str, Any]:
    """Run a ``casvault`` command in this process over the store's root."""
    from cli import main

    main(["--root", str(store.config.root), *args], standalone_mode=False)
    return {"cli": list(args)}


def _adopt(store: Store, ids: dict[str, str]) -> dict[str, Any]:
    day = store.layout.outputs / "users" / OWNER / "2026" / "11" / "28"
    day.mkdir(parents=True, exist_ok=True)
    (day / "ComfyUI_00001_.png").write_bytes(png(300))
    return _cli(store, "reindex", "--adopt")


def _backup(store: Store) -> dict[str, Any]:
    """Back up the days around today (every setup record) beside the store."""
    from datetime import date, timedelta

    today = date.today()
    span = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    return _cli(store, "backup", *span, "--out", str(store.config.root.parent / "backup"))


def _empty_with_backup(root: Path) -> None:
    """Back the store up beside it, then start over with an empty store (for the restore scenario)."""
    import shutil

    _backup(open_store(root, fsync=False))
    shutil.rmtree(root)
    open_store(root, fsync=False)


@dataclass(frozen=True)
class Scenario:
    """One write path: the write, the setup record it changes and the state it may end in.

    ``moves_to``: the records of OWNER may end under this owner (a merge).
    ``prepare``: run on the copied root before the write (no faults armed).
    ``rerun``: after the repair the write is run again and must then be complete.
    """

    op: Callable[[Store, dict[str, str]], dict[str, Any]]
    target: str | None = None
    target_state: State = None
    moves_to: str | None = None
    prepare: Callable[[Path], None] | None = None
    rerun: bool = False


MEMBER = "u-member"
SCENARIOS: dict[str, Scenario] = {
    "ingest": Scenario(lambda s, ids: {"new": s.ingest(png(100), OWNER, prompt="crash").record.id}),
    "ingest_dup": Scenario(lambda s, ids: {"new": s.ingest(png(2), OWNER, prompt="dup of a trashed one").record.id}),
    "upload": Scenario(_upload),
    "copy": Scenario(lambda s, ids: {"new": s.copy_as_input(OWNER, ids["a"]).id}),
    "trash": Scenario(lambda s, ids: {"id": s.trash(OWNER, ids["a"]).id}, "a", ("trash", ("keep",), False)),
    "restore": Scenario(lambda s, ids: {"id": s.restore(OWNER, ids["b"]).id}, "b", ("active", (), False)),
    "purge": Scenario(lambda s, ids: {"bytes": s.purge(OWNER, ids["b"])}, "b", None),
    "meta": Scenario(
        lambda s, ids: {"id": s.update_meta(OWNER, ids["a"], tags=["x", "y"], favorite=True).id},
        "a",
        ("active", ("x", "y"), True),
    ),
    "merge": Scenario(lambda s, ids: _cli(s, "users", "merge", OWNER, MEMBER), moves_to=MEMBER, rerun=True),
    "gc": Scenario(lambda s, ids: _cli(s, "gc", "--grace", "0")),
    "adopt": Scenario(_adopt),
    "backup": Scenario(lambda s, ids: _backup(s), rerun=True),
    "restore_backup": Scenario(
        lambda s, ids: _cli(s, "restore", str(s.config.root.parent / "backup")), prepare=_empty_with_backup, rerun=True,
    ),
}


def trace(scenario: str, root: Path) -> list[str]:
    """The fault points one scenario passes, in order (run in-process over a fresh store at ``root``)."""
    sc = SCENARIOS[scenario]
    store = open_store(root, fsync=False)
    ids = setup(store)["ids"]
    if sc.prepare is not None:
        with contextlib.redirect_stdout(io.StringIO()):
            sc.prepare(root)
    passed: list[str] = []
    original = faults.point
    faults.point = passed.append  # type: ignore[assignment]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            sc.op(open_store(root, fsync=False), ids)
    finally:
        faults.point = original  # type: ignore[assignment]
    return passed


def main(argv: list[str]) -> int:
    """Run one scenario over a store whose setup state is in a JSON file."""
    root, state_file, scenario = Path(argv[0]), Path(argv[1]), argv[2]
    ids = json.loads(state_file.read_text())["ids"]
    # NOTE: CASVAULT_FSYNC=0 is honoured: a killed process loses nothing the
    # page cache holds, so fsync only matters for power loss, not for this suite.
    result = SCENARIOS[scenario].op(open_store(root, fsync=os.environ.get("CASVAULT_FSYNC") != "0"), ids)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
