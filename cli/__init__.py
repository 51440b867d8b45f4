"""The ``casvault`` command: a Click group, one module per command family.

Each module in ``COMMAND_MODULES`` defines a ``register(group)`` function
that adds its commands; the core is reached only through ``casvault``.
``--root`` is accepted before the command name and after it.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMAND_MODULES = (
    "cli.init",
    "cli.serve",
    "cli.ingest",
    "cli.maintenance",
    "cli.backup",
    "cli.users",
    "cli.scheduler",
    "cli.comfy",
    "cli.migrate",
)


def _root_after_command(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["root"] = value


def _add_root_option(command: click.Command) -> None:
    """Give ``command`` (and a subgroup's commands) its own ``--root``, which wins over the group's."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_root_option(sub)
        return
    if any(p.name == "root" for p in command.params):
        return
    # NOTE: no envvar here: CASVAULT_ROOT is read by the group, and an
    # environment value must not override a --root given before the command.
    command.params.append(click.Option(
        ["--root"], default=None, expose_value=False, is_eager=True, callback=_root_after_command,
        metavar="DIR", help="Store root (also accepted before the command; CASVAULT_ROOT).",
    ))


class CasvaultGroup(click.Group):
    """The top-level group: every command added to it also takes ``--root``."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add ``cmd`` with a ``--root`` option of its own."""
        _add_root_option(cmd)
        super().add_command(cmd, name)


@click.group(cls=CasvaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="CASVAULT_ROOT", default="./data", show_default=True, help="Store root (CASVAULT_ROOT).")
@click.version_option(package_name="casvault", prog_name="casvault", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, root: str) -> None:
    """casvault: content-addressed image history store.

    Start with `casvault init` (or `casvault restore BACKUP`) on a new root.

    Example: casvault --root ./data fsck --json
    """
    obj: dict[str, Any] = ctx.ensure_object(dict)
    obj.setdefault("root", root)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
        continue
    _module.register(main)
