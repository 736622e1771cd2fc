"""``cerebro ui``: the original Cerebro demo's web UI (Dash), on localhost by default.

The page acts as the DSN's role: it reads and steers through :mod:`cerebro.catalog` on one
connection, so row-level security decides what it shows and every button lands in
``cerebro.events`` as ``human:<role>``. Anyone who reaches the port acts as that role, hence
the loopback default and the warning for any other address. Dash is imported only when the
command runs, so ``cerebro --help`` stays fast.
"""

from __future__ import annotations

import ipaddress

import click
import psycopg

from .. import catalog


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost' reach only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--dsn", default=None, help="database and role (default: CEREBRO_DSN, else embedded)"
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=8050, show_default=True)
@click.option(
    "--tensorboard-url",
    default="http://127.0.0.1:6006/",
    show_default=True,
    help="where `cerebro tensorboard` serves (the curves panel links to it)",
)
def command(dsn: str | None, host: str, port: int, tensorboard_url: str) -> None:
    """Web UI: pick or upload a model, launch a search, watch live curves, steer configs
    (stop / resume / clone / max epochs / add), drill down, read the events feed."""
    from .app import create_app

    if not is_loopback(host):
        click.echo(
            f"cerebro ui: WARNING: listening on {host}, not a loopback address: anyone who "
            "can reach this port acts as the DSN's database role (there is no login page)",
            err=True,
        )
    try:
        app, session = create_app(catalog.resolve_dsn(dsn), tensorboard_url)
    except psycopg.Error as e:
        raise click.ClickException(f"cannot connect: {e}") from None
    click.echo(f"cerebro ui: http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    try:
        app.run(host=host, port=port, debug=False)
    finally:
        session.close()
