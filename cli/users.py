"""``casvault users``: user namespace operations (merge a guest into a member)."""

from __future__ import annotations

import click

from casvault import merge

from .common import core_errors, dry_run_option, emit, json_option, progress_for, quiet_option, store_from_ctx


@click.group()
def users() -> None:
    """User namespace operations.

    Example: casvault users merge anon-0123456789abcdef0123456789abcdef u-alice
    """


@users.command("merge")
@click.argument("anon_id")
@click.argument("member_id")
@dry_run_option
@json_option
@quiet_option
@click.pass_context
@core_errors
def merge_cmd(ctx: click.Context, anon_id: str, member_id: str, dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Move every record of guest ANON_ID (images, inputs, controls, trash) to member MEMBER_ID.

    Crash-safe and resumable: run it again after an interruption (or
    fsck --repair finishes it). The member's own images are kept.

    Example: casvault users merge anon-0123456789abcdef0123456789abcdef u-alice --json
    """
    store = store_from_ctx(ctx)
    result = merge.merge_users(store, anon_id, member_id, dry_run=dry_run, progress=progress_for(quiet))
    verb = "would move" if dry_run else "moved"
    emit(as_json, result.as_dict(), lambda: [
        f"{verb} {result.moved if not dry_run else result.records} records ({result.trash} in the trash) "
        f"from {anon_id} to {member_id}"
        + (f"; finished {result.finished} from an interrupted run" if result.finished else "")
        + (f"; {result.skipped} skipped (see fsck)" if result.skipped else ""),
    ], quiet)


def register(group: click.Group) -> None:
    """Add ``users``."""
    group.add_command(users)
