"""`cerebro` command line: the embedded default and installation into an existing server."""

from __future__ import annotations

import os
import sys

import click
import psycopg

from . import __version__
from .cluster import Cluster, ClusterError


def _fail(e: Exception) -> None:
    click.echo(f"cerebro: {e}", err=True)
    sys.exit(1)


@click.group()
@click.version_option(__version__)
def main() -> None:
    """cerebro: model selection inside PostgreSQL."""
    from .nodes import use_pgpass

    # the nodes' passwords (cerebro up --nodes): for this command and the daemon it starts
    use_pgpass(Cluster.default().home)


@main.command()
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    help="also start the scheduler daemon in the background (default: yes)",
)
@click.option(
    "--nodes",
    "n_nodes",
    type=click.IntRange(min=0),
    default=0,
    help="also start N node servers (TCP 127.0.0.1, scram) registered on the coordinator "
    "(nodes created by an earlier `up --nodes` start anyway)",
)
def up(scheduler: bool, n_nodes: int) -> None:
    """Create (first time) and start the embedded PostgreSQL with the extension installed."""
    from .daemon import start_background
    from .nodes import state_file, up_nodes

    cluster = Cluster.default()
    try:
        cluster.up()
        if n_nodes or state_file(cluster.home).exists():  # nodes made earlier start too
            for node in up_nodes(cluster.home, n_nodes, cluster.conninfo(), cluster.os_user):
                click.echo(f"node {node.name} is up: {node.tcp_conninfo()}")
        if scheduler:
            pid = start_background(cluster)
            click.echo(f"scheduler running (pid {pid}, log {cluster.home / 'log'})")
    except (ClusterError, RuntimeError, psycopg.Error) as e:
        _fail(e)
    click.echo(f"cerebro is up: {cluster.conninfo()}")


@main.command()
def down() -> None:
    """Stop the scheduler daemon, the node servers and the embedded PostgreSQL (data is
    kept)."""
    from .daemon import stop_background
    from .nodes import down_nodes

    cluster = Cluster.default()
    try:
        stop_background(cluster)
        down_nodes(cluster.home, cluster.os_user)
        cluster.stop()
    except ClusterError as e:
        _fail(e)
    click.echo("cerebro is down")


@main.command("scheduler")
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="database to schedule (default: CEREBRO_DSN, else the embedded default)",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="worker connections (default: the largest partition count in use)",
)
@click.option("--once", is_flag=True, help="exit when no runnable config is left")
@click.option(
    "--poll", type=float, default=1.0, help="seconds between polls (NOTIFY wakes it earlier)"
)
@click.option("-v", "--verbose", count=True)
def scheduler_cmd(
    dsn_: str | None, workers: int | None, once: bool, poll: float, verbose: int
) -> None:
    """Run the MOP scheduler in the foreground (one active per database; others stand by)."""
    import logging

    from .scheduler import serve

    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    target = dsn_ or os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    serve(target, workers=workers, once=once, poll=poll)


@main.command()
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="report on this database (default: CEREBRO_DSN, else the embedded default)",
)
def status(dsn_: str | None) -> None:
    """Say whether the server and the scheduler run, since when, their last error, and how
    fast work gets done. Exit status 3 when the server is down."""
    from .daemon import running_pid, state_file
    from .status import database_lines, supervisor_lines

    cluster = Cluster.default()
    target = dsn_ or os.environ.get("CEREBRO_DSN")
    if target is None:
        running = cluster.is_running()
        click.echo(f"home:      {cluster.home}")
        click.echo(f"server:    {'running' if running else 'stopped'}")
        click.echo(f"dsn:       {cluster.conninfo()}")
        for line in supervisor_lines(state_file(cluster), running_pid(cluster)):
            click.echo(line)
        if not running:
            sys.exit(3)
    try:
        with psycopg.connect(target or cluster.conninfo(), connect_timeout=10) as c:
            for line in database_lines(c):
                click.echo(line)
    except psycopg.Error as e:
        click.echo(f"database:  unreachable ({e})")
        sys.exit(3)


@main.command("nodes")
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="the coordinator (default: CEREBRO_DSN, else the embedded default)",
)
def nodes_cmd(dsn_: str | None) -> None:
    """Probe every registered node (as an admin: it reads conninfo) and print its health;
    the result is recorded in cerebro.nodes. Exit status 4 when a node is down."""
    from .nodes import health_lines, probe

    target = dsn_ or os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    try:
        with psycopg.connect(target, connect_timeout=10) as c:
            health = probe(c)
    except psycopg.Error as e:
        _fail(e)
    for line in health_lines(health):
        click.echo(line)
    if any(h.error for h in health):
        sys.exit(4)


@main.command(hidden=True)
@click.option("--dsn", "dsn_", required=True, help="the scheduler's DSN")
@click.option("--state", "state", required=True, type=click.Path(dir_okay=False))
def supervise(dsn_: str, state: str) -> None:
    """Run `cerebro scheduler --dsn DSN` and restart it whenever it exits (cerebro up)."""
    from pathlib import Path

    from .supervisor import supervise as run

    run(dsn_, Path(state))


@main.command()
def dsn() -> None:
    """Print the connection string of the embedded default."""
    click.echo(Cluster.default().conninfo())


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--dsn", "dsn_", default=None, help="connect here instead of the embedded default")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(dsn_: str | None, args: tuple[str, ...]) -> None:
    """Open psql on the embedded default (or --dsn); extra arguments go to psql."""
    target = dsn_ or os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    os.execvp("psql", ["psql", target, *args])


@main.command()
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="existing server (default: CEREBRO_DSN or the PG* variables)",
)
def install(dsn_: str | None) -> None:
    """Install the extension into an existing server on this machine and create it.

    Copies the control and SQL scripts into the server's share directory and writes
    cerebro_python.path into its data directory (through the server, as a superuser), so the
    server imports this project's Python environment however it is started.
    """
    import psycopg

    from .cluster import (
        check_server_imports,
        check_server_python,
        create_or_update_extension,
        write_python_path,
    )
    from .install import install_extension_files

    try:
        install_extension_files()
        with psycopg.connect(dsn_ or os.environ.get("CEREBRO_DSN", ""), autocommit=True) as c:
            check_server_python(c)
            click.echo(f"wrote {write_python_path(c)}")
            check_server_imports(c)
            create_or_update_extension(c)
    except (ClusterError, RuntimeError) as e:
        _fail(e)
    click.echo("cerebro extension installed")


@main.command("export-model")
@click.argument("config_id", type=int)
@click.argument("output", type=click.Path(dir_okay=False, writable=True))
@click.option("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="database (default: CEREBRO_DSN, else the embedded default)",
)
@click.option("--force", is_flag=True, help="overwrite OUTPUT if it exists")
def export_model(
    config_id: int, output: str, epoch: int | None, dsn_: str | None, force: bool
) -> None:
    """Write config CONFIG_ID's trained model to OUTPUT (a .keras file).

    The file is what cerebro.export_model returns; keras.models.load_model(OUTPUT) reads it.
    """
    if not output.endswith(".keras"):
        _fail(ValueError(f"{output}: the file name must end in .keras (Keras requires it)"))
    if os.path.exists(output) and not force:
        _fail(FileExistsError(f"{output} exists; pass --force to overwrite it"))
    target = dsn_ or os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    try:
        with psycopg.connect(target) as c:
            row = c.execute("select cerebro.export_model(%s, %s)", (config_id, epoch)).fetchone()
            assert row is not None  # a function call returns one row
            data = row[0]
    except psycopg.Error as e:
        _fail(RuntimeError(e.diag.message_primary or str(e)))
    tmp = output + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, output)
    click.echo(f"wrote {output} ({len(data)} bytes): config {config_id}")


@main.command("import-petastorm")
@click.argument("url")
@click.argument("name")
@click.option("--table", default=None, help="table to create (default: NAME, in public)")
@click.option("--batch-rows", type=int, default=None, help="rows read and sent at a time")
@click.option(
    "--images",
    type=click.Choice(["array", "bytes"]),
    default="array",
    help="image fields as smallint[] pixels (array) or their PNG/JPEG bytes",
)
@click.option("--if-exists", type=click.Choice(["error", "append", "replace"]), default="error")
@click.option(
    "--dsn",
    "dsn_",
    default=None,
    help="database (default: CEREBRO_DSN, else the embedded default)",
)
def import_petastorm(
    url: str,
    name: str,
    table: str | None,
    batch_rows: int | None,
    images: str,
    if_exists: str,
    dsn_: str | None,
) -> None:
    """Import the Petastorm (or Parquet) dataset at URL, read on this machine, as table NAME.

    The result is ready for cerebro.load_dataset; see cerebro.import_petastorm for the
    server-side variant and the column types.
    """
    from cerebro_udfs.errors import CerebroError

    from .petastorm_cli import import_dataset

    target = dsn_ or os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    try:
        n = import_dataset(target, url, table or name, batch_rows, images, if_exists)
    except CerebroError as e:
        _fail(RuntimeError(e.message + (f" ({e.hint})" if e.hint else "")))
    except psycopg.Error as e:
        _fail(RuntimeError(e.diag.message_primary or str(e)))
    click.echo(f"imported {n} rows into {table or name}")


@main.command("build-sql")
def build_sql() -> None:
    """Rebuild extension/cerebro--<version>.sql from sql/."""
    from .build import build

    click.echo(f"wrote {build()}")


# The watching and steering tools (issue 13), each a click command in its own module; the
# modules import their heavy libraries (tensorboard, matplotlib, textual, dash) only when run.
def _add_tools() -> None:
    from .board import command as tensorboard_command
    from .plot import command as plot_command
    from .top import command as top_command
    from .ui import command as ui_command

    main.add_command(tensorboard_command, "tensorboard")
    main.add_command(plot_command, "plot")
    main.add_command(top_command, "top")
    main.add_command(ui_command, "ui")


_add_tools()


if __name__ == "__main__":
    main()
