"""The filesystem blob store."""

import os
import stat

import pytest

from casvault.blobs import FileBlobStore, blake3_digest, digest
from casvault.errors import IntegrityError, InvalidInput, NotFound, StorageFull


@pytest.fixture
def blobs(tmp_path):
    (tmp_path / "tmp").mkdir()
    return FileBlobStore(tmp_path, tmp_path / "tmp")


def test_put_writes_once_read_only_at_sharded_path(blobs, tmp_path):
    data = b"hello blob"
    sha = digest(data)
    assert blobs.put(data, sha) is True
    path = tmp_path / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    ino = path.stat().st_ino
    assert blobs.put(data, sha) is False  # an existing blob wins
    assert path.stat().st_ino == ino
    assert list(os.scandir(tmp_path / "tmp")) == []


def test_read_size_iter_delete(blobs):
    shas = []
    for i in range(3):
        data = f"blob {i}".encode()
        shas.append(digest(data))
        blobs.put(data, shas[-1])
    assert blobs.read(shas[0]) == b"blob 0"
    assert blobs.size(shas[1]) == 6
    assert sorted(b.sha256 for b in blobs.iter()) == sorted(shas)
    assert blobs.delete(shas[0]) is True
    assert blobs.delete(shas[0]) is False
    with pytest.raises(NotFound):
        blobs.read(shas[0])


def test_bad_digest_refused(blobs):
    with pytest.raises(InvalidInput):
        blobs.path("../../etc/passwd")
    with pytest.raises(InvalidInput):
        blobs.path("A" * 64)


def test_verify_quarantines_damaged_blob(blobs, tmp_path):
    data = b"precious"
    sha = digest(data)
    blobs.put(data, sha)
    path = blobs.path(sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"rotten!!")
    with pytest.raises(IntegrityError) as err:
        blobs.verify(sha)
    assert err.value.expected == sha and err.value.got == digest(b"rotten!!")
    assert not path.exists()
    kept = list((tmp_path / "quarantine" / "sha256").glob(sha + ".*"))
    assert any(p.read_bytes() == b"rotten!!" for p in kept)  # moved aside, not deleted


def test_verify_blake3(blobs):
    data = b"fast scrub"
    sha = digest(data)
    blobs.put(data, sha)
    assert blobs.verify(sha, algo="blake3", expected=blake3_digest(data)) == blake3_digest(data)


def test_refresh_inode_keeps_content(blobs):
    data = b"many links"
    sha = digest(data)
    blobs.put(data, sha)
    old = blobs.path(sha).stat().st_ino
    blobs.refresh_inode(sha)
    assert blobs.path(sha).stat().st_ino != old
    assert blobs.read(sha) == data


def test_disk_full_leaves_nothing(blobs, tmp_path, monkeypatch):
    monkeypatch.setenv("CASVAULT_FAULTS", "blob.write.data=enospc")
    from casvault import faults

    faults.reset()
    try:
        with pytest.raises(StorageFull):
            blobs.put(b"x" * 100, digest(b"x" * 100))
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert not blobs.has(digest(b"x" * 100))
    assert list(os.scandir(tmp_path / "tmp")) == []
