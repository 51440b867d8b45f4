"""``casvault init``: create a store on a new root (idempotent)."""

from __future__ import annotations

import click

from casvault.config import LINK_MODES
from casvault.store import Store

from .common import config_from_ctx, core_errors, emit, json_option


@click.command("init")
@click.option("--partition-tz", default=None, metavar="TZ",
              help="Time zone of the YYYY/MM/DD folders, e.g. Asia/Seoul (default UTC; CASVAULT_PARTITION_TZ).")
@click.option("--link-mode", type=click.Choice(LINK_MODES), default=None,
              help="How projections are made (default auto: hardlink, else symlink, else copy; CASVAULT_LINK_MODE).")
@json_option
@click.pass_context
@core_errors
def init(ctx: click.Context, partition_tz: str | None, link_mode: str | None, as_json: bool) -> None:
    """Create a store at --root. On an existing store: say so and change nothing.

    Both settings are fixed when the store is created; asking an existing
    store for another one is an error.

    Example: casvault --root /srv/casvault/data init --partition-tz Asia/Seoul
    """
    config = config_from_ctx(ctx)
    store, created = Store.init(config, partition_tz=partition_tz, link_mode=link_mode)
    data = {"root": str(store.layout.root), "created": created, "format": store.format,
            "link_mode": store.link_mode, "partition_tz": str(store.layout.tz)}
    verb = "created" if created else "already a store (nothing changed):"
    emit(as_json, data, lambda: [
        f"{verb} {data['root']} (format {data['format']}, link mode {data['link_mode']}, "
        f"partition time zone {data['partition_tz']})"
    ])


def register(group: click.Group) -> None:
    """Add ``init``."""
    group.add_command(init)
