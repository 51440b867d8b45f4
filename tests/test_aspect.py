"""The aspect-ratio rule (casvault/aspect.py), at ingest and backfilled by reindex."""

from __future__ import annotations

import json

import pytest

from casvault.aspect import aspect_ratio
from casvault.index import Query
from casvault.store import Store
from cli import main
from tests.conftest import make_png, user

OWNER = user(21)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        # 1. lowest terms when both are small
        (1024, 1024, "1:1"),
        (1920, 1080, "16:9"),
        (1080, 1920, "9:16"),
        (832, 1248, "2:3"),
        (1152, 896, "9:7"),
        (832, 1216, "13:19"),
        (768, 1024, "3:4"),
        (1024, 819, "5:4"),  # 1.2503: within 1 % of 5:4
        # ... with a common ratio's own name when it has one
        (1344, 576, "21:9"),
        (576, 1344, "9:21"),
        (1280, 800, "16:10"),
        (3840, 1080, "32:9"),
        # 2. nearest common ratio within 1 %
        (1366, 768, "16:9"),
        (2048, 1365, "3:2"),
        (1023, 1024, "1:1"),
        (1025, 768, "4:3"),
        # 3. else W:H reduced
        (2560, 1080, "64:27"),
        (3440, 1440, "43:18"),
        (1000, 1100, "10:11"),
        (1000, 1111, "1000:1111"),
        (1024, 901, "1024:901"),
        # no usable size
        (0, 10, None),
        (None, 10, None),
        (True, 1, None),
    ],
)
def test_aspect_ratio_table(width: object, height: object, expected: str | None) -> None:
    assert aspect_ratio(width, height) == expected


def test_ingest_derives_it_unless_the_caller_sent_one(store: Store) -> None:
    wide = store.ingest(make_png(160, 90, seed=1), OWNER).record
    sent = store.ingest(make_png(160, 90, seed=2), OWNER, aspect_ratio="cinema").record
    control = store.ingest(make_png(160, 90, seed=3), OWNER, "control").record
    assert (wide.aspect_ratio, sent.aspect_ratio) == ("16:9", "cinema")
    assert not hasattr(control, "aspect_ratio")
    assert [r.id for r in store.list(OWNER, Query(aspect_ratio="16:9")).items] == [wide.id]


def test_reindex_fills_it_for_records_stored_before(store: Store, runner) -> None:
    record = store.ingest(make_png(64, 64, seed=4), OWNER).record
    sidecar = store.layout.sidecar_path(record)
    old = json.loads(sidecar.read_text())
    old["aspect_ratio"] = None  # as an older casvault wrote it
    sidecar.write_text(json.dumps(old))
    store.rebuild_manifest(OWNER)
    result = runner.invoke(main, ["--root", str(store.config.root), "reindex", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(sidecar.read_text())["aspect_ratio"] == "1:1"
    fresh = Store(store.config)
    assert [r.id for r in fresh.list(OWNER, Query(aspect_ratio="1:1")).items] == [record.id]
