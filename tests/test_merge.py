"""users merge: a guest's records move to a member once, even when interrupted at any step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from casvault import fsck, merge
from casvault.config import Config
from casvault.store import Store
from cli import main
from tests.conftest import ADMIN_TOKEN, ROOT, make_jpeg, make_png, user

GUEST = user(7)
MEMBER = "u-alice"
POINTS = [
    "merge.after_journal",
    "merge.after_sidecar",
    "merge.after_projection",
    "merge.after_thumb",
    "merge.after_member_manifest",
    "merge.after_guest_sidecar",
    "merge.after_guest_files",
    "merge.after_guest_manifest",
]


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast)."""
    return Store(config.with_(fsync=False))


def populate(store: Store) -> dict[str, str]:
    """A guest with an image, a trashed image, an input and a control; a member with one image."""
    a = store.ingest(make_png(seed=1), GUEST, prompt="guest a", tags=["x"]).record
    b = store.ingest(make_png(seed=2), GUEST, prompt="guest b").record
    store.trash(GUEST, b.id)
    c = store.ingest(make_jpeg(seed=3), GUEST, "input").record
    d = store.ingest(make_png(seed=4), GUEST, "control").record
    m = store.ingest(make_png(seed=1), MEMBER, prompt="the member's own, same bytes as a").record
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id, "m": m.id}


def assert_merged(root, ids: dict[str, str]) -> None:
    """Every record exactly once, under the member, with its status; nothing left of the guest."""
    store = Store(Config(root=root, fsync=False, thumb_size=64))
    member = store.index(MEMBER).records
    assert set(member) == set(ids.values())
    assert store.index(GUEST).records == {}
    assert [r for _, r in store.scan_sidecars(GUEST)] == []
    seen = [r.id for _, r in store.scan_sidecars(MEMBER)]
    assert sorted(seen) == sorted(ids.values())
    assert member[ids["b"]].status == "trash" and member[ids["a"]].status == "active"
    assert member[ids["a"]].tags == ["x"] and member[ids["c"]].kind == "input"
    for record in member.values():
        image, sidecar, thumb = store.layout.paths(record)
        assert record.owner == MEMBER
        assert image.read_bytes() == store.blobs.read(record.sha256)
        assert thumb.is_file() and sidecar.is_file()
        if record.status == "trash":
            assert image.is_relative_to(store.layout.trash)
    for trashed in (False, True):
        base = store.layout.user_base(GUEST, trashed)
        assert not base.exists() or not any(p.is_file() for p in base.rglob("*"))
    assert not merge.journal_path(store, GUEST).exists()
    report = fsck.check(store)
    assert report.clean, [p.as_dict() for p in report.problems]


def test_merge_moves_everything_and_keeps_both_histories(fstore, runner):
    ids = populate(fstore)
    root = str(fstore.layout.root)
    res = runner.invoke(main, ["--root", root, "users", "merge", GUEST, MEMBER, "--dry-run", "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 0
    assert json.loads(res.output)["records"] == 4 and len(fstore.index(GUEST).records) == 4
    res = runner.invoke(main, ["--root", root, "users", "merge", GUEST, MEMBER, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["moved"] == 4 and body["trash"] == 1
    assert_merged(fstore.layout.root, ids)
    if fstore.link_mode == "hardlink":
        a = fstore.get(MEMBER, ids["a"])
        assert os.path.samefile(fstore.layout.image_path(a), fstore.blobs.path(a.sha256))
    res = runner.invoke(main, ["--root", root, "users", "merge", GUEST, MEMBER, "--json"], catch_exceptions=False)
    assert res.exit_code == 0 and json.loads(res.output)["moved"] == 0


def test_bad_ids_are_refused(fstore, runner):
    root = str(fstore.layout.root)
    for args, message in (
        ([MEMBER, "u-bob"], "must be a guest"),
        ([GUEST, user(8)], "must be a member"),
        ([GUEST, "Bob"], "member_id must be"),
    ):
        res = runner.invoke(main, ["--root", root, "users", "merge", *args], catch_exceptions=False)
        assert res.exit_code == 1 and message in res.output, res.output


def crash_merge(root, point: str) -> None:
    code = (
        "from casvault.config import Config; from casvault.store import Store; from casvault import merge; "
        f"merge.merge_users(Store(Config(root={str(root)!r}, fsync=False, thumb_size=64)), {GUEST!r}, {MEMBER!r})"
    )
    env = {**os.environ, "CASVAULT_FAULTS": point}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr


# every step of the first record, and of the third (after two finished records)
CASES = [(p, 1) for p in POINTS] + [(p, 3) for p in POINTS[1:]]


@pytest.mark.parametrize(("point", "nth"), CASES, ids=[f"{p}@{n}" for p, n in CASES])
def test_merge_interrupted_then_rerun(fstore, point, nth):
    ids = populate(fstore)
    crash_merge(fstore.layout.root, f"{point}=exit@{nth}")
    assert merge.journal_path(fstore, GUEST).exists()
    store = Store(fstore.config)
    merge.merge_users(store, GUEST, MEMBER)
    assert_merged(fstore.layout.root, ids)


@pytest.mark.parametrize("point", ["merge.after_member_manifest", "merge.after_guest_sidecar"])
def test_fsck_repair_finishes_an_interrupted_merge(fstore, point):
    ids = populate(fstore)
    crash_merge(fstore.layout.root, f"{point}=exit@2")
    report = fsck.check(Store(fstore.config))
    assert "merge_unfinished" in [p.kind for p in report.problems] and not report.clean
    repaired = fsck.check(Store(fstore.config), repair=True)
    assert repaired.remaining == []
    assert_merged(fstore.layout.root, ids)


def test_another_member_is_refused_while_a_merge_is_unfinished(fstore):
    populate(fstore)
    crash_merge(fstore.layout.root, "merge.after_sidecar=exit")
    from casvault.errors import Conflict

    with pytest.raises(Conflict):
        merge.merge_users(Store(fstore.config), GUEST, "u-carol")


def test_admin_endpoint_merges(config, store):
    ids = populate(store)
    from web import create_app

    app = create_app(config)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    resp = client.post(f"/api/v1/admin/users/{GUEST}/merge", json={"member_id": MEMBER})
    assert resp.status_code == 401
    resp = client.post(f"/api/v1/admin/users/{GUEST}/merge", json={"member_id": 5}, headers=auth)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_request"
    resp = client.post(f"/api/v1/admin/users/{GUEST}/merge", json={"member_id": user(9)}, headers=auth)
    assert resp.status_code == 400
    resp = client.post(f"/api/v1/admin/users/{GUEST}/merge", json={"member_id": MEMBER}, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["moved"] == 4
    assert_merged(config.root, ids)
    listing = client.get(f"/api/v1/admin/images?user_id={MEMBER}&include=all", headers=auth).get_json()
    assert {i["id"] for i in listing["items"]} == {ids["a"], ids["b"], ids["m"]}
