"""``casvault migrate``: move a store to S3-compatible blobs and a PostgreSQL index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import click

from casvault.errors import Conflict

if TYPE_CHECKING:
    from casvault.migrate import MigrationReport

from .common import core_errors, emit, human_bytes, json_option, progress_for, quiet_option, store_from_ctx


def _summary(report: MigrationReport) -> Iterator[str]:
    from casvault.migrate import iter_errors

    yield (
        f"blobs: {report.blobs_copied} copied ({human_bytes(report.bytes_copied)}), "
        f"{report.blobs_present} already in {report.target_blobs}"
    )
    yield (
        f"records: {report.records} in PostgreSQL for {report.users} user(s), "
        f"{report.events_applied} manifest event(s) applied in {report.passes} pass(es)"
    )
    yield (
        f"verified: {report.users_verified}/{report.users} user(s), "
        f"{report.digests_checked} digest(s) re-hashed from the bucket"
    )
    yield from iter_errors(report)
    if report.switched:
        yield "switched: casvault.json now names the S3 blobs and the PostgreSQL index; restart the servers"
    yield "ok" if report.ok else "NOT OK"


@click.command("migrate")
@click.option("--s3-bucket", required=True, envvar="CASVAULT_S3_BUCKET", help="Target bucket (CASVAULT_S3_BUCKET).")
@click.option("--s3-endpoint", default=None, envvar="CASVAULT_S3_ENDPOINT",
              help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 for MinIO (default: AWS).")
@click.option("--s3-prefix", default="", envvar="CASVAULT_S3_PREFIX", help="Key prefix inside the bucket.")
@click.option("--pg-dsn", required=True, envvar="CASVAULT_PG_DSN",
              help="PostgreSQL connection string (CASVAULT_PG_DSN); keep the password in PGPASSWORD or ~/.pgpass.")
@click.option("--verify", "verify_all", is_flag=True, help="Re-hash every referenced blob in the bucket, not a sample.")
@click.option("--switch", "do_switch", is_flag=True,
              help="After a clean verification, record the new backends in casvault.json.")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel uploads.")
@json_option
@quiet_option
@click.pass_context
@core_errors
def migrate(
    ctx: click.Context,
    s3_bucket: str,
    s3_endpoint: str | None,
    s3_prefix: str,
    pg_dsn: str,
    verify_all: bool,
    do_switch: bool,
    workers: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Copy blobs to S3 and records to PostgreSQL while the store keeps serving.

    Uploads every blob the bucket lacks (same keys: blobs/sha256/ab/cd/<hex>),
    applies each user's manifest to PostgreSQL from where the last run
    stopped, repeats until caught up, then verifies record counts per user
    and blob digests (a sample, or all with --verify). With --switch and a
    clean verification, casvault.json names the new backends and the next
    start uses them; run it once more after restarting the servers to catch
    up. Reruns continue where they stopped. Exits 1 when verification fails.

    Example: casvault migrate --s3-bucket images --s3-endpoint http://127.0.0.1:9000 --pg-dsn "host=db dbname=casvault" --verify --switch --json
    """
    # NOTE: boto3 and psycopg are imported here, not at module level: every
    # other command (fsck, gc, cron jobs) would otherwise pay ~1 s to start.
    from casvault.backends.postgres import PostgresIndex
    from casvault.backends.s3 import S3BlobStore
    from casvault.migrate import migrate as run_migration

    store = store_from_ctx(ctx)
    remote = S3BlobStore(s3_bucket, endpoint=s3_endpoint, prefix=s3_prefix)
    index = PostgresIndex(pg_dsn)
    try:
        report = run_migration(
            store, remote, index, verify_all=verify_all, do_switch=do_switch,
            progress=progress_for(quiet), workers=workers,
        )
    except Conflict as exc:
        failed = exc.details.get("report")
        if as_json and failed is not None:
            emit(True, failed)
        raise
    finally:
        index.close()
    emit(as_json, report.as_dict(), lambda: _summary(report), quiet=quiet)
    if not report.ok:
        raise click.ClickException("verification failed (see the report)")


def register(group: click.Group) -> None:
    """Add ``migrate`` to the ``casvault`` group."""
    group.add_command(migrate)


__all__ = ["register", "migrate"]
