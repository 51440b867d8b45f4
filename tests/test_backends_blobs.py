"""The blob store seam: the same tests over FileBlobStore and S3BlobStore (a real S3 protocol server)."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
import requests

from casvault.backends.s3 import S3BlobStore, make_client
from casvault.blobs import FileBlobStore, digest
from casvault.errors import ConfigError, IntegrityError, NotFound, StorageError
from tests.conftest import make_jpeg, make_png
from tests.servers import free_port

pytest_plugins = ("tests.services",)


@pytest.fixture(params=["file", "s3"])
def blobs(request, tmp_path: Path):
    """A fresh, empty blob store of each kind."""
    if request.param == "file":
        root = tmp_path / "root"
        (root / "tmp").mkdir(parents=True)
        return FileBlobStore(root, root / "tmp", fsync=False)
    s3 = request.getfixturevalue("s3_server")
    return S3BlobStore(s3.create_bucket(), endpoint=s3.endpoint, prefix="casvault")


def overwrite(blobs, sha: str, data: bytes) -> None:
    """Damage a stored blob behind the store's back."""
    if isinstance(blobs, FileBlobStore):
        path = blobs.path(sha)
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        blobs.client.put_object(Bucket=blobs.bucket, Key=blobs.key(sha), Body=data)


def quarantined(blobs) -> list[str]:
    """Names of what was moved aside."""
    if isinstance(blobs, FileBlobStore):
        if not blobs.quarantine_dir.is_dir():
            return []
        return sorted(p.name for p in blobs.quarantine_dir.iterdir() if not p.name.endswith(".reason"))
    listing = blobs.client.list_objects_v2(Bucket=blobs.bucket, Prefix=blobs.prefix + "quarantine/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", ()))


def test_put_is_idempotent_and_reads_back(blobs) -> None:
    data = make_png(seed=1)
    sha = digest(data)
    assert not blobs.has(sha)
    assert blobs.put(data, sha) is True
    assert blobs.put(data, sha) is False
    assert blobs.has(sha)
    assert blobs.read(sha) == data
    assert blobs.size(sha) == len(data)
    with blobs.open(sha) as fh:
        assert fh.read() == data
    assert blobs.verify(sha) == sha


def test_existing_blob_wins(blobs) -> None:
    data = make_png(seed=2)
    sha = digest(data)
    blobs.put(data, sha)
    assert blobs.put(b"something else entirely", sha) is False
    assert blobs.read(sha) == data


def test_iter_lists_every_blob_with_its_size(blobs) -> None:
    items = {digest(d): d for d in (make_png(seed=3), make_jpeg(seed=4), make_png(32, 16, seed=5))}
    for sha, data in items.items():
        blobs.put(data, sha)
    listed = {b.sha256: b.size for b in blobs.iter()}
    assert listed == {sha: len(d) for sha, d in items.items()}
    assert all(b.mtime > 0 for b in blobs.iter())


def test_delete_then_missing_is_not_found(blobs) -> None:
    data = make_png(seed=6)
    sha = digest(data)
    blobs.put(data, sha)
    assert blobs.delete(sha) is True
    assert blobs.delete(sha) is False
    assert not blobs.has(sha)
    assert list(blobs.iter()) == []
    for call in (blobs.read, blobs.size, blobs.open, blobs.verify):
        with pytest.raises(NotFound):
            call(sha)


def test_verify_mismatch_quarantines_and_raises(blobs) -> None:
    data = make_png(seed=7)
    sha = digest(data)
    blobs.put(data, sha)
    overwrite(blobs, sha, b"bit rot")
    with pytest.raises(IntegrityError) as err:
        blobs.verify(sha)
    assert err.value.expected == sha
    assert err.value.got == hashlib.sha256(b"bit rot").hexdigest()
    assert not blobs.has(sha)
    names = quarantined(blobs)
    assert len(names) == 1 and names[0].startswith(sha + ".")
    # the damaged bytes were kept, not deleted
    assert blobs.put(data, sha) is True
    assert blobs.read(sha) == data


def test_verify_blake3_against_expected(blobs) -> None:
    from casvault.blobs import blake3_digest

    data = make_png(seed=8)
    sha = digest(data)
    blobs.put(data, sha)
    assert blobs.verify(sha, algo="blake3", expected=blake3_digest(data)) == blake3_digest(data)
    with pytest.raises(IntegrityError):
        blobs.verify(sha, algo="blake3", expected="0" * 64)


def test_bad_digest_is_refused(blobs) -> None:
    from casvault.errors import InvalidInput

    for bad in ("../etc/passwd", "A" * 64, "ab"):
        with pytest.raises(InvalidInput):
            blobs.has(bad)


# --- S3 only ------------------------------------------------------------------


def test_s3_keys_mirror_the_file_layout(s3_server, tmp_path: Path) -> None:
    data = make_png(seed=9)
    sha = digest(data)
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint, prefix="/tenant/a/")
    remote.put(data, sha)
    keys = [o["Key"] for o in remote.client.list_objects_v2(Bucket=remote.bucket)["Contents"]]
    local = FileBlobStore(tmp_path, tmp_path, fsync=False)
    assert keys == ["tenant/a/" + local.path(sha).relative_to(tmp_path).as_posix()]
    assert keys == [f"tenant/a/blobs/sha256/{sha[:2]}/{sha[2:4]}/{sha}"]


def test_s3_upload_carries_the_sha256_for_the_server_to_check(s3_server) -> None:
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint)
    sent: list[dict] = []
    remote.client.meta.events.register("before-send.s3.PutObject", lambda request, **kw: sent.append(dict(request.headers)))
    data = make_png(seed=10)
    sha = digest(data)
    remote.put(data, sha)
    remote.put(data, sha)  # HEAD first: no second upload
    assert len(sent) == 1
    header = sent[0]["x-amz-checksum-sha256"]
    header = header.decode() if isinstance(header, bytes) else header
    assert header == base64.b64encode(bytes.fromhex(sha)).decode()


def test_s3_presigned_url_serves_the_image(s3_server) -> None:
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint)
    data = make_png(seed=11)
    sha = digest(data)
    remote.put(data, sha)
    url = remote.presigned_url(sha, expires=60, filename="Café night.png", content_type="image/png")
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["Content-Type"] == "image/png"
    assert 'filename="Caf__night.png"' in resp.headers["Content-Disposition"]
    assert "filename*=UTF-8''Caf%C3%A9%20night.png" in resp.headers["Content-Disposition"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url


def test_s3_missing_bucket_is_a_config_error(s3_server) -> None:
    remote = S3BlobStore("no-such-bucket-here", endpoint=s3_server.endpoint)
    with pytest.raises(ConfigError):
        remote.check()
    with pytest.raises(ConfigError):
        remote.read("0" * 64)


def test_s3_unreachable_server_is_a_storage_error() -> None:
    from botocore.config import Config as BotoConfig

    import boto3

    endpoint = f"http://127.0.0.1:{free_port()}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1),
    )
    remote = S3BlobStore("bucket", endpoint=endpoint, client=client)
    with pytest.raises(StorageError):
        remote.has("0" * 64)
    with pytest.raises(StorageError):
        remote.upload(b"x", digest(b"x"))


def test_s3_has_no_local_path_for_file_only_tools(s3_server) -> None:
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint)
    with pytest.raises(ConfigError, match="needs blobs on the local filesystem"):
        remote.path("0" * 64)


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ConfigError):
        S3BlobStore("", client=object())


def test_file_blobs_are_read_only(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path, tmp_path, fsync=False)
    data = make_png(seed=12)
    blobs.put(data, digest(data))
    assert stat.S_IMODE(blobs.path(digest(data)).stat().st_mode) == 0o444


def test_make_client_uses_path_style_for_custom_endpoints() -> None:
    client = make_client("http://127.0.0.1:9")
    assert client.meta.config.s3["addressing_style"] == "path"


def test_blob_backend_comes_from_casvault_json_and_the_environment_overrides_it(s3_server, tmp_path: Path) -> None:
    from casvault.backends import blob_spec, open_blob_store
    from casvault.config import Config

    meta = {"blob_backend": {"type": "s3", "bucket": "b1", "endpoint": s3_server.endpoint}}
    assert blob_spec(Config(), {}) == {"type": "file"}
    assert blob_spec(Config(), meta) == meta["blob_backend"]
    assert blob_spec(Config(s3_prefix="p"), meta) == {**meta["blob_backend"], "prefix": "p"}
    assert blob_spec(Config(blob_backend="file"), meta) == {"type": "file"}
    store = open_blob_store(blob_spec(Config(), meta), tmp_path, tmp_path)
    assert isinstance(store, S3BlobStore) and store.location == "s3://b1/"
    with pytest.raises(ConfigError):
        Config.from_env({"CASVAULT_BLOB_BACKEND": "ftp"})
    with pytest.raises(ConfigError):
        open_blob_store({"type": "s3"}, tmp_path, tmp_path)  # no bucket
    assert Config.from_env({"CASVAULT_BLOB_BACKEND": "s3", "CASVAULT_S3_BUCKET": "b2"}).s3_bucket == "b2"


def test_the_seam_says_where_blobs_are_and_how_they_are_served(blobs) -> None:
    data = b"seam"
    sha = digest(data)
    blobs.put(data, sha)
    url = blobs.presigned_url(sha, expires=60, filename="a.png", content_type="image/png")
    if blobs.local:
        assert url is None and blobs.path(sha).read_bytes() == data  # served from the file
    else:
        assert url is not None and url.startswith("http")
