"""``casvault backup`` and ``casvault restore``, by day partition."""

from __future__ import annotations

from pathlib import Path

import click

from casvault import backup as backups
from casvault.validate import is_user_id

from .common import (
    core_errors,
    day_option,
    day_str,
    dry_run_option,
    emit,
    human_bytes,
    json_option,
    known_users,
    progress_for,
    quiet_option,
    store_from_ctx,
)


@click.command("backup")
@day_option("--from", "First day (YYYY-MM-DD, partition time zone).", required=True)
@day_option("--to", "Last day, inclusive.", required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Backup folder.")
@click.option("--user", default=None, help="Only this user.")
@json_option
@quiet_option
@click.pass_context
@core_errors
def backup_cmd(ctx: click.Context, out: Path, user: str | None, as_json: bool, quiet: bool, **days) -> None:
    """Back up the records made on each day of a range: one archive per day, blobs once.

    A second backup of an unchanged day writes nothing new. Exits 1 when a
    blob in the store was missing or damaged (that record is not backed up).

    Example: casvault backup --from 2026-11-01 --to 2026-11-30 --out /backup/casvault
    """
    if user is not None and not is_user_id(user):
        raise click.BadParameter("must be anon-<32 hex> or u-...", param_hint="--user")
    store = store_from_ctx(ctx)
    known_users(store, [user] if user else None)
    result = backups.backup(store, out, day_str(days["from"]), day_str(days["to"]), user, progress_for(quiet))
    emit(as_json, result.as_dict(), lambda: [
        *(f"{d['day']}: {d['records']} records, {d['new_blobs']} new blobs, archive {d['archive']}" for d in result.days),
        *(f"failed: {f}" for f in result.failed),
        f"{result.records} records in {len(result.days)} days; {result.archives_written} archives written, "
        f"{result.archives_unchanged} unchanged, {result.blobs_written} blobs ({human_bytes(result.bytes_written)}) written",
    ], quiet)
    if result.failed:
        ctx.exit(1)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@day_option("--from", "First day to restore (default: all).")
@day_option("--to", "Last day to restore, inclusive.")
@dry_run_option
@json_option
@quiet_option
@click.pass_context
@core_errors
def restore_cmd(ctx: click.Context, source: Path, dry_run: bool, as_json: bool, quiet: bool, **days) -> None:
    """Restore a backup folder into this store (empty or live); existing records are left alone.

    Blobs are verified (sha256) before use. Records this store purged, or
    that a merge moved to another user, are not brought back. --dry-run
    checks everything and reports what would be restored, writing nothing.
    Exits 1 when an archive or blob was damaged or missing.

    Example: casvault restore /backup/casvault --from 2026-11-01 --to 2026-11-07 --dry-run
    """
    store = store_from_ctx(ctx)
    result = backups.restore(store, source, day_str(days["from"]), day_str(days["to"]), progress_for(quiet),
                             dry_run=dry_run)
    verb = "would restore" if dry_run else "restored"
    emit(as_json, result.as_dict(), lambda: [
        *(f"failed: {f}" for f in result.failed),
        f"{len(result.days)} archives: {result.restored} {verb}, {result.existing} already there, "
        f"{result.purged} purged here and {result.moved} merged into another user (both skipped), "
        f"{len(result.failed)} failed",
    ], quiet)
    if result.failed:
        ctx.exit(1)


def register(group: click.Group) -> None:
    """Add ``backup`` and ``restore``."""
    group.add_command(backup_cmd)
    group.add_command(restore_cmd)
