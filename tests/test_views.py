"""Projections: hardlink, then relative symlink, then copy; narrow fallback."""

import errno
import os

import pytest

from casvault import views
from casvault.errors import StorageError
from casvault.views import project_view


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blobs" / "ab"
    path.mkdir(parents=True)
    f = path / "blobfile"
    f.write_bytes(b"image bytes")
    os.chmod(f, 0o444)
    return f


def test_hardlink_is_same_inode(blob, tmp_path):
    dest = tmp_path / "outputs" / "u" / "x.png"
    assert project_view(blob, dest) == "hardlink"
    assert dest.stat().st_ino == blob.stat().st_ino
    assert not list(dest.parent.glob(".*.tmp"))


def _refuse(monkeypatch, name, code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(views.os, name, fail)


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM, errno.ENOTSUP])
def test_fallback_to_relative_symlink(blob, tmp_path, monkeypatch, code):
    _refuse(monkeypatch, "link", code)
    dest = tmp_path / "outputs" / "u" / "x.png"
    assert project_view(blob, dest) == "symlink"
    assert dest.is_symlink()
    target = os.readlink(dest)
    assert not os.path.isabs(target)
    assert dest.read_bytes() == b"image bytes"


def test_fallback_to_copy(blob, tmp_path, monkeypatch):
    _refuse(monkeypatch, "link", errno.EXDEV)
    _refuse(monkeypatch, "symlink", errno.EPERM)
    dest = tmp_path / "outputs" / "x.png"
    assert project_view(blob, dest) == "copy"
    assert not dest.is_symlink() and dest.stat().st_ino != blob.stat().st_ino
    assert dest.read_bytes() == b"image bytes"


def test_other_errors_are_raised(blob, tmp_path, monkeypatch):
    _refuse(monkeypatch, "link", errno.EIO)
    dest = tmp_path / "outputs" / "x.png"
    with pytest.raises(StorageError):
        project_view(blob, dest)
    assert not dest.exists()
    assert not list(dest.parent.glob(".*"))


def test_explicit_mode_does_not_fall_back(blob, tmp_path, monkeypatch):
    _refuse(monkeypatch, "link", errno.EXDEV)
    with pytest.raises(StorageError):
        project_view(blob, tmp_path / "o" / "x.png", setting="hardlink")
    assert project_view(blob, tmp_path / "o" / "y.png", setting="copy") == "copy"


def test_emlink_gets_fresh_inode(blob, tmp_path, monkeypatch):
    real_link = os.link
    calls = []

    def link(src, dst):
        calls.append(src)
        if len(calls) == 1:
            raise OSError(errno.EMLINK, "Too many links")
        return real_link(src, dst)

    fresh = tmp_path / "blobs" / "ab" / "fresh"

    def refresh():
        fresh.write_bytes(blob.read_bytes())
        return fresh

    monkeypatch.setattr(views.os, "link", link)
    dest = tmp_path / "outputs" / "x.png"
    assert project_view(blob, dest, refresh_inode=refresh) == "hardlink"
    assert dest.stat().st_ino == fresh.stat().st_ino


def test_reprojecting_over_the_same_inode_leaves_no_temp(blob, tmp_path):
    dest = tmp_path / "outputs" / "x.png"
    project_view(blob, dest)
    assert project_view(blob, dest) == "hardlink"
    other = tmp_path / "outputs" / "y.png"
    os.link(blob, other)
    assert project_view(blob, other, setting="copy") == "copy"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["x.png", "y.png"]
