"""The two scale-out seams (DESIGN.md 7) and how a store picks its backends.

Blob store: ``file`` (:class:`casvault.blobs.FileBlobStore`, the default) or
``s3`` (:class:`casvault.backends.s3.S3BlobStore`). Record index:
``manifest`` (:class:`casvault.index.UserIndex` per process, the default) or
``postgres`` (:class:`casvault.backends.postgres.PostgresIndex`).

A store's choice is written into ``casvault.json`` by ``casvault migrate
--switch``::

    "blob_backend": {"type": "s3", "bucket": "...", "endpoint": "...", "prefix": "..."},
    "index_backend": {"type": "postgres", "dsn": "host=... dbname=..."}

``CASVAULT_BLOB_BACKEND``, ``CASVAULT_S3_*``, ``CASVAULT_INDEX_BACKEND`` and
``CASVAULT_PG_DSN`` override what the file says. Secrets never go into the
file: S3 credentials come from boto3's chain, the PostgreSQL password from
``CASVAULT_PG_DSN``, ``PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..blobs import FileBlobStore
from ..config import Config
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..blobs import BlobStore
    from .postgres import PostgresIndex

S3_KEYS = ("bucket", "endpoint", "prefix")


def blob_spec(config: Config, meta: Mapping[str, Any]) -> dict[str, str]:
    """The blob backend of a store: casvault.json's, overridden by the configuration."""
    spec = dict(meta.get("blob_backend") or {})
    if config.blob_backend and config.blob_backend != spec.get("type"):
        spec = {"type": config.blob_backend}
    for key in S3_KEYS:
        value = getattr(config, "s3_" + key)
        if value:
            spec[key] = value
    spec.setdefault("type", "file")
    return spec


def index_spec(config: Config, meta: Mapping[str, Any]) -> dict[str, str]:
    """The record index of a store: casvault.json's, overridden by the configuration."""
    spec = dict(meta.get("index_backend") or {})
    if config.index_backend and config.index_backend != spec.get("type"):
        spec = {"type": config.index_backend}
    if config.pg_dsn:
        spec["dsn"] = config.pg_dsn
    spec.setdefault("type", "manifest")
    return spec


def open_blob_store(spec: Mapping[str, str], root: Path, tmp_dir: Path, *, fsync: bool = True) -> "BlobStore":
    """The blob store a spec names; raises ConfigError for an unknown or incomplete one."""
    kind = spec.get("type", "file")
    if kind == "file":
        return FileBlobStore(root, tmp_dir, fsync=fsync)
    if kind == "s3":
        from .s3 import S3BlobStore

        return S3BlobStore(
            spec.get("bucket", ""),
            endpoint=spec.get("endpoint") or None,
            prefix=spec.get("prefix", ""),
            region=spec.get("region") or None,
        )
    raise ConfigError(f"unknown blob backend {kind!r} (file or s3)")


def open_record_index(spec: Mapping[str, str]) -> "PostgresIndex | None":
    """The PostgreSQL index a spec names, or None for the manifest index.

    Raises ConfigError for an unknown or incomplete spec.
    """
    kind = spec.get("type", "manifest")
    if kind == "manifest":
        return None
    if kind == "postgres":
        from .postgres import PostgresIndex

        return PostgresIndex(spec.get("dsn", ""))
    raise ConfigError(f"unknown index backend {kind!r} (manifest or postgres)")


def s3_spec(bucket: str, endpoint: str | None = None, prefix: str = "") -> dict[str, str]:
    """The casvault.json entry of an S3 blob backend."""
    spec = {"type": "s3", "bucket": bucket}
    if endpoint:
        spec["endpoint"] = endpoint
    if prefix.strip("/"):
        spec["prefix"] = prefix.strip("/")
    return spec


def postgres_spec(dsn: str) -> dict[str, str]:
    """The casvault.json entry of a PostgreSQL index, without any password in the DSN."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ModuleNotFoundError:
        raise ConfigError("the PostgreSQL index needs psycopg: pip install 'casvault[postgres]'") from None
    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError for a malformed DSN
        raise ConfigError(f"the PostgreSQL DSN does not parse: {exc}") from None
    params.pop("password", None)
    return {"type": "postgres", "dsn": make_conninfo(**params)}
