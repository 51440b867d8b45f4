"""backup and restore by day partition: same records and bytes back; unchanged days add nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import blake3
import pytest

from casvault import fsck
from casvault.config import Config
from casvault.records import to_dict
from casvault.store import Store
from cli import main
from tests.conftest import make_jpeg, make_png, user

A, B = user(1), "u-bob"


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast)."""
    return Store(config.with_(fsync=False))


def populate(store: Store) -> None:
    """Records on three days, two users, one trashed, one blob shared."""
    store.ingest(make_png(seed=1), A, prompt="day 1", created_at="2026-11-01T10:00:00+00:00", tags=["t"])
    r = store.ingest(make_png(seed=2), A, created_at="2026-11-02T23:30:00+00:00").record
    store.trash(A, r.id)
    store.ingest(make_png(seed=1), B, created_at="2026-11-02T01:00:00+00:00")
    store.ingest(make_jpeg(seed=3), B, "input", created_at="2026-11-03T12:00:00+00:00")
    store.ingest(make_png(seed=4), B, created_at="2026-11-10T12:00:00+00:00")  # outside the range


def snapshot(store: Store, owners=(A, B)) -> dict:
    """Every record (as a dict) with its image bytes."""
    out = {}
    for owner in owners:
        for record in store.index(owner).records.values():
            out[record.id] = (to_dict(record), store.layout.image_path(record).read_bytes())
    return out


def files_under(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


def test_backup_wipe_restore_gives_the_same_records_and_bytes(fstore, runner, tmp_path):
    populate(fstore)
    root = fstore.layout.root
    out = tmp_path / "backup"
    res = runner.invoke(main, ["--root", str(root), "backup", "--from", "2026-11-01", "--to", "2026-11-03",
                               "--out", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["records"] == 4 and body["archives_written"] == 3 and body["blobs_written"] == 3
    assert sorted(p.name for p in (out / "days").iterdir()) == [
        f"2026-11-0{d}.{ext}" for d in (1, 2, 3) for ext in ("sums", "tar")
    ]
    before = {k: v for k, v in snapshot(fstore).items() if v[0]["created_at"] < "2026-11-04"}
    shutil.rmtree(root)
    Store(fstore.config)  # an empty store
    res = runner.invoke(main, ["--root", str(root), "restore", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["restored"] == 4
    after = Store(fstore.config)
    assert snapshot(after) == before
    assert any(r[0]["status"] == "trash" for r in before.values())
    report = fsck.check(after)
    assert report.clean, [p.as_dict() for p in report.problems]


def test_second_backup_of_unchanged_days_writes_nothing(fstore, tmp_path):
    from casvault import backup

    populate(fstore)
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-01", "2026-11-03")
    first = files_under(out)
    again = backup.backup(fstore, out, "2026-11-01", "2026-11-03")
    assert again.archives_written == 0 and again.blobs_written == 0 and again.bytes_written == 0
    assert again.archives_unchanged == 3
    assert files_under(out) == first  # not even rewritten
    fstore.update_meta(A, next(iter(fstore.index(A).records)), tags=["new"])
    third = backup.backup(fstore, out, "2026-11-01", "2026-11-03")
    assert third.archives_written == 1 and third.blobs_written == 0


def test_restore_into_a_live_root_leaves_existing_records_alone(fstore, tmp_path):
    from casvault import backup

    populate(fstore)
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-01", "2026-11-03", owner=B)
    assert sorted(p.name for p in (out / "days").glob("*.tar")) == ["2026-11-02@u-bob.tar", "2026-11-03@u-bob.tar"]
    victim = next(r for r in fstore.index(B).records.values() if r.kind == "input")
    fstore.trash(B, victim.id)
    fstore.purge(B, victim.id)
    report = backup.restore(fstore, out)
    assert report.existing == 1 and report.restored == 0 and report.purged == 1
    fresh = Store(Config(root=tmp_path / "fresh", fsync=False, thumb_size=64))
    report = backup.restore(fresh, out, "2026-11-03", "2026-11-03")
    assert report.restored == 1 and report.days == ["2026-11-03@u-bob"]


def test_damaged_backup_blob_is_refused(fstore, tmp_path, runner):
    from casvault import backup

    populate(fstore)
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-01", "2026-11-01")
    blob = next(p for p in (out / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x01")
    fresh_root = tmp_path / "fresh"
    Store(Config(root=fresh_root, fsync=False))
    res = runner.invoke(main, ["--root", str(fresh_root), "restore", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    body = json.loads(res.output)
    assert body["restored"] == 0 and body["failed"][0]["reason"] == "blob damaged in the backup"
    fresh = Store(Config(root=fresh_root, fsync=False))
    assert list(fresh.blobs.iter()) == [] and fresh.users() == []  # nothing half-done
    tar = out / "days" / "2026-11-01.tar"
    tar.write_bytes(tar.read_bytes() + b"\0" * 512)
    report = backup.restore(fresh, out)
    assert report.failed[0]["reason"] == "archive does not match its checksum"


def test_bad_arguments(fstore, runner, tmp_path):
    root = str(fstore.layout.root)
    res = runner.invoke(main, ["--root", root, "backup", "--from", "2026-11-31", "--to", "2026-12-01",
                               "--out", str(tmp_path / "b")], catch_exceptions=False)
    assert res.exit_code == 2 and "2026-11-31" in res.output
    res = runner.invoke(main, ["--root", root, "backup", "--from", "2026-11-05", "--to", "2026-11-01",
                               "--out", str(tmp_path / "b")], catch_exceptions=False)
    assert res.exit_code == 1 and "--to is before --from" in res.output
    os.makedirs(tmp_path / "empty")
    res = runner.invoke(main, ["--root", root, "restore", str(tmp_path / "empty")], catch_exceptions=False)
    assert res.exit_code == 1 and "no casvault backup" in res.output


def test_restore_into_a_live_root_does_not_bring_back_what_a_merge_moved(fstore, tmp_path):
    from casvault import backup, merge

    guest, member = user(7), "u-carol"
    rec = fstore.ingest(make_png(seed=20), guest, created_at="2026-11-01T10:00:00+00:00").record
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-01", "2026-11-01")
    merge.merge_users(fstore, guest, member)
    report = backup.restore(fstore, out)
    assert (report.restored, report.moved, report.failed) == (0, 1, [])
    fresh = Store(fstore.config)
    assert fresh.usage(guest).count == 0 and fresh.get(member, rec.id).owner == member
    assert fsck.check(fresh).clean


def test_restore_dry_run_reports_and_writes_nothing(fstore, runner, tmp_path):
    populate(fstore)
    out = tmp_path / "backup"
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "backup", "--from", "2026-11-01", "--to",
                               "2026-11-03", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    fresh_root = tmp_path / "fresh"
    Store(Config(root=fresh_root, fsync=False))
    before = files_under(fresh_root)
    args = ["--root", str(fresh_root), "restore", str(out), "--dry-run"]
    res = runner.invoke(main, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["dry_run"] is True and body["restored"] == 4 and len(body["ids"]) == 4
    assert files_under(fresh_root) == before  # no blob, sidecar, manifest or lock file
    res = runner.invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0 and "4 would restore" in res.output
    res = runner.invoke(main, ["--root", str(fresh_root), "restore", str(out), "--json"], catch_exceptions=False)
    assert sorted(json.loads(res.output)["ids"]) == sorted(body["ids"])


def test_restore_writes_the_blob_under_the_users_lock(fstore, tmp_path):
    """The blob check and write wait for the user's lock (as an ingest's do), so gc's re-check covers them."""
    import threading

    from casvault import backup

    rec = fstore.ingest(make_png(seed=21), A, created_at="2026-11-01T10:00:00+00:00").record
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-01", "2026-11-01")
    fresh = Store(Config(root=tmp_path / "fresh", fsync=False, thumb_size=64))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with fresh.locks.user(A):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    result: list[backup.RestoreReport] = []
    worker = threading.Thread(target=lambda: result.append(backup.restore(fresh, out)))
    worker.start()
    worker.join(0.5)
    try:
        assert not fresh.blobs.has(rec.sha256)  # not written while another writer holds the user's lock
    finally:
        release.set()
        holder.join()
        worker.join(10)
    assert result[0].restored == 1 and fresh.blobs.read(rec.sha256) == make_png(seed=21)


# --- hostile backups and repairs (issues 11 and 12) -------------------------------------------------

EVIL = "u-mallory"


def _b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def craft_backup(out: Path, day: str, members: list[tuple[str, bytes]], blobs: dict[str, bytes],
                 *, claim_size: dict[str, int] | None = None) -> None:
    """A backup folder whose one archive holds the given raw members (any bytes, any claimed sizes)."""
    (out / "days").mkdir(parents=True, exist_ok=True)
    (out / "backup.json").write_bytes(json.dumps({"format": 1, "partition_tz": "UTC"}).encode())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if claim_size and name in claim_size:
                info.size = claim_size[name]  # a header claiming bytes that never follow
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    tar_path = out / "days" / f"{day}.tar"
    tar_path.write_bytes(raw)
    sums = {f"days/{day}.tar": _b3(raw)}
    for sha, data in blobs.items():
        path = out / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sums[path.relative_to(out).as_posix()] = _b3(data)
    tar_path.with_suffix(".sums").write_text("".join(f"{h}  {p}\n" for p, h in sorted(sums.items())))


def record_dict(owner: str, data: bytes, n: int, **changes) -> dict:
    """A plausible backup record of ``data`` for ``owner``, with fields changed."""
    rid = f"{n:032x}"
    base = {
        "kind": "generated", "id": rid, "owner": owner, "original_filename": f"img{n}.png", "mime": "image/png",
        "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "created_at": "2026-11-01T10:00:00.000+00:00",
        "status": "active", "thumb": f"thumb/{rid}.webp", "tags": ["ok"], "workflow_id": None,
        "aspect_ratio": None, "seed": 1, "prompt": "p",
    }
    base.update(changes)
    return base


def member(record: dict) -> tuple[str, bytes]:
    return f"records/{record['owner']}/{record['id']}.json", json.dumps(record).encode()


def test_restore_refuses_each_bad_record_with_its_reason_and_restores_the_good_ones(fstore, runner, tmp_path):
    """Issue 12 point 7: one bad record no longer aborts a restore, and nothing bad is accepted."""
    victim = fstore.ingest(make_png(seed=90), A, created_at="2026-11-01T09:00:00+00:00").record
    good1, good2 = make_png(seed=91), make_png(seed=92)
    html = b"<html><script>alert(1)</script></html>"
    img = make_png(seed=93)
    bad = {
        "garbage date": record_dict(EVIL, img, 2, created_at="not-a-date"),
        "year 9999": record_dict(EVIL, img, 3, created_at="9999-12-31T23:59:59-12:00"),
        "traversal sha": record_dict(EVIL, img, 4, sha256="../../etc/passwd"),
        "CRLF name": record_dict(EVIL, img, 5, original_filename="a\r\nSet-Cookie: x.png"),
        "control tag": record_dict(EVIL, img, 6, tags=["bad\x07tag"]),
        "20001 tags": record_dict(EVIL, img, 7, tags=[f"t{i}" for i in range(20_001)]),
        "5 MB prompt": record_dict(EVIL, img, 8, prompt="x" * 5_000_000),
        "status gone": record_dict(EVIL, img, 9, status="gone"),
        "html as png": record_dict(EVIL, html, 10),
        "claims a blob": record_dict(EVIL, b"", 11, sha256=victim.sha256, bytes=victim.bytes),
    }
    records = [record_dict(B, good1, 1), *bad.values(), record_dict(B, good2, 12)]
    blobs = {hashlib.sha256(d).hexdigest(): d for d in (good1, good2, img, html)}
    out = tmp_path / "hostile-backup"
    craft_backup(out, "2026-11-01", [member(r) for r in records], blobs)
    res = runner.invoke(main, ["--root", str(fstore.layout.root), "restore", str(out), "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 1, res.output
    body = json.loads(res.output)
    assert sorted(body["ids"]) == [f"{1:032x}", f"{12:032x}"]  # the good records before and after the bad ones
    failed = {f.get("id") or f["member"].rsplit("/", 1)[-1][:-5]: f["reason"] for f in body["failed"]}
    assert len(failed) == len(bad), body["failed"]
    reasons = {name: failed[rec["id"]] for name, rec in bad.items()}
    assert "created_at" in reasons["garbage date"] and "created_at" in reasons["year 9999"]
    assert "sha256" in reasons["traversal sha"]
    assert "control characters" in reasons["CRLF name"] and "control characters" in reasons["control tag"]
    assert "at most 64 tags" in reasons["20001 tags"] and "prompt is longer" in reasons["5 MB prompt"]
    assert "status" in reasons["status gone"] and "PNG, JPEG or WebP" in reasons["html as png"]
    assert "blob missing in the backup" in reasons["claims a blob"]
    store = Store(fstore.config)
    assert store.users() == sorted([A, B])  # nothing for the attacker's user, not even a folder
    assert not (store.layout.outputs / "users" / EVIL).exists()
    assert {r.original_filename for r in store.index(B).records.values()} == {"img1.png", "img12.png"}
    report = fsck.check(store)
    assert report.clean, [p.as_dict() for p in report.problems]  # no half-written record anywhere


@pytest.mark.timeout(30)
def test_restore_refuses_archives_that_are_links_fifos_or_huge_claims(fstore, tmp_path):
    """A symlink to /dev/zero, a FIFO and a member claiming 8 GB are refused; the rest is restored."""
    from casvault import backup

    fstore.ingest(make_png(seed=95), A, created_at="2026-11-03T10:00:00+00:00")
    out = tmp_path / "backup"
    backup.backup(fstore, out, "2026-11-03", "2026-11-03")
    (out / "days" / "2026-11-01.tar").symlink_to("/dev/zero")
    (out / "days" / "2026-11-01.sums").symlink_to("/dev/zero")
    os.mkfifo(out / "days" / "2026-11-02.tar")
    (out / "days" / "2026-11-02.sums").write_text("")
    good = make_png(seed=96)
    craft = tmp_path / "craft"
    craft_backup(craft, "2026-11-04", [member(record_dict(B, good, 40)), ("records/u-bob/huge.json", b"{}")],
                 {hashlib.sha256(good).hexdigest(): good}, claim_size={"records/u-bob/huge.json": 8 << 30})
    for name in ("2026-11-04.tar", "2026-11-04.sums"):
        shutil.copy(craft / "days" / name, out / "days" / name)
    shutil.copytree(craft / "blobs", out / "blobs", dirs_exist_ok=True)
    fresh = Store(Config(root=tmp_path / "fresh", fsync=False, thumb_size=64))
    report = backup.restore(fresh, out)
    reasons = {f["archive"]: f["reason"] for f in report.failed}
    assert "symlink" in reasons["2026-11-01.tar"] and "FIFO" in reasons["2026-11-02.tar"]
    claimed = [f for f in report.failed if f.get("member") == "records/u-bob/huge.json"]
    assert claimed[0]["reason"] == f"member claims {8 << 30} bytes (limit {16 << 20})"
    assert report.restored == 2 and f"{40:032x}" in report.ids


def corrupt(store: Store, sha: str) -> bytes:
    """Flip one byte of a blob in place (same size: only a scrub finds it); returns the good bytes."""
    blob = store.blobs.path(sha)
    good = blob.read_bytes()
    os.chmod(blob, 0o644)
    data = bytearray(good)
    data[-5] ^= 0xFF
    blob.write_bytes(bytes(data))
    return good


@pytest.mark.parametrize("after", ["scrub", "scrub+repair"])
def test_restore_makes_a_store_with_a_corrupted_blob_whole_again(fstore, runner, tmp_path, after):
    """Issue 11 point 3: restore puts back the damaged blob (or the records fsck set aside), then fsck --scrub is clean."""
    rec = fstore.ingest(make_png(seed=97), A, created_at="2026-11-01T10:00:00+00:00", tags=["keep"]).record
    twin = fstore.ingest(make_png(seed=97), B, created_at="2026-11-01T11:00:00+00:00").record
    other = fstore.ingest(make_png(seed=98), A, created_at="2026-11-01T12:00:00+00:00").record
    root = str(fstore.layout.root)
    out = tmp_path / "backup"
    assert runner.invoke(main, ["--root", root, "backup", "--from", "2026-11-01", "--to", "2026-11-01", "--out",
                                str(out)], catch_exceptions=False).exit_code == 0
    fstore.update_meta(A, rec.id, tags=["keep", "after the backup"])  # newer than the backup
    good = corrupt(fstore, rec.sha256)
    res = runner.invoke(main, ["--root", root, "fsck", "--scrub"], catch_exceptions=False)
    assert res.exit_code == 1
    assert f"LOST: {A}/{rec.id}" in res.output and f"LOST: {B}/{twin.id}" in res.output  # users and ids named
    if after == "scrub+repair":
        res = runner.invoke(main, ["--root", root, "fsck", "--repair"], catch_exceptions=False)
        assert res.exit_code == 1, res.output  # a lost image is not a repair
        lost_lines = [line for line in res.output.splitlines() if rec.id in line and line.startswith("blob_missing")]
        assert lost_lines and all("[repaired]" not in line and "[LOST]" in line for line in lost_lines)
        assert rec.id not in Store(fstore.config).index(A).records
    res = runner.invoke(main, ["--root", root, "restore", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert sorted(body["ids"] + body["repaired_ids"]) == sorted([rec.id, twin.id])
    res = runner.invoke(main, ["--root", root, "fsck", "--scrub", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    store = Store(fstore.config)
    back = store.get(A, rec.id)
    assert (back.tags, back.created_at) == (["keep", "after the backup"], rec.created_at)  # not the backup's tags
    assert store.layout.image_path(back).read_bytes() == good
    assert store.layout.image_path(store.get(B, twin.id)).read_bytes() == good
    assert store.get(A, other.id).sha256 == other.sha256


def test_restore_into_a_missing_or_empty_root_creates_the_store_from_the_backup(config, runner, tmp_path):
    """Issue 11 point 2/3: the backup's partition time zone, not the environment's, shapes the new store."""
    seoul = Store(config.with_(fsync=False, partition_tz="Asia/Seoul"))
    rec = seoul.ingest(make_png(seed=99), A, created_at="2026-11-01T20:00:00+00:00").record  # Nov 2 in Seoul
    out = tmp_path / "backup"
    from casvault import backup

    backup.backup(seoul, out, "2026-11-02", "2026-11-02")
    for target in (tmp_path / "missing" / "root", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        res = runner.invoke(main, ["--root", str(target), "restore", str(out)], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "created a store" in res.output and "1 restored" in res.output
        meta = json.loads((target / "casvault.json").read_text())
        assert meta["partition_tz"] == "Asia/Seoul"
        store = Store(Config(root=target), create=False)
        assert store.layout.image_path(store.get(A, rec.id)).parts[-4:-1] == ("2026", "11", "02")
        assert fsck.check(store).clean
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    res = runner.invoke(main, ["--root", str(full), "restore", str(out)], catch_exceptions=False)
    assert res.exit_code == 1 and "not empty" in res.output
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
