"""``casvault backup`` and ``casvault restore``, by day partition."""

from __future__ import annotations

from pathlib import Path

import click

from casvault import backup as backups
from casvault.validate import is_user_id

from .common import (
    config_from_ctx,
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
    """Restore a backup folder into this store: a new, empty or live one; repairs by default.

    Into a missing or empty root the store is created with the backup's own
    settings (format, partition time zone). Into a live store, missing
    records are added and, by default (no option needed), records already
    here get back a blob that is missing, damaged or quarantined, and their
    projection and thumbnail, from the backup's verified copy; records that
    fsck --repair set aside as lost come back whole. Every record is checked
    as an ingest checks it (ids, digests, dates, sizes, tags, mime against
    the bytes); a bad one is reported with its reason and the rest are
    restored. A record whose blob the backup does not carry is refused
    unless its user already has those bytes here. Records this store purged,
    or that a merge moved to another user, are not brought back. Archives
    that are symlinks, FIFOs or devices are refused. --dry-run checks
    everything and writes nothing. Exits 1 when anything was refused.

    Example: casvault restore /backup/casvault --from 2026-11-01 --to 2026-11-07 --dry-run
    """
    store, created = backups.open_for_restore(config_from_ctx(ctx), source, dry_run=dry_run)
    result = backups.restore(store, source, day_str(days["from"]), day_str(days["to"]), progress_for(quiet),
                             dry_run=dry_run)
    result.created = created
    verb = "would restore" if dry_run else "restored"
    fixed = "would repair" if dry_run else "repaired"
    emit(as_json, result.as_dict(), lambda: [
        *([f"created a store at {store.layout.root} (partition time zone {store.layout.tz})"] if created else []),
        *(f"failed: {_failure(f)}" for f in result.failed),
        f"{len(result.days)} archives: {result.restored} {verb}, {result.repaired} {fixed}, "
        f"{result.existing} already there, "
        f"{result.purged} purged here and {result.moved} merged into another user (both skipped), "
        f"{len(result.failed)} failed",
    ], quiet)
    if result.failed:
        ctx.exit(1)


def _failure(f: dict[str, str]) -> str:
    """One refused archive, member or record as text."""
    where = " ".join(f"{k}={f[k]}" for k in ("archive", "member", "id", "sha256") if k in f)
    return f"{where}: {f['reason']}"


def register(group: click.Group) -> None:
    """Add ``backup`` and ``restore``."""
    group.add_command(backup_cmd)
    group.add_command(restore_cmd)
