"""``casvault migrate``: a filesystem store moved to S3 (moto server) and PostgreSQL (a real
cluster) while it keeps taking writes, caught up, verified and switched."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import requests
from psycopg.conninfo import conninfo_to_dict

from casvault.backends import postgres_spec
from casvault.backends.postgres import PostgresIndex
from casvault.backends.s3 import S3BlobStore
from casvault.blobs import FileBlobStore
from casvault.config import Config
from casvault.index import Query, UserIndex
from casvault.migrate import MigrationReport, copy_blobs, migrate
from casvault.records import to_dict
from casvault.store import Store
from cli import main
from tests.conftest import SECRET, make_png, user

pytest_plugins = ("tests.services",)

USERS = [user(11), user(12), "u-alice"]
T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def fill(store: Store, owner: str, n: int, seed: int) -> list[str]:
    """n small images with a little history (trash, restore, tags, purge)."""
    rnd = random.Random(seed)
    ids = []
    for i in range(n):
        kind = "generated" if i % 10 else rnd.choice(["control", "input"])
        result = store.ingest(
            make_png(8, 8, seed=seed * 1000 + i % (n - 2)),
            owner,
            kind,
            created_at=T0 + timedelta(minutes=rnd.randrange(60 * 24 * 30)),
            prompt=rnd.choice(["a cat", "a dog", "the sea", None]) if kind == "generated" else None,
            tags=rnd.choice([[], ["x"], ["x", "y"]]),
            make_thumb=i % 25 == 0,
        )
        ids.append(result.record.id)
    for rid in ids[:8]:
        store.trash(owner, rid)
    store.restore(owner, ids[0])
    store.purge(owner, ids[1])
    store.update_meta(owner, ids[2], tags=["kept"], favorite=True)
    return ids


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(root=tmp_path / "root", secret_key=SECRET, fsync=False, thumb_size=32)


@pytest.fixture
def old(config: Config) -> Store:
    """The store to migrate: 3 users, 300 records."""
    store = Store(config)
    for n, owner in enumerate(USERS):
        fill(store, owner, 100, seed=n + 1)
    return store


@pytest.fixture
def small(config: Config) -> Store:
    """A smaller store for the failure paths: 3 users, 60 records."""
    store = Store(config)
    for n, owner in enumerate(USERS):
        fill(store, owner, 20, seed=n + 1)
    return store


def run(runner, root: Path, *args: str):
    return runner.invoke(main, ["--root", str(root), "migrate", *args], catch_exceptions=False)


def local_blobs(store: Store) -> dict[str, int]:
    return {b.sha256: b.size for b in FileBlobStore(store.layout.root, store.layout.tmp).iter()}


def manifest_list(store: Store):
    """A listing function over a fresh manifest index (the reference answers)."""
    return lambda owner, q: UserIndex(owner, store.manifest(owner)).refresh().query(q)


def walk(list_page, owner: str, **query) -> list[dict]:
    """Every page of a listing by cursor, as plain records."""
    out, cursor = [], None
    while True:
        page = list_page(owner, Query(size=17, cursor=cursor, **query))
        out.append((page.total, [to_dict(r) for r in page.items], page.next_cursor))
        cursor = page.next_cursor
        if cursor is None:
            return out


def test_migrate_catch_up_verify_and_switch(old: Store, config: Config, runner, s3_server, pg_dsn: str) -> None:
    bucket = s3_server.create_bucket()
    args = ["--s3-bucket", bucket, "--s3-endpoint", s3_server.endpoint, "--s3-prefix", "prod", "--pg-dsn", pg_dsn]
    blobs = local_blobs(old)
    records = sum(len(UserIndex(u, old.manifest(u)).refresh().records) for u in USERS)
    assert records == 3 * 99

    result = run(runner, config.root, *args, "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)
    assert first["ok"] and not first["switched"]
    assert (first["blobs_copied"], first["blobs_present"]) == (len(blobs), 0)
    assert first["bytes_copied"] == sum(blobs.values())
    assert first["records"] == records
    assert first["users_verified"] == first["users"] == 3
    assert first["events_applied"] == sum(len(old.manifest(u).read(0).events) for u in USERS)
    remote = S3BlobStore(bucket, endpoint=s3_server.endpoint, prefix="prod")
    assert {b.sha256: b.size for b in remote.iter()} == blobs

    # the old store keeps serving: new images, a trash, a tag change
    lines_before = {u: len(old.manifest(u).read(0).events) for u in USERS}
    new_ids = [old.ingest(make_png(8, 8, seed=50_000 + i), USERS[i % 3], prompt="late", make_thumb=False).record.id
               for i in range(9)]
    old.trash(USERS[0], new_ids[0])
    old.update_meta(USERS[1], new_ids[1], tags=["late"])
    added_lines = sum(len(old.manifest(u).read(0).events) - lines_before[u] for u in USERS)
    assert added_lines == 11

    result = run(runner, config.root, *args, "--json")
    assert result.exit_code == 0, result.output
    second = json.loads(result.output)
    assert second["ok"]
    assert (second["blobs_copied"], second["blobs_present"]) == (9, len(blobs))
    assert second["events_applied"] == added_lines  # only the tails were read
    assert second["records"] == records + 9

    result = run(runner, config.root, *args, "--verify", "--switch", "--json")
    assert result.exit_code == 0, result.output
    third = json.loads(result.output)
    assert third["switched"] and third["ok"]
    assert (third["blobs_copied"], third["events_applied"]) == (0, 0)
    assert third["digests_checked"] == len({r.sha256 for u in USERS
                                            for r in UserIndex(u, old.manifest(u)).refresh().records.values()})
    meta = msgspec.json.decode(config.root.joinpath("casvault.json").read_bytes())
    assert meta["blob_backend"] == {"type": "s3", "bucket": bucket, "endpoint": s3_server.endpoint, "prefix": "prod"}
    assert meta["index_backend"]["type"] == "postgres"
    assert conninfo_to_dict(meta["index_backend"]["dsn"]) == conninfo_to_dict(pg_dsn)

    # the next Store opens the new backends and lists the same pages
    new = Store(config)
    assert isinstance(new.blobs, S3BlobStore) and new.record_index is not None
    for owner in USERS:
        for query in ({}, {"include": "all"}, {"include": "trash"}, {"kind": "input"}, {"tag": "x"}, {"words": ("cat",)}):
            assert walk(new.list, owner, **query) == walk(manifest_list(old), owner, **query)
        assert new.usage(owner) == old.usage(owner)
    record = new.list(USERS[2], Query(size=1)).items[0]
    assert new.read_original(record) == old.blobs.path(record.sha256).read_bytes()
    resp = requests.get(new.original_url(record), timeout=10)
    assert resp.status_code == 200 and resp.content == old.blobs.path(record.sha256).read_bytes()
    assert resp.headers["Content-Type"] == record.mime

    # the web app redirects /outputs originals to presigned S3 URLs; thumbnails stay local
    from web import create_app

    client = create_app(config.with_(admin_token="migrate-admin")).test_client()
    admin = {"Authorization": "Bearer migrate-admin"}  # /outputs answers the owner or the admin
    image, _, _ = new.layout.paths(record)
    resp = client.get(new.layout.rel_url(image), headers=admin)
    assert resp.status_code == 302 and "X-Amz-Signature=" in resp.headers["Location"]
    assert requests.get(resp.headers["Location"], timeout=10).content == new.read_original(record)
    with_thumb = next(r for u in USERS for r in new.list(u, Query(size=200)).items if r.thumb)
    resp = client.get(new.layout.rel_url(new.layout.thumb_path(with_thumb)), headers=admin)
    assert resp.status_code == 200 and resp.mimetype == "image/webp"

    # writes after the switch: blob to S3 only, sidecar and thumbnail local, PostgreSQL in step
    data = make_png(24, 24, seed=99_999)
    made = new.ingest(data, USERS[0], prompt="after the switch").record
    assert remote.read(made.sha256) == data
    assert not old.blobs.path(made.sha256).exists()
    image, sidecar, thumb = new.layout.paths(made)
    assert sidecar.is_file() and thumb.is_file() and not image.exists()
    assert new.list(USERS[0], Query(size=1)).items[0].id == made.id
    assert new.record_index.offset(USERS[0]) == new.manifest(USERS[0]).size()
    new.trash(USERS[0], made.id)
    assert new.get(USERS[0], made.id).status == "trash"
    assert new.list(USERS[0], Query(include="trash", size=1)).items[0].id == made.id


def test_rerun_continues_an_interrupted_migration(small: Store, s3_server, pg_dsn: str) -> None:
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint)
    index = PostgresIndex(pg_dsn)
    local = FileBlobStore(small.layout.root, small.layout.tmp)
    blobs = local_blobs(small)
    # a first run that stopped part way: some blobs copied, one user loaded
    some = set(sorted(blobs)[: len(blobs) // 3])
    copy_blobs(local, remote, MigrationReport(), only=some)
    index.sync(USERS[0], small.manifest(USERS[0]))
    report = migrate(small, remote, index)
    assert report.ok
    assert report.blobs_copied == len(blobs) - len(some)
    assert report.blobs_present == len(some)
    assert report.events_applied == sum(len(small.manifest(u).read(0).events) for u in USERS[1:])
    assert report.users_verified == 3


def test_damaged_copy_fails_verification_and_is_recopied(small: Store, config: Config, runner, s3_server,
                                                          pg_dsn: str) -> None:
    bucket = s3_server.create_bucket()
    args = ["--s3-bucket", bucket, "--s3-endpoint", s3_server.endpoint, "--pg-dsn", pg_dsn]
    assert run(runner, config.root, *args, "--quiet").exit_code == 0
    remote = S3BlobStore(bucket, endpoint=s3_server.endpoint)
    victim = small.list(USERS[0], Query(size=1)).items[0].sha256
    size = remote.size(victim)
    remote.client.put_object(Bucket=bucket, Key=remote.key(victim), Body=b"\0" * size)  # same size, other bytes
    before = config.root.joinpath("casvault.json").read_bytes()

    result = run(runner, config.root, *args, "--verify", "--switch")
    assert result.exit_code == 1
    assert "verification failed, not switching" in result.output
    assert "\n" not in result.output.strip().split("Error: ", 1)[1]
    assert config.root.joinpath("casvault.json").read_bytes() == before  # not switched

    result = run(runner, config.root, *args, "--verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["blobs_copied"] == 1 and report["ok"]  # the quarantined copy was replaced
    assert remote.verify(victim) == victim


def test_index_that_lost_rows_fails_verification(small: Store, s3_server, pg_dsn: str) -> None:
    remote = S3BlobStore(s3_server.create_bucket(), endpoint=s3_server.endpoint)
    index = PostgresIndex(pg_dsn)
    assert migrate(small, remote, index).ok
    lost = small.list(USERS[1], Query(size=1)).items[0].id
    with index.connection() as conn:
        conn.execute("DELETE FROM casvault.records WHERE id = %s", (lost,))
    report = migrate(small, remote, index)
    assert not report.ok
    assert [m["owner"] for m in report.user_mismatches] == [USERS[1]]
    assert report.user_mismatches[0]["missing"] == [lost]
    from casvault.errors import Conflict

    with pytest.raises(Conflict):
        migrate(small, remote, index, do_switch=True)
    assert "index_backend" not in msgspec.json.decode(small.layout.config_file.read_bytes())


def test_missing_bucket_is_a_one_line_error(small: Store, config: Config, runner, s3_server, pg_dsn: str) -> None:
    result = run(runner, config.root, "--s3-bucket", "no-such-bucket", "--s3-endpoint", s3_server.endpoint,
                 "--pg-dsn", pg_dsn)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: S3 bucket 'no-such-bucket' does not exist"


def test_unreachable_postgres_is_a_one_line_error(small: Store, config: Config, runner, s3_server) -> None:
    from tests.servers import free_port

    dsn = f"host=127.0.0.1 port={free_port()} user=postgres dbname=x connect_timeout=2"
    result = run(runner, config.root, "--s3-bucket", s3_server.create_bucket(), "--s3-endpoint", s3_server.endpoint,
                 "--pg-dsn", dsn)
    assert result.exit_code == 1
    assert result.output.startswith("Error: PostgreSQL is not reachable")
    assert len(result.output.strip().splitlines()) == 1


def test_switched_dsn_keeps_no_password() -> None:
    spec = postgres_spec("host=db.internal port=5432 user=casvault password=s3cret dbname=casvault")
    assert "s3cret" not in spec["dsn"] and "password" not in spec["dsn"]
    assert "host=db.internal" in spec["dsn"]
    spec = postgres_spec("postgresql://casvault:s3cret@db.internal/casvault")
    assert "s3cret" not in spec["dsn"]
