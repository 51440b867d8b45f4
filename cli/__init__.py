"""The ``casvault`` command: a Click group, one module per command family.

Each module in ``COMMAND_MODULES`` defines a ``register(group)`` function
that adds its commands; the core is reached only through ``casvault``.
"""

from __future__ import annotations

import importlib

import click

COMMAND_MODULES = (
    "cli.serve",
    "cli.ingest",
    "cli.maintenance",
    "cli.backup",
    "cli.users",
    "cli.scheduler",
    "cli.comfy",
    "cli.migrate",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="CASVAULT_ROOT", default="./data", show_default=True, help="Store root (CASVAULT_ROOT).")
@click.pass_context
def main(ctx: click.Context, root: str) -> None:
    """casvault: content-addressed image history store.

    Example: casvault --root ./data fsck --json
    """
    ctx.obj = {"root": root}


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
        continue
    _module.register(main)
