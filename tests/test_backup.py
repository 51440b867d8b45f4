"""backup and restore by day partition: same records and bytes back; unchanged days add nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

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
