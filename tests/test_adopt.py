"""reindex --adopt: a plain tree written the old way becomes records in place, re-runnably."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from casvault import adopt, fsck
from casvault.config import Config
from casvault.store import Store
from cli import main
from tests.conftest import ADMIN_TOKEN, ROOT, make_jpeg, make_png, user

OWNER = user(3)


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast)."""
    return Store(config.with_(fsync=False))


def old_tree(store: Store) -> dict[str, Path]:
    """What an older app wrote: PNGs (+ JSON with its own fields) straight into outputs/users/<u>/YYYY/MM/DD/."""
    day = store.layout.outputs / "users" / OWNER / "2026" / "11" / "20"
    day.mkdir(parents=True)
    files = {}
    files["memo"] = day / "ComfyUI_00042_.png"
    files["memo"].write_bytes(make_png(seed=1, width=80, height=40))
    (day / "ComfyUI_00042_.png").with_suffix(".json").write_text(json.dumps({
        "id": "job-42", "prompt": "a lighthouse at dusk", "seed": "1234", "workflow_id": "wf-sdxl",
        "aspect_ratio": "2:1", "created_at": "2026-11-20T08:15:00+09:00", "tags": ["sea", "dusk"],
        "sampler": "euler",
    }))
    hexname = "0123456789abcdef0123456789abcdef"
    files["hex"] = day / f"{hexname}.png"
    files["hex"].write_bytes(make_png(seed=2))
    (day / f"{hexname}.json").write_text(json.dumps({"prompt": "uuid-named by the old app", "seed": 7}))
    files["bare"] = day / "plain.jpg"
    files["bare"].write_bytes(make_jpeg(seed=3))
    os.utime(files["bare"], (1_700_000_000, 1_700_000_000))
    ctrl = store.layout.outputs / "users" / OWNER / "controls" / "2026" / "11" / "20"
    ctrl.mkdir(parents=True)
    files["control"] = ctrl / "pose.png"
    files["control"].write_bytes(make_png(seed=4))
    files["junk"] = day / "notes.txt"
    files["junk"].write_text("not an image")
    return files


def test_reindex_adopt_turns_an_old_tree_into_records(fstore, runner):
    files = old_tree(fstore)
    root = str(fstore.layout.root)
    res = runner.invoke(main, ["--root", root, "reindex", "--adopt", "--dry-run", "--json"], catch_exceptions=False)
    assert res.exit_code == 0 and len(json.loads(res.output)["adopt"]["candidates"]) == 4  # not the text file
    assert files["memo"].exists()
    res = runner.invoke(main, ["--root", root, "reindex", "--adopt", "--json"], catch_exceptions=False)
    body = json.loads(res.output)
    assert body["adopt"]["adopted"] == 4 and body["adopt"]["failed"] == 0
    assert res.exit_code == 0, res.output
    # the text file can never be adopted: set aside with its reason, not deleted, not retried every night
    aside = [p for p in body["set_aside"] if p["path"].endswith("notes.txt")]
    assert len(aside) == 1 and "PNG, JPEG or WebP" in aside[0]["detail"] and aside[0]["repaired"]
    store = Store(fstore.config)
    records = {r.original_filename: r for r in store.index(OWNER).records.values()}
    memo = records["ComfyUI_00042_.png"]
    assert (memo.prompt, memo.seed, memo.workflow_id, memo.aspect_ratio) == ("a lighthouse at dusk", 1234, "wf-sdxl", "2:1")
    assert memo.tags == ["sea", "dusk"] and memo.created_at == "2026-11-19T23:15:00.000+00:00"
    assert memo.source["legacy"] == {"sampler": "euler"} and memo.source["adopted_from"].endswith("ComfyUI_00042_.png")
    assert memo.id != "job-42" and len(memo.id) == 32
    assert records[files["hex"].name].id == files["hex"].stem  # a 32-hex old id is kept
    # The day of its path (2026/11/20), at the time of day of its mtime (2023-11-14T22:13:20Z).
    assert records["plain.jpg"].created_at.startswith("2026-11-20T22:13:20")
    assert store.index(OWNER).records[records["pose.png"].id].kind == "control"
    for record in records.values():
        image, sidecar, thumb = store.layout.paths(record)
        assert sidecar.is_file() and thumb.is_file()
        assert image.read_bytes() == store.blobs.read(record.sha256)
        if store.link_mode == "hardlink":
            assert os.path.samefile(image, store.blobs.path(record.sha256))
    for key in ("memo", "bare", "control"):
        assert not files[key].exists()
    assert not files["memo"].with_suffix(".json").exists()
    assert not files["junk"].exists()
    kept = list((store.layout.root / "quarantine" / "foreign").rglob(files["junk"].name))
    assert len(kept) == 1 and kept[0].read_bytes() == b"not an image"
    note = kept[0].with_name(kept[0].name + ".note").read_text()
    assert "PNG, JPEG or WebP" in note and files["junk"].name in note
    again = adopt.adopt_tree(store)
    assert again.items == []  # nothing twice
    assert fsck.check(store).clean
    assert len(Store(fstore.config).index(OWNER).records) == 4


@pytest.mark.parametrize("point", [None, "sidecar", "manifest"])
def test_interrupted_adoption_resumes(fstore, point):
    files = old_tree(fstore)
    files["junk"].unlink()
    if point:
        # an earlier run died after writing the sidecar (or also the manifest line) of the first file
        code = (
            "from casvault.config import Config; from casvault.store import Store; from casvault import adopt; "
            f"s = Store(Config(root={str(fstore.layout.root)!r}, fsync=False)); "
            "import casvault.adopt as a, os; real = a.remove; "
            "a.remove = lambda p: os._exit(137); "
            + ("a.ensure_projection = lambda *x: os._exit(137); " if point == "sidecar" else "")
            + "adopt.adopt_tree(s)"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 137, proc.stderr
        assert files["control"].exists()
    report = adopt.adopt_tree(Store(fstore.config))
    assert report.count("failed") == 0
    assert report.count("resumed") == (1 if point else 0)
    store = Store(fstore.config)
    assert len(store.index(OWNER).records) == 4
    assert fsck.check(store).clean
    assert adopt.adopt_tree(store).items == []


def test_reindex_reports_and_repairs_orphans(fstore, runner):
    rec = fstore.ingest(make_png(seed=5), OWNER).record
    other = fstore.ingest(make_png(seed=6), OWNER).record
    fstore.layout.sidecar_path(rec).unlink()  # projection without a sidecar, bytes in the blob
    fstore.trash(OWNER, other.id)
    fstore.purge(OWNER, other.id)  # its blob is now named by no record
    (fstore.layout.record_dir(other, trashed=False) / ".x.png.0123456789ab.tmp").write_bytes(b"x")
    root = str(fstore.layout.root)
    res = runner.invoke(main, ["--root", root, "reindex", "--json"], catch_exceptions=False)
    assert res.exit_code == 0
    body = json.loads(res.output)
    assert sorted({o["kind"] for o in body["orphans"]}) == ["orphan_projection", "orphan_thumb", "stray_temp"]
    assert body["orphan_blobs"]["count"] == 2 and body["records"] == 0
    res = runner.invoke(main, ["--root", root, "reindex", "--repair", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert all(o["repaired"] for o in json.loads(res.output)["orphans"])
    assert not fstore.layout.image_path(rec).exists()
    assert fstore.blobs.has(rec.sha256)  # orphan blobs are left to gc
    assert fsck.check(Store(fstore.config)).clean


def test_an_old_id_another_user_holds_gets_a_fresh_id(fstore):
    """Ids are unique store-wide: an old app's JSON id (or an id-like name) taken elsewhere is not reused."""
    theirs = fstore.ingest(make_png(seed=50), user(4)).record
    day = fstore.layout.outputs / "users" / OWNER / "2026" / "11" / "21"
    day.mkdir(parents=True)
    (day / "job-7.png").write_bytes(make_png(seed=51))
    (day / "job-7.json").write_text(json.dumps({"id": theirs.id, "prompt": "same id, another picture"}))
    (day / f"{theirs.id}.png").write_bytes(make_png(seed=52))
    report = adopt.adopt_tree(fstore)
    assert [i.status for i in report.items] == ["adopted", "adopted"]
    ours = Store(fstore.config).index(OWNER).records
    assert len(ours) == 2 and theirs.id not in ours
    assert Store(fstore.config).find(theirs.id) == theirs  # the other user's record is untouched
    assert adopt.adopt_tree(fstore).items == [] and len(Store(fstore.config).index(OWNER).records) == 2
    assert fsck.check(fstore).clean


def test_adopted_files_keep_their_day_and_their_old_url_redirects(config, client, store):
    owner = user(8)
    day = store.layout.outputs / "users" / owner / "2026" / "10" / "02"
    day.mkdir(parents=True)
    dated = day / "ComfyUI_0001.png"
    dated.write_bytes(make_png(seed=81))  # copied today: its mtime is today, its path says 2 October
    undated = store.layout.outputs / "users" / owner / "old pics" / "keeper.png"
    undated.parent.mkdir(parents=True)
    undated.write_bytes(make_png(seed=82, text={"Creation Time": "Sat, 02 Oct 2021 10:00:00 +0000"}))
    plain = store.layout.outputs / "users" / owner / "misc" / "plain.png"
    plain.parent.mkdir(parents=True)
    plain.write_bytes(make_png(seed=83))
    os.utime(plain, (1_700_000_000, 1_700_000_000))

    report = adopt.adopt_tree(store)
    assert report.count("adopted") == 3, report.as_dict()
    records = {r.original_filename: r for r in Store(config).index(owner).records.values()}
    first, second, third = records["ComfyUI_0001.png"], records["keeper.png"], records["plain.png"]
    assert first.created_at.startswith("2026-10-02T")
    assert second.created_at.startswith("2021-10-02T10:00:00")  # the PNG's own creation time
    assert third.created_at.startswith("2023-11-14T22:13:20")  # no day in the path, no creation time: mtime
    assert first.legacy_path == f"users/{owner}/2026/10/02/ComfyUI_0001.png"
    assert json.loads(store.layout.sidecar_path(first).read_text())["legacy_path"] == first.legacy_path
    new = store.layout.image_path(first)
    assert new.parent == day and not dated.exists()

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # /outputs answers the owner or the admin
    old_url = f"/outputs/users/{owner}/2026/10/02/ComfyUI_0001.png"
    resp = client.get(old_url, headers=admin)
    assert resp.status_code == 301
    assert resp.headers["Location"].endswith(store.layout.rel_url(new))
    assert client.get(resp.headers["Location"], headers=admin).status_code == 200
    assert client.get(old_url).status_code == 404  # a stranger learns nothing from an old URL either
    moved = client.get(f"/outputs/users/{owner}/old%20pics/keeper.png", headers=admin)
    assert moved.status_code == 301 and moved.headers["Location"].endswith(store.layout.rel_url(store.layout.image_path(second)))
    # Trashed: the old URL answers 404 like the new one.
    store.trash(owner, first.id)
    gone = client.get(old_url, headers=admin)
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/outputs/users/{owner}/2026/10/02/nothing.png", headers=admin).status_code == 404
