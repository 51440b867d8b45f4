"""Maintenance commands: reindex, watch, thumbnails, quota-report, dedupe-report, purge-trash, gc, fsck.

Each periodic job takes the store's job lock of its name (the scheduler
takes the same), so a second run at the same time exits at once with code
75 and a one-line message.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import click

from casvault import adopt, fsck, gc, reports, thumbjob, trash
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

ORPHAN_KINDS = {"orphan_projection", "orphan_thumb", "blob_missing", "stray_temp"}


def _users(values: tuple[str, ...]) -> list[str] | None:
    for value in values:
        if not is_user_id(value):
            raise click.BadParameter(f"{value!r} is not a user id (anon-<32 hex> or u-...)", param_hint="--user")
    return sorted(set(values)) or None


# --- reindex --------------------------------------------------------------------


@click.command()
@click.option("--repair", is_flag=True, help="Clean up the orphans found (orphan blobs are left to gc).")
@click.option("--adopt", "do_adopt", is_flag=True, help="Turn plain files in outputs/ into records, in place.")
@dry_run_option
@json_option
@quiet_option
@click.pass_context
@core_errors
def reindex(ctx: click.Context, repair: bool, do_adopt: bool, dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Rebuild every user's manifest from the sidecars and report orphans.

    Orphans: blobs no record names, projections without a sidecar, sidecars
    whose blob is missing, stray temp files. --repair cleans them without
    losing bytes; --adopt first adopts plain files an older app wrote into
    outputs/users/ (re-runnable: an interrupted run resumes) and sets aside
    what can never be adopted (non-images, unknown folders, symlinks, FIFOs,
    devices) under quarantine/foreign/ with a note. A sidecar that is not a
    valid record, or that names another user's blob without carrying its
    bytes, is moved to quarantine/records/ and reported (not with --dry-run).

    Example: casvault reindex --adopt --repair --json
    """
    store = store_from_ctx(ctx)
    progress = progress_for(quiet)
    result: dict[str, Any] = {"dry_run": dry_run}
    failed = False
    with store.locks.job("reindex"):
        # NOTE: bad sidecars (and, with --adopt, foreign files) are set aside
        # first, so the manifests are rebuilt without them.
        hostile = {"bad_sidecar", "foreign"} if do_adopt else {"bad_sidecar"}
        aside = fsck.check(store, repair=not dry_run, only=hostile)
        result["set_aside"] = [p.as_dict() for p in aside.problems]
        failed |= bool(aside.remaining)
        if do_adopt:
            if dry_run:
                result["adopt"] = {"candidates": [str(p) for p in adopt.candidates(store)]}
            else:
                adopted = adopt.adopt_tree(store, progress=progress)
                result["adopt"] = adopted.as_dict()
                failed |= adopted.count("failed") > 0
        check = fsck.check(store, repair=repair and not dry_run, only=ORPHAN_KINDS, progress=progress)
        result["orphans"] = [p.as_dict() for p in check.problems]
        if check.remaining is not None:
            failed |= bool(check.remaining)
        users = store.users()
        result["users"] = len(users)
        if not dry_run:
            result["records"] = sum(store.rebuild_manifest(u) for u in users)
        marked = gc.referenced(store)
        loose = [b for b in store.blobs.iter() if b.sha256 not in marked]
        result["orphan_blobs"] = {"count": len(loose), "bytes": sum(b.size for b in loose)}
    emit(as_json, result, lambda: _reindex_text(result), quiet)
    if failed:
        ctx.exit(1)


def _reindex_text(result: dict[str, Any]):
    if "adopt" in result:
        a = result["adopt"]
        if "candidates" in a:
            yield f"would adopt {len(a['candidates'])} plain files"
        else:
            yield f"adopted {a['adopted']}, resumed {a['resumed']}, failed {a['failed']}"
            for item in a["items"]:
                if item["status"] == "failed":
                    yield f"  failed: {item['path']}: {item.get('reason')}"
    for p in result.get("set_aside", []) + result["orphans"]:
        yield _problem_line(p)
    if "records" in result:
        yield f"rebuilt {result['users']} manifests ({result['records']} records)"
    ob = result["orphan_blobs"]
    yield f"{ob['count']} blobs no record names ({human_bytes(ob['bytes'])}; casvault gc sweeps them)"


def _problem_line(p: dict[str, Any]) -> str:
    """One fsck problem as text: kind, user/id (when known), path, detail, what became of it."""
    who = "/".join(x for x in (p["user"], p["id"]) if x)
    where = ": ".join(x for x in (who, p["path"]) if x)
    state = " [LOST]" if p.get("lost") else " [repaired]" if p["repaired"] else ""
    return f"{p['kind']}: {where}: {p['detail']}{state}"


# --- watch ------------------------------------------------------------------------


@click.command()
@click.option("--settle", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds a file's size must stay the same before it is adopted.")
@json_option
@quiet_option
@click.pass_context
@core_errors
def watch(ctx: click.Context, settle: float, as_json: bool, quiet: bool) -> None:
    """Follow outputs/users/ and adopt files other programs drop there, within seconds.

    Files already there are adopted first. One watcher per store (the
    server's CASVAULT_WATCH=1 watcher counts). Stops on Ctrl-C or SIGTERM.

    Example: casvault watch --json
    """
    from casvault.watch import Watcher

    store = store_from_ctx(ctx)

    def report(result: adopt.Adopted) -> None:
        if as_json:
            click.echo(json.dumps(result.as_dict()))
        elif not quiet:
            click.echo(f"{result.status}: {result.path}" + (f" → {result.id}" if result.id else "")
                       + (f" ({result.reason})" if result.reason else ""))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with store.locks.job("watch"):
        watcher = Watcher(store, settle=settle, on_adopt=report)
        watcher.start()
        if not quiet and not as_json:
            click.echo(f"watching {watcher.base}", err=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()


# --- thumbnails -------------------------------------------------------------------


@click.command()
@click.option("--force", is_flag=True, help="Redo every thumbnail, not only the missing ones.")
@click.option("--user", "users", multiple=True, help="Only this user (repeatable).")
@day_option("--since", "Only records created on or after this day (YYYY-MM-DD).")
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="Worker processes (default: all cores).")
@json_option
@quiet_option
@click.pass_context
@core_errors
def thumbnails(ctx: click.Context, force: bool, users: tuple[str, ...], since, jobs: int | None, as_json: bool,
               quiet: bool) -> None:
    """Make missing thumbnails in parallel (--force: all of them).

    Example: casvault thumbnails --since 2026-11-01 --jobs 4
    """
    owners = _users(users)
    store = store_from_ctx(ctx)
    known_users(store, owners)
    lo = store.day_bounds(day_str(since), None)[0] if since else None
    with store.locks.job("thumbnails"):
        result = thumbjob.regenerate(store, force=force, owners=owners, since=lo, jobs=jobs,
                                     progress=progress_for(quiet))
    data = result.as_dict()
    emit(as_json, data, lambda: [
        *(f"failed: {f['user']}/{f['id']}: {f['reason']}" for f in result.failed),
        f"{result.made} made, {result.present} already there, {result.sidecars_updated} sidecars updated, "
        f"{len(result.failed)} failed",
    ], quiet)
    if result.failed:
        ctx.exit(1)


# --- reports ----------------------------------------------------------------------


@click.command("quota-report")
@click.option("--over", type=click.FloatRange(0, None), default=None, help="Only users at or over this percent.")
@json_option
@click.pass_context
@core_errors
def quota_report(ctx: click.Context, over: float | None, as_json: bool) -> None:
    """Per user: images, bytes, trash, limit and percent used.

    Example: casvault quota-report --over 90 --json
    """
    store = store_from_ctx(ctx)
    rows = reports.quota_report(store, over)

    def text():
        if over is not None and not (store.limits.max_bytes or store.limits.max_count):
            yield (f"no quota limits are set (CASVAULT_QUOTA_MAX_BYTES, CASVAULT_QUOTA_MAX_COUNT): "
                   f"no user can be over {over:g}%")
            return
        if not rows:
            yield "no users" + (f" at or over {over:g}%" if over is not None else "")
            return
        yield f"{'user':<40} {'images':>7} {'bytes':>11} {'trash':>6} {'trash bytes':>11} {'used':>7}"
        for r in rows:
            pct = "-" if r["percent"] is None else f"{r['percent']:.1f}%"
            yield (f"{r['user']:<40} {r['count']:>7} {human_bytes(r['bytes']):>11} {r['trash_count']:>6} "
                   f"{human_bytes(r['trash_bytes']):>11} {pct:>7}")

    emit(as_json, {"limits": store.limits.as_dict(), "users": rows}, text)


@click.command("dedupe-report")
@click.option("--top", type=click.IntRange(0, 10_000), default=10, show_default=True, help="Most shared blobs to list.")
@json_option
@click.pass_context
@core_errors
def dedupe_report(ctx: click.Context, top: int, as_json: bool) -> None:
    """Logical bytes vs stored bytes, savings, the most shared blobs, per user.

    Example: casvault dedupe-report --top 5
    """
    store = store_from_ctx(ctx)
    data = reports.dedupe_report(store, top)

    def text():
        yield (f"{data['records']} records on {data['blobs_referenced']} blobs: logical "
               f"{human_bytes(data['logical_bytes'])}, stored {human_bytes(data['stored_bytes'])}, saved "
               f"{human_bytes(data['savings_bytes'])} ({data['savings_percent']}%)")
        for b in data["most_shared"]:
            yield f"  {b['sha256'][:16]}… {b['records']} records, {b['users']} users, {human_bytes(b['bytes'])}"
        for u in data["users"]:
            yield (f"{u['user']}: {u['records']} records, {human_bytes(u['logical_bytes'])} logical, "
                   f"{human_bytes(u['unique_bytes'])} unique, {u['blobs_shared_with_others']} blobs shared")

    emit(as_json, data, text)


# --- purge-trash and gc ---------------------------------------------------------------


@click.command("purge-trash")
@click.option("--older-than", "days", type=click.FloatRange(0, None), default=None,
              help="Days in the trash (default CASVAULT_TRASH_RETENTION_DAYS).")
@dry_run_option
@json_option
@quiet_option
@click.pass_context
@core_errors
def purge_trash_cmd(ctx: click.Context, days: float | None, dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Delete for good the records trashed longer ago than the retention.

    Blobs stay until gc. A file already missing counts as deleted; a
    failure is reported and the exit code is 1.

    Example: casvault purge-trash --older-than 30 --dry-run
    """
    store = store_from_ctx(ctx)
    with store.locks.job("purge-trash"):
        result = trash.purge_expired(store, days, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    emit(as_json, result.as_summary(), lambda: [
        *(f"failed: {f['owner']}/{f['id'] or '-'}: {f['reason']}" for f in result.failed),
        f"{verb} {result.count} records ({human_bytes(result.bytes_freed)}) of {result.users} users, "
        f"{len(result.failed)} failed",
    ], quiet)
    if result.failed:
        ctx.exit(1)


@click.command("gc")
@click.option("--grace", type=click.FloatRange(0, None), default=gc.DEFAULT_GRACE_HOURS, show_default=True,
              help="Hours an unreferenced blob is kept (protects ingests in progress).")
@dry_run_option
@json_option
@quiet_option
@click.pass_context
@core_errors
def gc_cmd(ctx: click.Context, grace: float, dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Sweep blobs no record (active or trash) names, older than the grace period.

    Example: casvault gc --grace 24 --json
    """
    store = store_from_ctx(ctx)
    result = gc.collect(store, grace, dry_run=dry_run, progress=progress_for(quiet))
    data = result.as_dict()
    verb = "would sweep" if dry_run else "swept"
    emit(as_json, data, lambda: [
        f"{result.blobs} blobs, {result.referenced} referenced, {result.young} unreferenced within the grace; "
        f"{verb} {result.swept} ({human_bytes(result.swept_bytes)})"
        + (f", {result.kept_late} kept (named during the sweep)" if result.kept_late else "")
    ], quiet)


# --- fsck ------------------------------------------------------------------------------


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Fix what can be fixed without losing data, then re-check.")
@click.option("--scrub", is_flag=True, help="Re-hash blobs (blake3 recorded at ingest).")
@click.option("--sha256", "use_sha256", is_flag=True, help="Scrub with sha256 instead of blake3.")
@click.option("--user", "users", multiple=True, help="Only this user (repeatable).")
@json_option
@quiet_option
@click.pass_context
@core_errors
def fsck_cmd(ctx: click.Context, repair: bool, scrub: bool, use_sha256: bool, users: tuple[str, ...],
             as_json: bool, quiet: bool) -> None:
    """Check every record against its blob, projection, thumbnail and manifest.

    Exit code 0 only when the store is clean (after --repair: when the
    re-check is clean). A damaged blob is quarantined, never deleted.

    Example: casvault fsck --repair --scrub --json
    """
    owners = _users(users)
    store = store_from_ctx(ctx)
    with store.locks.job("fsck"):
        report = fsck.check(store, repair=repair, scrub=scrub or use_sha256, use_sha256=use_sha256, owners=owners,
                            progress=progress_for(quiet))

    def text():
        for p in report.problems:
            yield _problem_line(p.as_dict())
        for p in report.lost:
            yield f"LOST: {p.user}/{p.id}: the image is gone (casvault restore puts it back from a backup)"
        yield from (f"note: {note}" for note in report.notes)
        checked = ", ".join(f"{n} {k}" for k, n in report.checked.items())
        left = f"; {len(report.remaining)} left after repair" if report.remaining is not None else ""
        yield f"{'clean' if report.clean else 'NOT clean'}: {len(report.problems)} problems{left} ({checked})"

    emit(as_json, report.as_dict(), text, quiet)
    if not report.clean:
        ctx.exit(1)


def register(group: click.Group) -> None:
    """Add the maintenance commands."""
    for command in (reindex, watch, thumbnails, quota_report, dedupe_report, purge_trash_cmd, gc_cmd, fsck_cmd):
        group.add_command(command)
