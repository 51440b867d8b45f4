"""``casvault serve``: the Flask development server."""

from __future__ import annotations

import os

import click

from .common import config_from_ctx, core_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--debug", is_flag=True, help="Flask debug mode (reloader and debugger).")
@click.pass_context
@core_errors
def serve(ctx: click.Context, host: str, port: int, debug: bool) -> None:
    """Run the development server over the store (creates it if missing; CASVAULT_DEV=1).

    Production runs gunicorn (make serve, ops/gunicorn.conf.py).

    Example: casvault --root ./data serve --port 8000
    """
    from web import create_app

    os.environ["CASVAULT_DEV"] = "1"
    config = config_from_ctx(ctx, dev=True)
    app = create_app(config)
    click.echo(f"casvault development server on http://{host}:{port}/ over {config.root}", err=True)
    app.run(host=host, port=port, debug=debug, use_reloader=debug)


def register(group: click.Group) -> None:
    """Add ``serve``."""
    group.add_command(serve)
