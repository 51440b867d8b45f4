"""fsck: each kind of damage is found, and repaired without losing data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from casvault import fsck
from casvault.blobs import digest
from casvault.config import Config
from casvault.records import decode_record
from casvault.store import Store
from cli import main
from tests.conftest import ROOT, make_jpeg, make_png, user

OWNER = user(1)


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast), hardlink projections where the filesystem allows."""
    return Store(config.with_(fsync=False))


def kinds(report: fsck.Report) -> list[str]:
    return sorted(p.kind for p in report.problems)


def crash(store: Store, point: str, code: str) -> None:
    """Run ``code`` (with ``store`` and ``OWNER`` bound) in a subprocess that dies at ``point``, like kill -9."""
    prelude = (
        "from casvault.config import Config; from casvault.store import Store; from tests.conftest import *; "
        f"store = Store(Config(root={str(store.layout.root)!r}, fsync=False, thumb_size=64)); OWNER = {OWNER!r}; "
    )
    env = {**os.environ, "CASVAULT_FAULTS": f"{point}=exit"}
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr


def repaired_clean(store: Store) -> fsck.Report:
    report = fsck.check(store, repair=True)
    assert report.remaining == [], [p.as_dict() for p in report.remaining]
    assert fsck.check(store).clean
    return report


def test_clean_store_is_clean_and_cli_exits_0(fstore, runner):
    fstore.ingest(make_png(seed=1), OWNER, prompt="a")
    r = fstore.ingest(make_jpeg(seed=2), OWNER, "input").record
    fstore.trash(OWNER, r.id)
    report = fsck.check(fstore, scrub=True)
    assert report.clean and report.problems == []
    assert report.checked["records"] == 2 and report.checked["scrubbed"] == 2
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "fsck", "--scrub", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["clean"] is True and body["problems"] == [] and body["checked"]["users"] == 1


def test_missing_projection_is_relinked_to_the_blob(fstore, runner):
    rec = fstore.ingest(make_png(seed=3), OWNER).record
    image = fstore.layout.image_path(rec)
    image.unlink()
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "fsck", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    assert [p["kind"] for p in json.loads(res.output)["problems"]] == ["projection_missing"]
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "fsck", "--repair", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["problems"][0]["repaired"] is True
    assert image.read_bytes() == fstore.blobs.read(rec.sha256)
    if fstore.link_mode == "hardlink":
        assert os.path.samefile(image, fstore.blobs.path(rec.sha256))


def test_missing_thumbnail_is_made_again(fstore):
    rec = fstore.ingest(make_png(seed=4, width=100, height=50), OWNER).record
    thumb = fstore.layout.thumb_path(rec)
    thumb.unlink()
    assert kinds(fsck.check(fstore)) == ["thumb_missing"]
    repaired_clean(fstore)
    assert thumb.stat().st_size > 0


def test_missing_blob_comes_back_from_its_projection(fstore):
    rec = fstore.ingest(make_png(seed=5), OWNER).record
    blob = fstore.blobs.path(rec.sha256)
    os.chmod(blob.parent, 0o755)
    blob.unlink()
    assert kinds(fsck.check(fstore)) == ["blob_missing"]
    repaired_clean(fstore)
    assert digest(blob.read_bytes()) == rec.sha256


def test_blob_and_projection_gone_is_reported_lost_and_sidecar_kept_aside(fstore):
    keep = fstore.ingest(make_png(seed=6), OWNER).record
    lost = fstore.ingest(make_png(seed=7), OWNER).record
    fstore.blobs.path(lost.sha256).unlink()
    fstore.layout.image_path(lost).unlink()
    report = repaired_clean(fstore)
    problem = next(p for p in report.problems if p.kind == "blob_missing")
    # a lost image is never "repaired": the run says so, names user and id, and is not clean
    assert problem.id == lost.id and problem.user == OWNER and "lost" in problem.detail
    assert problem.lost and not problem.repaired and not report.clean
    assert report.as_dict()["lost"] == [{"user": OWNER, "id": lost.id}]
    assert not fstore.layout.sidecar_path(lost).exists()
    kept = list((fstore.layout.root / "quarantine" / "records" / OWNER).glob(f"{lost.id}.*.json"))
    assert len(kept) == 1 and decode_record(kept[0].read_bytes()).sha256 == lost.sha256
    assert set(fstore.index(OWNER).records) == {keep.id}


def test_scrub_quarantines_a_damaged_blob(fstore, runner):
    rec = fstore.ingest(make_png(seed=8), OWNER).record
    blob = fstore.blobs.path(rec.sha256)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF  # same size: only a re-hash finds it
    blob.write_bytes(bytes(data))
    assert fsck.check(fstore).clean  # without scrub the size matches
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "fsck", "--scrub", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    problems = json.loads(res.output)["problems"]
    assert "blob_damaged" in [p["kind"] for p in problems]
    assert not blob.exists()
    aside = list((fstore.layout.root / "quarantine" / "sha256").glob(rec.sha256 + ".*"))
    assert any(p.read_bytes() == bytes(data) for p in aside)  # kept, never deleted


def test_scrub_with_sha256_and_copy_projection_recovers(config):
    store = Store(config.with_(fsync=False, link_mode="copy"))
    rec = store.ingest(make_png(seed=9), OWNER).record
    blob = store.blobs.path(rec.sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    report = fsck.check(store, scrub=True, use_sha256=True, repair=True)
    assert "blob_damaged" in kinds(report)
    assert report.remaining == []
    assert digest(blob.read_bytes()) == rec.sha256  # the copy held good bytes


def test_torn_manifest_tail_is_cut(fstore):
    fstore.ingest(make_png(seed=10), OWNER)
    path = fstore.layout.manifest_path(OWNER)
    with open(path, "ab") as fh:
        fh.write(b'{"event":"trash","at":"2026-')
    assert kinds(fsck.check(fstore)) == ["manifest_torn"]
    repaired_clean(fstore)
    assert path.read_bytes().endswith(b"\n")


def test_bad_line_in_the_middle_is_rebuilt_from_sidecars(fstore):
    a = fstore.ingest(make_png(seed=11), OWNER).record
    b = fstore.ingest(make_png(seed=12), OWNER).record
    path = fstore.layout.manifest_path(OWNER)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(lines[0] + b"\n" + b"garbage\n" + b"\n".join(lines[1:]))
    assert "manifest_corrupt" in kinds(fsck.check(fstore))
    repaired_clean(fstore)
    assert set(fstore.index(OWNER).records) == {a.id, b.id}


@pytest.mark.parametrize("point", ["trash.after_sidecar", "trash.after_move_png", "trash.after_move_webp"])
def test_half_done_trash_is_finished(fstore, point):
    rec = fstore.ingest(make_png(seed=13), OWNER).record
    crash(fstore, point, f"store.trash(OWNER, {rec.id!r})")
    assert "misplaced" in kinds(fsck.check(fstore))
    repaired_clean(fstore)
    now = decode_record(fstore.layout.sidecar_path(rec, trashed=True).read_bytes())
    assert now.status == "trash"
    image, sidecar, thumb = fstore.layout.paths(now)
    assert image.is_file() and thumb.is_file() and sidecar.is_file()
    assert not any(p.exists() for p in fstore.layout.paths(rec, trashed=False))
    assert Store(fstore.config).get(OWNER, rec.id).status == "trash"


def test_half_done_restore_is_finished(fstore):
    rec = fstore.ingest(make_png(seed=14), OWNER).record
    fstore.trash(OWNER, rec.id)
    crash(fstore, "restore.after_move_png", f"store.restore(OWNER, {rec.id!r})")
    repaired_clean(fstore)
    assert Store(fstore.config).get(OWNER, rec.id).status == "active"
    assert fstore.layout.image_path(rec, trashed=False).is_file()


def test_unfinished_purge_is_finished(fstore):
    keep = fstore.ingest(make_png(seed=15), OWNER).record
    rec = fstore.ingest(make_png(seed=16), OWNER).record
    fstore.trash(OWNER, rec.id)
    crash(fstore, "purge.after_manifest", f"store.purge(OWNER, {rec.id!r})")
    assert "purge_unfinished" in kinds(fsck.check(fstore))
    repaired_clean(fstore)
    assert not any(os.path.lexists(p) for p in fstore.layout.paths(rec))
    assert set(Store(fstore.config).index(OWNER).records) == {keep.id}


def test_ingest_crash_before_manifest_becomes_a_record(fstore):
    crash(fstore, "ingest.before_manifest", "store.ingest(make_png(seed=17), OWNER)")
    assert kinds(fsck.check(fstore)) == ["manifest_missing"]
    repaired_clean(fstore)
    assert len(Store(fstore.config).index(OWNER).records) == 1


def test_meta_crash_manifest_follows_the_sidecar(fstore):
    rec = fstore.ingest(make_png(seed=18), OWNER).record
    crash(fstore, "meta.after_sidecar", f"store.update_meta(OWNER, {rec.id!r}, tags=['x'], favorite=True)")
    assert kinds(fsck.check(fstore)) == ["manifest_stale"]
    repaired_clean(fstore)
    got = Store(fstore.config).get(OWNER, rec.id)
    assert got.tags == ["x"] and got.favorite is True


def test_projection_without_sidecar_removed_when_blob_has_the_bytes(fstore):
    rec = fstore.ingest(make_png(seed=19), OWNER).record
    fstore.layout.sidecar_path(rec).unlink()
    found = kinds(fsck.check(fstore))
    assert "orphan_projection" in found and "orphan_thumb" in found and "manifest_extra" in found
    repaired_clean(fstore)
    assert not fstore.layout.image_path(rec).exists()
    assert fstore.blobs.has(rec.sha256)  # bytes stay until gc


def test_projection_without_sidecar_or_blob_is_adopted(fstore):
    rec = fstore.ingest(make_png(seed=20), OWNER).record
    image = fstore.layout.image_path(rec)
    data = image.read_bytes()
    fstore.layout.sidecar_path(rec).unlink()
    fstore.blobs.path(rec.sha256).unlink()
    repaired_clean(fstore)
    again = Store(fstore.config).get(OWNER, rec.id)  # the id of the file name is kept
    assert again.sha256 == rec.sha256 and fstore.blobs.read(rec.sha256) == data


def test_stray_temps_are_removed(fstore):
    rec = fstore.ingest(make_png(seed=21), OWNER).record
    temp = fstore.layout.record_dir(rec) / f".{rec.id}.png.abcdef123456.tmp"
    temp.write_bytes(b"half")
    old = fstore.layout.tmp / "0123.tmp"
    old.write_bytes(b"old")
    os.utime(old, (1, 1))
    young = fstore.layout.tmp / "4567.tmp"
    young.write_bytes(b"in flight")
    assert kinds(fsck.check(fstore)) == ["stray_temp", "stray_temp"]
    repaired_clean(fstore)
    assert not temp.exists() and not old.exists() and young.exists()


def test_user_option_and_errors(fstore, runner, tmp_path):
    a = fstore.ingest(make_png(seed=22), OWNER).record
    fstore.ingest(make_png(seed=23), user(2))
    fstore.layout.image_path(a).unlink()
    root = str(fstore.layout.root)
    res = runner.invoke(main, ["--root", root, "fsck", "--user", user(2)], catch_exceptions=False)
    assert res.exit_code == 0 and "clean" in res.output
    res = runner.invoke(main, ["--root", root, "fsck", "--user", OWNER], catch_exceptions=False)
    assert res.exit_code == 1 and "projection_missing" in res.output
    res = runner.invoke(main, ["--root", root, "fsck", "--user", "bob"], catch_exceptions=False)
    assert res.exit_code == 2 and "not a user id" in res.output
    res = runner.invoke(main, ["--root", str(tmp_path / "nowhere"), "fsck"], catch_exceptions=False)
    assert res.exit_code == 1 and "no casvault store at" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_second_fsck_is_refused_while_one_runs(fstore, runner):
    with fstore.locks.job("fsck"):
        res = runner.invoke(main, ["--root", str(fstore.layout.root), "fsck"], catch_exceptions=False)
    assert res.exit_code == 75
    assert "locked by another process" in res.output


def test_another_programs_file_named_like_an_id_is_adopted_even_when_its_bytes_are_stored(fstore, runner):
    """A sidecar-less ``<32 hex>.png`` that is not a link to a blob is someone's picture: adopted, never deleted."""
    data = make_png(seed=30)
    fstore.ingest(data, OWNER)  # the same picture is already a blob (another user's)
    other = user(2)
    day = fstore.layout.outputs / "users" / other / "2024" / "03" / "04"
    day.mkdir(parents=True)
    dropped = day / ("ab" * 16 + ".png")
    dropped.write_bytes(data)
    report = repaired_clean(fstore)
    assert [p.kind for p in report.problems] == ["orphan_projection"] and "adopted" in report.problems[0].detail
    record = Store(fstore.config).get(other, "ab" * 16)  # adopted under the id of its name
    assert record.sha256 == digest(data) and fstore.layout.image_path(record).read_bytes() == data
    second = day / ("cd" * 16 + ".png")  # reindex --repair takes the same path
    second.write_bytes(data)
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "reindex", "--repair", "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert Store(fstore.config).get(other, "cd" * 16).sha256 == digest(data)


def test_a_leftover_hardlink_or_symlink_of_a_blob_is_removed(fstore):
    rec = fstore.ingest(make_png(seed=31), OWNER).record
    image = fstore.layout.image_path(rec)
    fstore.layout.sidecar_path(rec).unlink()
    fstore.rebuild_manifest(OWNER)  # the record is gone for good; its projection was left behind
    link = image.with_name("ef" * 16 + ".png")
    link.symlink_to(os.path.relpath(fstore.blobs.path(rec.sha256), link.parent))
    if not os.path.samefile(image, fstore.blobs.path(rec.sha256)):
        image.unlink()  # a copy cannot be told from another program's file: not part of this test
    repaired_clean(fstore)
    assert not os.path.lexists(image) and not os.path.lexists(link)
    assert Store(fstore.config).index(OWNER).records == {} and fstore.blobs.has(rec.sha256)


def test_a_purged_id_that_comes_back_survives_fsck_and_rebuilds(fstore):
    """Adopting the same file again after a purge re-creates the purged (derived) id: it stays."""
    from casvault import adopt

    day = fstore.layout.outputs / "users" / OWNER / "2024" / "01" / "02"
    day.mkdir(parents=True)
    data = make_png(seed=32)
    (day / "old.png").write_bytes(data)
    rid = adopt.adopt_tree(fstore).items[0].id
    fstore.trash(OWNER, rid)
    fstore.purge(OWNER, rid)
    (day / "old.png").write_bytes(data)  # copied back, e.g. by an rsync from the old app
    again = adopt.adopt_tree(fstore).items[0]
    assert (again.status, again.id) == ("adopted", rid)
    repaired_clean(fstore)
    assert Store(fstore.config).get(OWNER, rid).status == "active"
    fstore.rebuild_manifest(OWNER)
    assert Store(fstore.config).get(OWNER, rid).status == "active"
    assert fstore.layout.image_path(Store(fstore.config).get(OWNER, rid)).read_bytes() == data


def test_repair_leaves_a_running_gcs_set_aside_blobs_alone(fstore):
    from casvault import gc

    rec = fstore.ingest(make_png(seed=33), OWNER).record
    fstore.trash(OWNER, rec.id)
    fstore.purge(OWNER, rec.id)
    aside = fstore.layout.tmp / "gc" / rec.sha256
    aside.parent.mkdir(parents=True)
    os.replace(fstore.blobs.path(rec.sha256), aside)  # what a gc does before it re-checks the manifests
    with fstore.locks.job("gc"):  # ... while it still runs
        report = fsck.check(fstore, repair=True)
        assert report.clean and report.notes == [fsck.GC_RUNNING]
        assert aside.exists() and not fstore.blobs.has(rec.sha256)
        assert fsck.check(fstore).clean
    assert kinds(fsck.check(fstore)) == ["gc_unfinished"]  # the gc died: now it is fsck's to finish
    repaired_clean(fstore)
    assert fstore.blobs.has(rec.sha256) and not gc.pending(fstore)


# --- hostile sidecars and foreign files (issue 12 point 8, issue 11 point 6) -------------------------


def plant_sidecar(store: Store, like, **changes) -> str:
    """A crafted sidecar beside ``like``'s, with a new id and fields changed; returns its id."""
    import uuid

    rid = uuid.uuid4().hex
    data = {**json.loads(store.layout.sidecar_path(like).read_bytes()), "id": rid,
            "thumb": f"thumb/{rid}.webp", **changes}
    (store.layout.sidecar_path(like).parent / f"{rid}.json").write_text(json.dumps(data))
    return rid


def test_a_crafted_sidecar_is_quarantined_and_listings_never_500(app, config, runner):
    """A garbage date, or a claim on another user's blob: reported, set aside, no traceback, listings 200."""
    from tests.api_helpers import ADMIN, new_client, visitor

    client = new_client(app)
    me = visitor(client)
    store = Store(config, create=False)
    mine = store.ingest(make_png(seed=80), me).record
    theirs = store.ingest(make_png(seed=81), user(2)).record
    garbage = plant_sidecar(store, mine, created_at="garbage")
    stolen = plant_sidecar(store, mine, sha256=theirs.sha256, bytes=theirs.bytes)
    # the garbage record also reached the manifest (as an older reindex let it): listings must still answer
    line = json.loads(store.layout.manifest_path(me).read_text().splitlines()[0])
    line["record"] = {**line["record"], "id": garbage, "thumb": f"thumb/{garbage}.webp", "created_at": "garbage"}
    with open(store.layout.manifest_path(me), "a") as fh:
        fh.write(json.dumps(line) + "\n")
    assert client.get("/api/v1/images").status_code == 200
    assert client.get("/api/v1/admin/images", headers=ADMIN).status_code == 200
    ids = [i["id"] for i in client.get("/api/v1/images").get_json()["items"]]
    assert garbage not in ids
    res = runner.invoke(main, ["--root", str(config.root), "fsck", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    bad = {p["id"]: p["detail"] for p in json.loads(res.output)["problems"] if p["kind"] == "bad_sidecar"}
    assert "created_at" in bad[garbage] and "another user" in bad[stolen]
    res = runner.invoke(main, ["--root", str(config.root), "reindex", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    aside = {p["id"] for p in json.loads(res.output)["set_aside"] if p["repaired"]}
    assert aside == {garbage, stolen}
    kept = sorted(p.name.split(".")[0] for p in (config.root / "quarantine" / "records" / me).iterdir())
    assert kept == sorted([garbage, stolen])
    fresh = Store(config, create=False)
    assert set(fresh.index(me).records) == {mine.id}  # the claim on user 2's blob was not accepted
    for args in (["reindex", "--adopt"], ["fsck"]):
        res = runner.invoke(main, ["--root", str(config.root), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    assert client.get("/api/v1/images").status_code == 200
    assert client.get("/api/v1/admin/images", headers=ADMIN).status_code == 200


def test_foreign_files_are_reported_once_set_aside_and_the_next_fsck_is_clean(fstore, runner):
    """Issue 11 point 6: notes.txt and outputs/users/badname/ under outputs/; nothing deleted."""
    rec = fstore.ingest(make_png(seed=82), OWNER).record
    root = fstore.layout.root
    notes = fstore.layout.image_path(rec).parent / "notes.txt"
    notes.write_text("shopping list")
    badname = root / "outputs" / "users" / "badname"
    badname.mkdir()
    (badname / "x.png").write_bytes(make_png(seed=83))
    loose = root / "outputs" / "readme.md"
    loose.write_text("hello")
    res = runner.invoke(main, ["--root", str(root), "fsck", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    foreign = {p["path"]: p["detail"] for p in json.loads(res.output)["problems"] if p["kind"] == "foreign"}
    assert set(foreign) == {str(notes), str(badname), str(loose)}  # each once
    assert "PNG, JPEG or WebP" in foreign[str(notes)] and "not a user id" in foreign[str(badname)]
    res = runner.invoke(main, ["--root", str(root), "fsck", "--repair"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "0 left after repair" in res.output
    res = runner.invoke(main, ["--root", str(root), "fsck"], catch_exceptions=False)
    assert res.exit_code == 0 and res.output.startswith("clean"), res.output
    aside = root / "quarantine" / "foreign"
    moved = {p.relative_to(p.parents[len(p.relative_to(aside).parts) - 2]).as_posix(): p
             for p in aside.rglob("*") if not p.name.endswith(".note")}
    assert any(k.endswith("notes.txt") and v.read_text() == "shopping list" for k, v in moved.items())
    assert any(p.name == "x.png" and p.read_bytes() == make_png(seed=83) for p in aside.rglob("x.png"))
    notes_note = next(aside.rglob("notes.txt.note")).read_text()
    assert "PNG, JPEG or WebP" in notes_note and "outputs/users" in notes_note
    assert fstore.layout.image_path(rec).exists()


def test_a_sidecar_with_bad_fields_is_quarantined_by_reindex(fstore, runner):
    """Reindex validates what it indexes: a bad status, digest or tag list is set aside, not listed."""
    rec = fstore.ingest(make_png(seed=84), OWNER).record
    bad = {
        plant_sidecar(fstore, rec, status="gone"): "status",
        plant_sidecar(fstore, rec, blake3="../../etc/passwd"): "blake3",
        plant_sidecar(fstore, rec, tags=[f"t{i}" for i in range(20_001)]): "tags",
        plant_sidecar(fstore, rec, bytes=-1): "bytes",
    }
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "reindex", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    aside = {p["id"]: p["detail"] for p in json.loads(res.output)["set_aside"]}
    assert set(aside) == set(bad) and all(field in aside[rid] for rid, field in bad.items())
    assert set(Store(fstore.config).index(OWNER).records) == {rec.id}
    assert fsck.check(Store(fstore.config)).clean
