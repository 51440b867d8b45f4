"""ComfyUI input staging: reflink or copy by default, hardlink on request, into the input folder; release, cleanup."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from casvault import staging
from casvault.errors import Conflict, InvalidInput, NotFound
from casvault.staging import cleanup_staged, is_staged_name, release_staged, stage_for_comfy
from casvault.store import Store
from cli import main
from tests.conftest import make_jpeg, make_png, make_webp, user

ALICE, BOB = user(1), user(2)


@pytest.fixture
def comfy_input(tmp_path: Path) -> Path:
    """ComfyUI's input folder with a file of the user's own in it."""
    folder = tmp_path / "ComfyUI" / "input"
    folder.mkdir(parents=True)
    (folder / "example.png").write_bytes(make_png(8, 8, seed=99))
    (folder / "casvault_notes.txt").write_text("not ours")
    return folder


def test_stage_hardlinks_the_blob_and_release_leaves_the_folder_as_it_was(config, comfy_input: Path) -> None:
    store = Store(config.with_(stage_mode="hardlink"))  # the opt-in
    data = make_png(32, 32, seed=1)
    record = store.ingest(data, ALICE, "input", original_filename="face.png").record
    before = sorted(os.listdir(comfy_input))

    name = stage_for_comfy(store, ALICE, record.id, comfy_input)

    assert is_staged_name(name) and name.startswith(f"casvault_{record.id}_") and name.endswith(".png")
    staged = comfy_input / name
    blob = store.blobs.path(record.sha256)
    assert not staged.is_symlink()
    assert os.stat(staged).st_ino == os.stat(blob).st_ino  # no bytes copied
    assert os.stat(staged).st_dev == os.stat(blob).st_dev
    assert staged.read_bytes() == data
    assert sorted(os.listdir(comfy_input)) == sorted(before + [name])  # no temp file left

    assert release_staged([name], comfy_input) == 1
    assert sorted(os.listdir(comfy_input)) == before
    assert blob.read_bytes() == data and os.stat(blob).st_nlink >= 2  # blob and its projection untouched


@pytest.mark.parametrize(
    "kind, data, ext",
    [("generated", make_png(16, 16, seed=2), "png"), ("control", make_webp(seed=3), "webp"), ("input", make_jpeg(seed=4), "jpg")],
)
def test_every_kind_can_be_staged_under_its_own_extension(store: Store, comfy_input: Path, kind: str, data: bytes, ext: str) -> None:
    record = store.ingest(data, ALICE, kind).record
    first = stage_for_comfy(store, ALICE, record.id, comfy_input)
    second = stage_for_comfy(store, ALICE, record.id, str(comfy_input))
    assert first != second  # two jobs may stage the same image at once
    for name in (first, second):
        assert name.endswith("." + ext)
        assert (comfy_input / name).read_bytes() == data
    assert release_staged([first, second], comfy_input) == 2


def test_exdev_falls_back_to_a_symlink_then_a_copy(config, comfy_input: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(config.with_(stage_mode="hardlink"))
    data = make_png(24, 24, seed=5)
    record = store.ingest(data, ALICE, "input").record
    blob = store.blobs.path(record.sha256)
    before = sorted(os.listdir(comfy_input))

    def cross_device(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    linked = comfy_input / stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert linked.is_symlink()
    assert os.path.samefile(linked, blob) and linked.read_bytes() == data

    def not_permitted(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", not_permitted)
    copied = comfy_input / stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert not copied.is_symlink()
    assert os.stat(copied).st_ino != os.stat(blob).st_ino
    assert copied.read_bytes() == data
    assert stat.S_IMODE(os.stat(copied).st_mode) == 0o444

    assert release_staged([linked.name, copied.name], comfy_input) == 2
    assert sorted(os.listdir(comfy_input)) == before
    assert blob.read_bytes() == data  # removing the symlink did not touch its target


@pytest.mark.parametrize(("mode", "broken"), [("hardlink", (os, "link")), ("auto", (shutil, "copyfileobj"))])
def test_other_errors_are_raised_and_leave_nothing(
    config, comfy_input: Path, monkeypatch: pytest.MonkeyPatch, mode: str, broken: tuple
) -> None:
    store = Store(config.with_(stage_mode=mode))
    record = store.ingest(make_png(seed=6), ALICE, "input").record
    before = sorted(os.listdir(comfy_input))

    def io_error(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(*broken, io_error)
    with pytest.raises(Exception) as info:
        stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert getattr(info.value, "code", None) == "storage_error"
    assert sorted(os.listdir(comfy_input)) == before


def test_unknown_foreign_trashed_ids_and_bad_folders_are_refused(store: Store, comfy_input: Path, tmp_path: Path) -> None:
    record = store.ingest(make_png(seed=7), ALICE, "input").record
    before = sorted(os.listdir(comfy_input))
    with pytest.raises(NotFound):
        stage_for_comfy(store, BOB, record.id, comfy_input)  # another user's id
    with pytest.raises(NotFound):
        stage_for_comfy(store, ALICE, "0" * 32, comfy_input)
    with pytest.raises(NotFound):
        stage_for_comfy(store, ALICE, "../../etc/passwd", comfy_input)
    with pytest.raises(InvalidInput):
        stage_for_comfy(store, ALICE, record.id, tmp_path / "missing")
    with pytest.raises(InvalidInput):
        stage_for_comfy(store, ALICE, record.id, comfy_input / "example.png")  # a file, not a folder
    store.trash(ALICE, record.id)
    with pytest.raises(Conflict):
        stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert sorted(os.listdir(comfy_input)) == before


def test_release_touches_only_staged_names_and_never_raises(
    store: Store, comfy_input: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = store.ingest(make_png(seed=8), ALICE, "input").record
    name = stage_for_comfy(store, ALICE, record.id, comfy_input)
    outside = tmp_path / name  # same shape, one folder up
    outside.write_bytes(b"x")
    # A directory with a staged name cannot be unlinked: the error is logged.
    stuck = f"casvault_{'a' * 32}_{'b' * 8}.png"
    (comfy_input / stuck).mkdir()
    caplog.set_level(logging.WARNING, logger="casvault.staging")

    removed = release_staged(
        ["example.png", "casvault_notes.txt", f"../{name}", f"sub/{name}", "", 42, stuck, name, name], comfy_input
    )

    assert removed == 1  # only the real one, once; the repeat is simply missing
    assert (comfy_input / "example.png").exists() and (comfy_input / "casvault_notes.txt").exists()
    assert outside.exists() and (comfy_input / stuck).is_dir()
    assert any("could not remove" in r.getMessage() and stuck in r.getMessage() for r in caplog.records)
    assert any("not a staged name" in r.getMessage() for r in caplog.records)
    assert release_staged([name], tmp_path / "gone") == 0  # a missing folder is logged, not raised


def _age(path: Path, hours: float) -> None:
    """Set the entry's own mtime (not a symlink's target) hours in the past."""
    past = time.time() - hours * 3600
    os.utime(path, (past, past), follow_symlinks=False)


def test_cleanup_removes_old_staged_entries_by_their_own_age(config, comfy_input: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(config.with_(stage_mode="hardlink"))
    record = store.ingest(make_png(seed=9), ALICE, "input").record
    blob = store.blobs.path(record.sha256)
    _age(blob, 72)  # an old blob: a fresh hardlink to it must not look old
    fresh_link = stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert os.stat(comfy_input / fresh_link).st_mtime < time.time() - 71 * 3600

    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EXDEV, "cross-device")))
    old_symlink = stage_for_comfy(store, ALICE, record.id, comfy_input)
    fresh_symlink = stage_for_comfy(store, ALICE, record.id, comfy_input)
    monkeypatch.undo()
    _age(comfy_input / old_symlink, 30)  # the link is old, its target (the blob) is older still
    leftover_tmp = comfy_input / f".casvault_{record.id}_{'c' * 8}.png.{'d' * 12}.tmp"
    leftover_tmp.write_bytes(b"partial")
    _age(leftover_tmp, 30)
    _age(comfy_input / "example.png", 500)

    assert cleanup_staged(comfy_input, 24, dry_run=True) == sorted([old_symlink, leftover_tmp.name])
    assert (comfy_input / old_symlink).is_symlink()  # dry run changed nothing

    assert cleanup_staged(comfy_input, 24) == sorted([old_symlink, leftover_tmp.name])
    assert sorted(os.listdir(comfy_input)) == sorted(["example.png", "casvault_notes.txt", fresh_link, fresh_symlink])
    assert blob.exists()
    assert cleanup_staged(comfy_input, 0) == sorted([fresh_link, fresh_symlink])
    assert sorted(os.listdir(comfy_input)) == ["casvault_notes.txt", "example.png"]


def test_cleanup_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        cleanup_staged(tmp_path / "nope", 1)


def test_input_dir_comes_from_config_then_comfy_input_dir(store: Store) -> None:
    assert staging.input_dir_from(store.config, {"COMFY_INPUT_DIR": "/srv/comfy/input"}) == "/srv/comfy/input"
    assert staging.input_dir_from(store.config.with_(comfy_input_dir="/a"), {"COMFY_INPUT_DIR": "/b"}) == "/a"
    assert staging.input_dir_from(store.config, {}) is None


# --- casvault comfy-cleanup ---------------------------------------------------------


def test_cli_comfy_cleanup(config, comfy_input: Path, runner, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(config.with_(stage_mode="hardlink"))
    record = store.ingest(make_png(seed=10), ALICE, "input").record
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EXDEV, "cross-device")))
    old = stage_for_comfy(store, ALICE, record.id, comfy_input)
    new = stage_for_comfy(store, ALICE, record.id, comfy_input)
    monkeypatch.undo()
    _age(comfy_input / old, 5)
    root = str(store.config.root)

    result = runner.invoke(
        main, ["--root", root, "comfy-cleanup", "--older-than", "2", "--dir", str(comfy_input), "--dry-run", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["removed"] == [old]
    assert (comfy_input / old).is_symlink()

    # The folder from COMFY_INPUT_DIR, text output.
    result = runner.invoke(
        main, ["--root", root, "comfy-cleanup", "--older-than", "2"], env={"COMFY_INPUT_DIR": str(comfy_input)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert f"removed {old}" in result.output and "removed 1 staged file(s)" in result.output
    assert not os.path.lexists(comfy_input / old) and (comfy_input / new).is_symlink()


def test_cli_comfy_cleanup_errors_are_one_line(store: Store, tmp_path: Path, runner) -> None:
    root = str(store.config.root)
    result = runner.invoke(main, ["--root", root, "comfy-cleanup", "--older-than", "1", "--dir", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "is not a directory" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(
        main, ["--root", root, "comfy-cleanup", "--older-than", "1"], env={"COMFY_INPUT_DIR": "", "CASVAULT_COMFY_INPUT_DIR": ""}
    )
    assert result.exit_code != 0 and "COMFY_INPUT_DIR" in result.output
    result = runner.invoke(main, ["--root", root, "comfy-cleanup", "--older-than", "-1", "--dir", str(tmp_path)])
    assert result.exit_code == 2


def test_stage_mode_copy_never_shares_the_blobs_inode(config, comfy_input: Path) -> None:
    store = Store(config.with_(stage_mode="copy"))
    data = make_png(24, 24, seed=7)
    record = store.ingest(data, ALICE, "input").record
    staged = comfy_input / stage_for_comfy(store, ALICE, record.id, comfy_input)
    blob = store.blobs.path(record.sha256)
    assert not staged.is_symlink() and os.stat(staged).st_ino != os.stat(blob).st_ino
    assert staged.read_bytes() == data


def test_stage_mode_is_checked() -> None:
    from casvault.config import Config
    from casvault.errors import ConfigError

    with pytest.raises(ConfigError):
        Config.from_env({"CASVAULT_STAGE_MODE": "symlink"})


def test_the_default_never_shares_the_blob_so_an_overwrite_cannot_damage_it(store: Store, comfy_input: Path) -> None:
    from casvault import fsck

    data = make_png(24, 24, seed=8)
    record = store.ingest(data, ALICE, "input").record
    blob = store.blobs.path(record.sha256)
    links = os.stat(blob).st_nlink
    staged = comfy_input / stage_for_comfy(store, ALICE, record.id, comfy_input)
    assert not staged.is_symlink() and os.stat(staged).st_ino != os.stat(blob).st_ino
    assert os.stat(blob).st_nlink == links and stat.S_IMODE(os.stat(staged).st_mode) == 0o444
    # What a ComfyUI running as root does on /upload/image?overwrite=true onto that name.
    os.chmod(staged, 0o644)
    with open(staged, "wb") as fh:
        fh.write(b"overwritten by ComfyUI")
    assert blob.read_bytes() == data
    assert [p.kind for p in fsck.check(store).problems] == []
    assert release_staged([staged.name], comfy_input) == 1


@pytest.mark.parametrize("mode", ["auto", "copy", "hardlink"])
def test_stage_modes_are_accepted(mode: str) -> None:
    from casvault.config import Config

    assert Config.from_env({"CASVAULT_STAGE_MODE": mode}).stage_mode == mode
