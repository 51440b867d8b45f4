"""Blobs in an S3-compatible bucket (AWS S3, MinIO) behind the BlobStore seam.

Keys are the filesystem layout's own, under an optional prefix:
``<prefix>blobs/sha256/<h[0:2]>/<h[2:4]>/<h>``, so a bucket and a
``blobs/`` folder can be compared key by key. Uploads carry the digest the
caller computed (``x-amz-checksum-sha256``), so the server refuses bytes that
do not match it. Credentials come from boto3's usual chain (environment,
``~/.aws``, instance role), never from casvault's own files.
"""

from __future__ import annotations

import base64
import re
import time
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator
from urllib.parse import quote

from .. import faults
from ..blobs import SHA256_RE, BlobInfo, check_digest, check_sha256, digest, hash_stream
from ..errors import ConfigError, IntegrityError, NotFound, StorageError

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ModuleNotFoundError:  # pragma: no cover - the s3 extra is not installed
    boto3 = None

MISSING = {"404", "NoSuchKey", "NotFound"}
NO_BUCKET = {"NoSuchBucket"}
BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def make_client(endpoint: str | None = None, region: str | None = None, *, timeout: float | None = None) -> Any:
    """A boto3 S3 client for AWS (no endpoint) or an S3-compatible server.

    ``timeout`` (seconds) makes a client for probes: one attempt, short
    connect and read timeouts. Raises ConfigError when boto3 is not installed.
    """
    if boto3 is None:
        raise ConfigError("the S3 blob backend needs boto3: pip install 'casvault[s3]'")
    limits: dict[str, Any] = {}
    if timeout is not None:
        limits = {"connect_timeout": timeout, "read_timeout": timeout}
    config = BotoConfig(
        **limits,
        retries={"max_attempts": 1 if timeout is not None else 5, "mode": "standard"},
        signature_version="s3v4",  # presigned URLs too: SigV4 is what every region and MinIO accept
        max_pool_connections=32,
        # NOTE: we send our own sha256 checksum; boto's automatic CRC trailers
        # are turned off because several S3-compatible servers reject them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.client("s3", endpoint_url=endpoint or None, region_name=region or None, config=config)


class S3BlobStore:
    """Blobs as objects ``<prefix>blobs/sha256/ab/cd/<hex>`` in one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        prefix: str = "",
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ConfigError("the S3 blob backend needs a bucket (CASVAULT_S3_BUCKET)")
        self.bucket = bucket
        self.endpoint = endpoint or None
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.client = client if client is not None else make_client(endpoint, region)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r})"

    @property
    def location(self) -> str:
        """``s3://bucket/prefix`` for messages and reports."""
        return f"s3://{self.bucket}/{self.prefix}"

    def path(self, sha256: str) -> Any:
        """No local path exists; raises ConfigError (for the tools that need local blobs)."""
        check_sha256(sha256)
        raise ConfigError(
            f"this operation needs blobs on the local filesystem, but this store keeps them in {self.location}",
            sha256=sha256,
        )

    def key(self, sha256: str) -> str:
        """The object key of the blob with this digest."""
        check_sha256(sha256)
        return f"{self.prefix}blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    @contextmanager
    def _errors(self, action: str, sha256: str | None = None) -> Iterator[None]:
        """Translate boto errors into casvault errors."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING and sha256 is not None:
                raise NotFound(f"blob {sha256} is missing from {self.location}", sha256=sha256) from None
            if code in NO_BUCKET:
                raise ConfigError(f"S3 bucket {self.bucket!r} does not exist", bucket=self.bucket) from None
            raise StorageError(f"S3 {action} failed: {code or exc}", bucket=self.bucket, code=code) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {action} failed: {exc}", bucket=self.bucket) from exc

    def check(self) -> None:
        """Make sure the bucket is reachable; raises ConfigError or StorageError."""
        try:
            with self._errors("bucket check"):
                self.client.head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            if exc.details.get("code") in ("404", "NoSuchBucket"):
                raise ConfigError(f"S3 bucket {self.bucket!r} does not exist", bucket=self.bucket) from None
            raise

    def has(self, sha256: str) -> bool:
        """True when the object exists."""
        try:
            self.size(sha256)
        except NotFound:
            return False
        return True

    def put(self, data: bytes, sha256: str) -> bool:
        """Upload ``data`` under ``sha256`` unless already there; True when it was written.

        An existing object wins (same digest, same content). The server checks
        the bytes against ``sha256``; a mismatch raises IntegrityError and
        stores nothing. Raises StorageError on any other failure.
        """
        if self.has(sha256):
            return False
        faults.point("blob.write")
        self.upload(data, sha256)
        return True

    def upload(self, data: bytes, sha256: str) -> None:
        """Upload unconditionally (the caller knows the object is missing)."""
        checksum = base64.b64encode(bytes.fromhex(check_sha256(sha256))).decode()
        try:
            with self._errors("upload", sha256):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key(sha256),
                    Body=data,
                    ChecksumSHA256=checksum,
                    ContentType="application/octet-stream",
                )
        except StorageError as exc:
            if exc.details.get("code") in BAD_DIGEST:
                raise IntegrityError(
                    f"S3 refused blob {sha256}: its bytes do not match the digest",
                    expected=sha256,
                    got=digest(data),
                    sha256=sha256,
                ) from None
            raise

    def read(self, sha256: str) -> bytes:
        """The blob's bytes; raises NotFound, StorageError."""
        with self.open(sha256) as body, self._errors("read", sha256):
            return body.read()

    def open(self, sha256: str) -> BinaryIO:
        """A readable stream of the blob (close it); raises NotFound, StorageError."""
        with self._errors("read", sha256):
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]

    def size(self, sha256: str) -> int:
        """The object's size in bytes; raises NotFound, StorageError."""
        with self._errors("head", sha256):
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))["ContentLength"])

    def delete(self, sha256: str) -> bool:
        """Remove the object (gc only); a missing object is success. True when it existed."""
        existed = self.has(sha256)
        if existed:
            with self._errors("delete", sha256):
                self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        return existed

    def iter(self) -> Iterator[BlobInfo]:
        """Every stored blob, in key order."""
        base = f"{self.prefix}blobs/sha256/"
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("listing"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", ()):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if SHA256_RE.fullmatch(name) and obj["Key"] == self.key(name):
                        yield BlobInfo(name, int(obj["Size"]), obj["LastModified"].timestamp())

    def verify(self, sha256: str, *, algo: str = "sha256", expected: str | None = None) -> str:
        """Re-hash the object; a mismatch quarantines it and raises IntegrityError."""
        with self.open(sha256) as body, self._errors("read", sha256):
            got = hash_stream(body, algo)
        return check_digest(self, sha256, got, algo, expected)

    def quarantine(self, sha256: str, reason: str) -> str:
        """Move a damaged object aside under ``<prefix>quarantine/`` (never delete it)."""
        src = self.key(sha256)
        dest = f"{self.prefix}quarantine/sha256/{sha256}.{int(time.time())}"
        with self._errors("quarantine", sha256):
            self.client.copy_object(
                Bucket=self.bucket,
                Key=dest,
                CopySource={"Bucket": self.bucket, "Key": src},
                Metadata={"reason": reason.encode("ascii", "replace").decode()[:200]},
                MetadataDirective="REPLACE",
            )
            self.client.delete_object(Bucket=self.bucket, Key=src)
        return f"s3://{self.bucket}/{dest}"

    def presigned_url(
        self,
        sha256: str,
        expires: int = 3600,
        filename: str | None = None,
        content_type: str | None = None,
        attachment: bool = False,
    ) -> str:
        """A time-limited GET URL of the blob, for serving images by redirect.

        ``filename`` and ``content_type`` become the response's
        Content-Disposition (inline, or attachment) and Content-Type.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            ascii_name = SAFE_NAME.sub("_", filename)[:150] or "image"
            params["ResponseContentDisposition"] = (
                f"{'attachment' if attachment else 'inline'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename[:150], safe='')}"
            )
        with self._errors("presign", sha256):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires))
