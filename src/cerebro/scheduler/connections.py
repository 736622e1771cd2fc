"""The daemon's connections: one leader connection, and one "worker" per partition.

A worker is a long-lived backend so that what it caches in ``GD`` (decoded partitions,
compiled models) survives between units. A worker whose connection broke (backend crash,
server restart) is reopened the next time it is asked for, which is all the daemon needs to
survive broken connections.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params


def connect(dsn: str, name: str) -> psycopg.Connection:
    """An autocommit connection named ``name`` in pg_stat_activity (recovery finds orphaned
    workers by that name). Steering triggers record who acted: everything this daemon does is
    'system'."""
    return psycopg.connect(
        dsn, autocommit=True, application_name=name, options="-c cerebro.actor=system"
    )


class Workers:
    """The worker connections by index; index j runs partition j's units.

    Each index is used by one thread at a time (the loop never runs two units on one worker),
    so the dict needs no lock.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conns: dict[int, psycopg.Connection] = {}

    def __len__(self) -> int:
        return len(self.conns)

    def get(self, j: int) -> psycopg.Connection:
        """Worker ``j``'s connection, opened (again) if it has none or it broke."""
        conn = self.conns.get(j)
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.dsn, f"cerebro worker {j}")
            self.conns[j] = conn
        return conn

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def one(
    conn: psycopg.Connection, query: str | sql.Composed, params: Params | None = None
) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (an aggregate, a function)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row


def error_message(e: psycopg.Error) -> str:
    """The server's message without the "cerebro: " prefix our functions put on errors (it
    goes into configs.error, which already says where it came from)."""
    msg = e.diag.message_primary or str(e)
    return msg.removeprefix("cerebro: ")
