"""ComfyUI commands: ``comfy-cleanup`` (staged inputs left behind) and ``comfy-sync`` (pull finished jobs)."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from casvault import staging
from casvault.comfy_sync import ComfyClient, SyncReport, sync
from casvault.errors import UpstreamError

from .common import config_from_ctx, core_errors, dry_run_option, emit, json_option, quiet_option, store_from_ctx


def register(group: click.Group) -> None:
    """Add the ComfyUI commands to the ``casvault`` group."""
    group.add_command(comfy_cleanup)
    group.add_command(comfy_sync)


@click.command("comfy-cleanup")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), required=True, metavar="HOURS",
              help="Remove staged files older than this many hours.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="ComfyUI's input folder (default: CASVAULT_COMFY_INPUT_DIR or COMFY_INPUT_DIR).")
@dry_run_option
@json_option
@click.pass_context
@core_errors
def comfy_cleanup(ctx: click.Context, older_than: float, folder: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove staged inputs (casvault_<id>_<hex>.<ext>) that no job released.

    Only files named by staging are touched; they are aged by the entry
    itself, never by the blob it links to.

    Example: casvault comfy-cleanup --older-than 24 --dir /srv/ComfyUI/input --json
    """
    folder = folder or staging.input_dir_from(config_from_ctx(ctx))
    if not folder:
        raise click.UsageError("no ComfyUI input folder: pass --dir or set COMFY_INPUT_DIR")
    names = staging.cleanup_staged(folder, older_than, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    emit(
        as_json,
        {"dir": folder, "older_than_hours": older_than, "dry_run": dry_run, "removed": names, "count": len(names)},
        lambda: [*(f"{verb} {n}" for n in names), f"{verb} {len(names)} staged file(s) from {folder}"],
    )


def _summary(report: SyncReport) -> list[str]:
    lines = [f"skipped {s['prompt_id']}: {s['reason']}" for s in report.skipped]
    lines += [f"failed {e['prompt_id']} {e['file']}: {e['error']}" for e in report.errors]
    lines.append(
        f"{report.prompts_seen} job(s) in history, {report.prompts_synced} new: "
        f"{report.images_ingested} image(s) ingested, {report.images_present} already stored, "
        f"{len(report.skipped)} job(s) skipped, {len(report.errors)} image(s) failed, "
        f"{report.retrying} to fetch again"
    )
    return lines


@click.command("comfy-sync")
@click.option("--url", default="http://127.0.0.1:8188", show_default=True, envvar="COMFYUI_URL",
              help="ComfyUI's address (COMFYUI_URL).")
@click.option("--owner-from", default="extra_data.owner_id", show_default=True,
              help="Dotted path to the owner's user id in each job's extra_data.")
@click.option("--default-owner", default=None, help="Owner for jobs whose extra_data has no owner at that path.")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS",
              help="Seconds between passes when polling.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, metavar="SECONDS",
              help="HTTP timeout for each request to ComfyUI.")
@click.option("--max-items", type=click.IntRange(min=1), default=None,
              help="Read only the newest N jobs of ComfyUI's history.")
@json_option
@quiet_option
@click.pass_context
@core_errors
def comfy_sync(
    ctx: click.Context,
    url: str,
    owner_from: str,
    default_owner: str | None,
    once: bool,
    interval: float,
    timeout: float,
    max_items: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Ingest the outputs of finished ComfyUI jobs, each image once.

    Reads /history, fetches each new output image with /view and stores it
    for the owner named in the job's extra_data. Handled jobs are remembered
    in <root>/meta/comfy-sync.json, so reruns ingest nothing twice. Failed
    and interrupted jobs give the files they saved, tagged comfyui:failed or
    comfyui:interrupted. A job with no owner waits until --default-owner is
    given; an output that answers 404 is fetched again later (doubling
    back-off, 5 attempts); a file over the upload limit is reported and
    recorded, and blocks nothing. Without
    --once it polls every --interval seconds until SIGINT or SIGTERM, which
    end it cleanly between jobs; ComfyUI being unreachable is then reported
    and retried.

    Example: casvault comfy-sync --url http://127.0.0.1:8188 --owner-from extra_data.owner_id --once --json
    """
    store = store_from_ctx(ctx)
    client = ComfyClient(url, timeout=timeout, max_image_bytes=store.config.max_upload_bytes,
                         max_video_bytes=store.config.max_video_bytes)
    if once:
        report = sync(store, client, owner_from, default_owner=default_owner, max_items=max_items)
        emit(as_json, report.as_dict(), lambda: _summary(report), quiet=quiet)
        return
    stop = threading.Event()
    # NOTE: SIGINT and SIGTERM (systemd's stop) end the poller between jobs,
    # after the pass at hand has saved its state and printed its report.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        try:
            report = sync(
                store, client, owner_from, default_owner=default_owner, max_items=max_items, should_stop=stop.is_set
            )
        except UpstreamError as exc:
            click.echo(f"comfy-sync: {exc.message} (retrying in {interval:g}s)", err=True)
        else:
            if as_json:
                click.echo(json.dumps(report.as_dict(), separators=(",", ":")))
            elif not quiet and (report.prompts_synced or report.errors):
                for line in _summary(report):
                    click.echo(line)
            sys.stdout.flush()
        stop.wait(interval)
