"""``cerebro top``: a live terminal view of the workloads, configs and events, with keys
that steer the selected config through the same SQL verbs a person types in psql.

This module stays light (``cerebro --help`` imports it): the textual App lives in
``top_app.py`` and what its rows say in ``top_view.py``.
"""

from __future__ import annotations

import click
import psycopg

from . import catalog
from .top_view import connect


@click.command()
@click.option(
    "--dsn", default=None, help="Connect here (default: CEREBRO_DSN, else the embedded server)."
)
@click.option("--workload", "-w", default=None, help="Select this workload first.")
@click.option(
    "--refresh",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between refreshes when no notification arrives.",
)
def command(dsn: str | None, workload: str | None, refresh: float) -> None:
    """Watch workloads live and steer configs: s stop, r resume, c clone with a new learning
    rate, + one more epoch, m set max_epochs, q quit (actions are recorded as human:<role>)."""
    dsn = catalog.resolve_dsn(dsn)
    try:
        with connect(dsn) as conn:
            if workload is not None:
                catalog.workload_id(conn, workload)
    except (psycopg.Error, LookupError) as e:
        raise click.ClickException(str(e)) from e
    from .top_app import TopApp

    TopApp(dsn, workload, refresh).run()
