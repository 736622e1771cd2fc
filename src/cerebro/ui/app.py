"""The Dash app factory: the page (layout.py) wired to the catalog (actions.py)."""

from __future__ import annotations

from typing import Any

import psycopg

from .. import catalog
from . import actions, layout
from .session import Session


def dsn_label(dsn: str) -> str:
    """user@host:port/db of the DSN, for the header (never the password)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(info.get("host", "localhost"))
    where = "socket" if host.startswith("/") else host
    return f"{info.get('user', '')}@{where}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def create_app(dsn: str, tensorboard_url: str) -> tuple[Any, Session]:
    """The app and its session. Connecting first (whoami) makes a wrong DSN fail at start,
    with the server's message, rather than on every refresh of a page."""
    import dash

    session = Session(dsn)
    with session.conn() as conn:
        role = catalog.whoami(conn)
    app = dash.Dash(
        "cerebro",
        title="cerebro",
        update_title="",  # no "Updating..." flicker in the tab on each 2 s refresh
    )
    app.layout = layout.page(role, dsn_label(dsn), tensorboard_url)
    actions.register_all(app, session)
    return app, session
