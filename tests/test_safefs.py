"""safefs: files the store did not write are never followed, blocked on or read past a cap (issue 12 points 1-3).

The big test plants symlinks (to outside files and folders), FIFOs and
device nodes in every folder the store reads, runs every command that reads
them, and checks that nothing outside the root was read into the store,
written, moved or deleted, and that no command hangs.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from casvault import adopt, backup, fsck, safefs
from casvault.config import Config
from casvault.errors import TooLarge, UnsafeFile
from casvault.store import Store
from casvault.watch import Watcher
from cli import main
from tests.conftest import make_jpeg, make_png, need, user

A, B, C, D, E, F = (user(n) for n in range(1, 7))
DAY = "2026-11-29T10:00:00+00:00"


def mkdev(path: Path) -> None:
    """A character device like /dev/zero (endless zeros when read); needs root."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        need(False, "root (CAP_MKNOD) to make a device node")


def snapshot(base: Path) -> dict[str, tuple]:
    """Every entry under ``base`` (never following a link): kind, inode, size, mtime, bytes or link target."""
    out = {}
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(folder) / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                body = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            out[str(path.relative_to(base))] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, body)
    return out


# --- the rule itself ---------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_read_regular_refuses_links_fifos_devices_and_big_files(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"x" * 100)
    (tmp_path / "link.png").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.png")
    mkdev(tmp_path / "zero.png")
    (tmp_path / "dir").mkdir()
    assert safefs.read_regular(real, 100) == b"x" * 100
    with pytest.raises(TooLarge):
        safefs.read_regular(real, 99)
    for name, kind in (("link.png", "symlink"), ("fifo.png", "FIFO"), ("zero.png", "device"), ("dir", "folder")):
        with pytest.raises(UnsafeFile) as err:
            safefs.read_regular(tmp_path / name, 1 << 30)
        assert kind in err.value.message
    with pytest.raises(FileNotFoundError):
        safefs.read_regular(tmp_path / "missing", 10)


def test_walk_lists_links_and_special_files_without_entering_them(tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "secret.png").write_bytes(b"s")
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "a.png").write_bytes(b"a")
    (base / "tree").symlink_to(outside)
    os.mkfifo(base / "sub" / "f")
    seen = {(folder.relative_to(base).as_posix(), tuple(files), tuple((f.path.name, f.kind) for f in foreign))
            for folder, _dirs, files, foreign in safefs.walk(base)}
    assert seen == {(".", (), (("tree", "symlink"),)), ("sub", ("a.png",), (("f", "FIFO"),))}
    assert list(safefs.walk(base / "tree")) == []  # a linked base is not walked either


def test_check_inside_and_make_dirs_refuse_a_symlinked_folder_on_the_way(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "outputs" / "users").mkdir(parents=True)
    outside.mkdir()
    (root / "outputs" / "users" / A).symlink_to(outside)
    target = root / "outputs" / "users" / A / "2026" / "11" / "29"
    with pytest.raises(UnsafeFile):
        safefs.check_inside(root, target / "x.json")
    with pytest.raises(UnsafeFile):
        safefs.make_dirs(root, target)
    with pytest.raises(UnsafeFile):
        safefs.check_inside(root, tmp_path / "elsewhere" / "x")
    assert list(outside.iterdir()) == []
    made = safefs.make_dirs(root, root / "outputs" / "users" / B / "2026")
    assert made.is_dir() and not made.is_symlink()


def test_set_aside_moves_the_link_itself_with_a_note(tmp_path):
    root = tmp_path / "root"
    (root / "outputs").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    link = root / "outputs" / "stolen.jpg"
    link.symlink_to(secret)
    dest = safefs.set_aside(root, link, "a symlink (never followed)")
    assert not os.path.lexists(link) and os.readlink(dest) == str(secret) and secret.read_text() == "keep me"
    assert dest.is_relative_to(root / "quarantine" / "foreign")
    note = dest.with_name(dest.name + ".note").read_text()
    assert "outputs/stolen.jpg" in note and "never followed" in note


# --- findings 1-3, one by one ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_adopt_and_watch_never_follow_a_symlinked_user_folder(config, runner, tmp_path):
    """Finding 1: adopt, watch and fsck --repair leave a linked-to tree alone; nothing there is adopted or deleted."""
    store = Store(config.with_(fsync=False))
    tree = tmp_path / "o" / "tree"
    (tree / "2026" / "11" / "29").mkdir(parents=True)
    (tree / "photo.png").write_bytes(make_png(seed=1))
    (tree / "photo.json").write_text("my plain-text notes about the photo")
    (tree / "2026" / "11" / "29" / "b.jpg").write_bytes(make_jpeg(seed=2))
    (store.layout.outputs / "users" / A).symlink_to(tree)
    before = snapshot(tmp_path / "o")
    res = runner.invoke(main, ["--root", str(config.root), "reindex", "--adopt", "--json"], catch_exceptions=False)
    assert json.loads(res.output)["adopt"]["adopted"] == 0, res.output
    watcher = Watcher(store, settle=0.05)
    watcher.start()
    try:
        watcher.touch(tree / "photo.png")
        watcher.touch(store.layout.outputs / "users" / A / "photo.png")
        time.sleep(0.3)
        assert [r for r in watcher.poll() if r.status != "failed"] == []
    finally:
        watcher.stop()
    assert snapshot(tmp_path / "o") == before
    assert Store(store.config).index(A).records == {}
    res = runner.invoke(main, ["--root", str(config.root), "fsck", "--repair", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert snapshot(tmp_path / "o") == before  # the link itself was set aside, never followed
    assert os.readlink(next((config.root / "quarantine" / "foreign").rglob(A))) == str(tree)


@pytest.mark.timeout(60)
def test_linked_files_and_day_folders_are_never_read_or_written_through(config, runner, tmp_path):
    """Finding 2: a linked file is not adopted or served; ingest refuses a linked day folder."""
    from web import create_app

    store = Store(config.with_(fsync=False))
    store.ingest(make_png(seed=3), A, created_at=DAY)
    secret = tmp_path / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(make_jpeg(seed=4))
    day = store.layout.outputs / "users" / A / "2026" / "11" / "29"
    (day / "stolen.jpg").symlink_to(secret)
    adopted = adopt.adopt_tree(store)
    assert all(i.status != "adopted" for i in adopted.items)
    assert not any(r.original_filename == "stolen.jpg" for r in Store(store.config).index(A).records.values())
    client = create_app(config).test_client()
    assert client.get(f"/outputs/users/{A}/2026/11/29/stolen.jpg").status_code == 404
    w = tmp_path / "o" / "w"
    w.mkdir(parents=True)
    (store.layout.outputs / "users" / C).mkdir()
    (store.layout.outputs / "users" / C / "2026").symlink_to(w)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "new.png").write_bytes(make_png(seed=5))
    stamp = time.mktime((2026, 11, 29, 12, 0, 0, 0, 0, 0))
    os.utime(drop / "new.png", (stamp, stamp))
    res = runner.invoke(main, ["--root", str(config.root), "ingest", str(drop), "--owner", C, "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 1
    assert "refusing to write through" in json.loads(res.output)["items"][0]["reason"]
    assert list(w.rglob("*")) == []
    assert Store(store.config).index(C).records == {}


@pytest.mark.timeout(30)
def test_fifos_and_devices_never_stall_adopt_or_hold_the_lock(config, tmp_path):
    """Finding 3: a FIFO, a device and a link to /dev/zero named like images: adopt ends, the lock is free."""
    store = Store(config.with_(fsync=False))
    store.ingest(make_png(seed=6), A, created_at=DAY)
    day = store.layout.outputs / "users" / A / "2026" / "11" / "29"
    os.mkfifo(day / "fifo.png")
    mkdev(day / "zero.png")
    (day / "zero-link.png").symlink_to("/dev/zero")
    started = time.monotonic()
    report = adopt.adopt_tree(store)
    assert report.count("adopted") == 0 and time.monotonic() - started < 10
    for path in (day / "fifo.png", day / "zero.png"):
        assert adopt.adopt_file(store, path).status == "failed"
    taken: list[bool] = []

    def take() -> None:
        with store.locks.user(A, timeout=0.5):  # another thread: its own flock, as another worker's upload
            taken.append(True)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(5)
    assert taken == [True]  # the user's lock is free: uploads are not held up
    found = {Path(p.path).name: p.detail for p in fsck.check(store).problems if p.kind == "foreign"}
    assert "FIFO" in found["fifo.png"] and "device" in found["zero.png"] and "symlink" in found["zero-link.png"]


# --- every folder, every command ---------------------------------------------------------------


@pytest.mark.timeout(180)
def test_links_fifos_and_devices_everywhere_leave_the_outside_untouched(config, runner, tmp_path):
    """Issue 12 'done when': plant hostile entries in every folder the store reads, run every command."""
    cfg = config.with_(fsync=False)
    root = cfg.root
    # a source store and its backup: A's record and F's (F's blob will be swapped for a link)
    source = Store(Config(root=tmp_path / "source", fsync=False, thumb_size=64))
    source.ingest(make_png(seed=10), A, created_at=DAY)
    f_rec = source.ingest(make_png(seed=11), F, created_at=DAY).record
    bak = tmp_path / "backup"
    backup.backup(source, bak, "2026-11-29", "2026-11-29")
    store = Store(cfg)
    a_rec = store.ingest(make_png(seed=10), A, created_at=DAY, tags=["mine"]).record
    store.ingest(make_png(seed=12), C, created_at="2025-01-01T10:00:00+00:00")
    store.ingest(make_png(seed=13), E, created_at=DAY)

    outside = tmp_path / "outside"
    (outside / "tree" / "2026" / "11" / "29").mkdir(parents=True)
    (outside / "tree" / "photo.png").write_bytes(make_png(seed=20))
    (outside / "tree" / "photo.json").write_text("plain text, not ours")
    (outside / "tree" / "2026" / "11" / "29" / "x.jpg").write_bytes(make_jpeg(seed=21))
    (outside / "w").mkdir()
    (outside / "metadir").mkdir()
    (outside / "metadir" / "manifest.jsonl").write_text("not a manifest\n")
    secret = outside / "secret.jpg"
    secret.write_bytes(make_jpeg(seed=22))

    def plant(folder: Path, tag: str) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        made = [folder / f"{tag}-stolen.jpg", folder / f"{tag}-tree", folder / f"{tag}-fifo.png",
                folder / f"{tag}-zero.png", folder / f"{tag}-devzero.png"]
        made[0].symlink_to(secret)
        made[1].symlink_to(outside / "tree")
        os.mkfifo(made[2])
        mkdev(made[3])
        made[4].symlink_to("/dev/zero")
        return made

    layout = store.layout
    a_day = layout.image_path(a_rec).parent
    manifest_e = layout.manifest_path(E)

    def plant_in_root(meta: bool = True) -> list[Path]:
        planted = [
            *plant(layout.outputs / "users" / A, "user"),
            *plant(a_day, "day"),
            *plant(a_day / "thumb", "thumb"),
            *plant(layout.trash / "users" / A / "2026" / "11" / "29", "trash"),
            *(plant(layout.meta / "users" / A, "meta") if meta else []),
        ]
        (layout.outputs / "users" / B).symlink_to(outside / "tree")  # a whole user folder
        (layout.trash / "users" / B).symlink_to(outside / "tree")
        (layout.outputs / "users" / C / "2026").symlink_to(outside / "w")  # a day folder
        (layout.meta / "users" / D).symlink_to(outside / "metadir")
        if os.path.lexists(manifest_e):
            manifest_e.unlink()
        os.mkfifo(manifest_e)  # a manifest swapped for a FIFO
        return planted + [layout.outputs / "users" / B, layout.trash / "users" / B,
                          layout.outputs / "users" / C / "2026", layout.meta / "users" / D, manifest_e]

    planted = plant_in_root()
    drop = tmp_path / "drop"
    (drop / "ok").mkdir(parents=True)
    (drop / "ok" / "new.png").write_bytes(make_png(seed=23))
    stamp = time.mktime((2026, 11, 29, 12, 0, 0, 0, 0, 0))
    os.utime(drop / "ok" / "new.png", (stamp, stamp))
    plant(drop, "drop")
    f_blob = backup.blob_path(bak, f_rec.sha256)
    f_blob.unlink()
    f_blob.symlink_to(secret)
    plant(bak / "days", "days")
    (bak / "days" / "2026-11-30.tar").symlink_to("/dev/zero")
    os.mkfifo(bak / "days" / "2026-12-01.tar")

    before = snapshot(outside)
    before_inputs = {"backup": snapshot(bak), "drop": snapshot(drop)}

    def cli(*args: str) -> object:
        return runner.invoke(main, ["--root", str(root), *args, "--json"], catch_exceptions=False)

    res = cli("ingest", str(drop), "--owner", C)
    items = {Path(i["path"]).name: i for i in json.loads(res.output)["items"]}
    assert res.exit_code == 1 and "refusing to write through" in items["new.png"]["reason"]  # C's 2026 is a link
    assert all(items[f"drop-{n}"]["status"] == "skipped" for n in ("stolen.jpg", "fifo.png", "zero.png", "devzero.png"))
    assert "drop-tree" in items and items["drop-tree"]["status"] == "skipped"
    watcher = Watcher(store, settle=0.05)
    watcher.start()
    try:
        for path in planted:
            watcher.touch(path)
        time.sleep(0.3)
        assert [r.status for r in watcher.poll() if r.status == "adopted"] == []
    finally:
        watcher.stop()
    res = cli("fsck")
    assert res.exit_code == 1
    reported = {p["path"] for p in json.loads(res.output)["problems"] if p["kind"] == "foreign"}
    # every planted entry is reported (inside meta/users/<user>/ only the manifest itself is checked)
    expected = {str(p) for p in planted if f"/meta/users/{A}/" not in str(p)}
    if safefs.lkind(manifest_e) == "file":
        # a reader got ManifestCorrupt from the FIFO first and the index rebuilt it from the sidecars
        assert len(Store(cfg).index(E).records) == 1
        expected.discard(str(manifest_e))
    assert expected - reported == set(), expected - reported
    res = cli("reindex", "--adopt")  # sets the foreign entries aside
    assert {p["path"] for p in json.loads(res.output)["set_aside"] if p["repaired"]} >= expected - {str(manifest_e)}
    planted = plant_in_root(meta=False)  # again, for fsck --repair (meta/users/<user>/ still holds the first)
    res = cli("fsck", "--repair")
    assert json.loads(res.output)["remaining"] == [], res.output
    res = cli("reindex")
    assert res.exit_code == 0, res.output
    res = cli("restore", str(bak))
    body = json.loads(res.output)
    assert res.exit_code == 1
    assert any("symlink" in f["reason"] for f in body["failed"] if f.get("id") == f_rec.id)
    assert {f["archive"] for f in body["failed"] if "archive" in f and "id" not in f} >= {"2026-11-30.tar",
                                                                                          "2026-12-01.tar"}
    cli("ingest", str(drop), "--owner", A)
    res = cli("fsck")
    assert res.exit_code == 0, res.output

    # nothing outside the root was read into the store, written, moved or deleted
    assert snapshot(outside) == before
    assert {"backup": snapshot(bak), "drop": snapshot(drop)} == before_inputs
    after = Store(cfg)
    assert B not in after.users() and D not in after.users()
    names = {r.original_filename for u in after.users() for r in after.index(u).records.values()}
    assert names.isdisjoint({"photo.png", "x.jpg", "secret.jpg", "user-stolen.jpg", "day-stolen.jpg"})
    assert after.get(A, a_rec.id).tags == ["mine"]
    for path in [p for p in planted if "/meta/users/" not in str(p)]:
        assert not os.path.lexists(path)  # set aside, not followed
    aside = [p for p in (root / "quarantine" / "foreign").rglob("*") if p.is_symlink()]
    assert {os.readlink(p) for p in aside} >= {str(secret), str(outside / "tree"), str(outside / "w"), "/dev/zero"}


# --- times a record can hold -------------------------------------------------------------------


@pytest.mark.parametrize("when", ["9999-12-31T00:00:00+00:00", "0001-01-01T00:00:00+00:00", "garbage"])
def test_ingest_and_adopt_refuse_times_no_zone_can_show(config, when):
    """A time at the very ends of the calendar is refused by ingest (400) and ignored by adopt (file time)."""
    from casvault.errors import InvalidInput

    store = Store(config.with_(fsync=False, partition_tz="Asia/Seoul"))
    with pytest.raises(InvalidInput):
        store.ingest(make_png(seed=70), A, created_at=when)
    day = store.layout.outputs / "users" / A / "2026" / "11" / "29"
    day.mkdir(parents=True)
    (day / "old.png").write_bytes(make_png(seed=71))
    (day / "old.json").write_text(json.dumps({"created_at": when, "prompt": "kept"}))
    result = adopt.adopt_tree(store).items[0]
    assert result.status == "adopted", result
    record = Store(store.config).get(A, result.id)
    assert record.prompt == "kept" and record.created_at[:4] not in ("0001", "9999")
    assert record.source["legacy"]["created_at"] == when
