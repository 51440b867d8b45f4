"""``casvault ingest``: store image files or whole folders (e.g. a ComfyUI output folder) for one owner."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import click

from casvault.blobs import digest
from casvault import safefs
from casvault.errors import CasvaultError, NotAnImage, UnsafeFile
from casvault.records import KINDS
from casvault.validate import is_user_id, sniff

from .common import core_errors, emit, json_option, progress_for, quiet_option, store_from_ctx


def _files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """The given files, and every entry under the given folders (sorted, hidden ones skipped).

    A path named on the command line is followed; inside a folder nothing
    is (safefs.walk): symlinks, FIFOs and devices are listed, and skipped
    with their reason when opened.
    """
    for path in paths:
        if path.is_dir():
            for folder, dirnames, filenames, foreign in safefs.walk(Path(os.path.realpath(path))):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                names = sorted([*filenames, *(f.path.name for f in foreign)])
                yield from (folder / name for name in names if not name.startswith("."))
        else:
            yield Path(os.path.realpath(path))


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--owner", required=True, help="The user the images belong to (anon-<32 hex> or u-...).")
@click.option("--kind", type=click.Choice(KINDS), default="generated", show_default=True)
@click.option("--now", is_flag=True, help="created_at = now instead of each file's mtime.")
@json_option
@quiet_option
@click.pass_context
@core_errors
def ingest(ctx: click.Context, paths: tuple[Path, ...], owner: str, kind: str, now: bool, as_json: bool,
           quiet: bool) -> None:
    """Ingest image files, or folders recursively, for one owner.

    PNG, JPEG and WebP are recognised by their signature; other files, and
    images over the upload limit, are skipped with the reason (without
    being read whole). A file already ingested for this owner (same
    sha256, same file name and same --kind) is skipped, so reruns are safe;
    the same file as another kind (a control of a generated image) is
    ingested. Exits 1 when a file failed.

    Example: casvault ingest ~/ComfyUI/output --owner u-alice --json
    """
    if not is_user_id(owner):
        raise click.BadParameter("must be anon-<32 hex> or u-<a-z0-9_->", param_hint="--owner")
    store = store_from_ctx(ctx)
    files = list(_files(paths))
    counts = {"ingested": 0, "skipped_duplicate": 0, "skipped": 0, "failed": 0}
    items: list[dict[str, Any]] = []
    for path in progress_for(quiet)(files, len(files), "ingesting"):
        status, detail = _ingest_one(store, path, owner, kind, now)
        counts[status] += 1
        items.append({"path": str(path), "status": status, **detail})
    emit(as_json, {**counts, "owner": owner, "items": items}, lambda: _text(counts, items), quiet)
    if counts["failed"]:
        ctx.exit(1)


def _ingest_one(store, path: Path, owner: str, kind: str, now: bool) -> tuple[str, dict[str, Any]]:
    # NOTE: the size and the first bytes decide before the whole file is
    # read: a ComfyUI folder holds multi-GB videos and latents beside the images.
    try:
        with safefs.open_regular(path) as (fh, st):
            head = fh.read(16)
            try:
                sniff(head)
            except NotAnImage as exc:
                return "skipped", {"reason": exc.message}
            limit = store.config.max_upload_bytes
            if st.st_size > limit:
                return "skipped", {"reason": f"larger than the upload limit ({st.st_size} > {limit} bytes)"}
            data = head + fh.read(limit + 1 - len(head))
    except UnsafeFile as exc:
        return "skipped", {"reason": exc.message}
    except OSError as exc:
        return "failed", {"reason": f"cannot read: {exc.strerror or exc}"}
    mtime = st.st_mtime
    sha = digest(data)
    duplicate = store.find_duplicate(owner, sha, path.name, kind)
    if duplicate is not None:
        return "skipped_duplicate", {"id": duplicate}
    created = None if now else datetime.fromtimestamp(mtime, timezone.utc)
    try:
        result = store.ingest(data, owner, kind, original_filename=path.name, created_at=created)
    except CasvaultError as exc:
        return "failed", {"reason": exc.message}
    return "ingested", {"id": result.record.id, "sha256": sha}


def _text(counts: dict[str, int], items: list[dict[str, Any]]):
    for item in items:
        if item["status"] in ("failed", "skipped"):
            yield f"{item['status']}: {item['path']}: {item['reason']}"
    yield ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())


def register(group: click.Group) -> None:
    """Add ``ingest``."""
    group.add_command(ingest)
