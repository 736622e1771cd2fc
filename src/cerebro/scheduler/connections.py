"""The daemon's connections: one leader connection, and one "worker" per partition.

A worker is a long-lived backend so that what it caches in ``GD`` (decoded partitions,
compiled models) survives between units. A worker whose connection broke (backend crash,
server restart) is reopened the next time it is asked for, which is all the daemon needs to
survive broken connections.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params

from .unit import NodeDown

log = logging.getLogger("cerebro.scheduler")


# Timeouts: a user's open transaction (a forgotten BEGIN; UPDATE ... in psql) must not stall
# the daemon for ever. The leader's statements are short bookkeeping (and AutoML steps);
# a worker's statement is a whole sub-epoch, so it gets no statement_timeout, only a bound on
# how long it waits for a row lock before the unit is retried.
# (CEREBRO_LOCK_TIMEOUT_S overrides the workers' bound, e.g. for a test.)
LEADER_OPTIONS = "-c lock_timeout=10s -c statement_timeout=5min"
#
# Workers commit asynchronously (no WAL flush per unit, ~4 ms each on this class of disk, two
# per unit: START_UNIT and the unit's commit). That loses nothing a crash would not lose
# anyway: a mid-epoch unit's result is its state, in the unlogged ``states`` table (or a file
# it names) that crash recovery empties, so after a crash that epoch restarts from its
# checkpoint whether or not its commit reached the disk. What must survive a crash commits
# ``durable``: an epoch (checkpoint, metrics, counter) and the booking of a unit that failed;
# a flush also carries every earlier asynchronous commit of the server to disk. A clean
# shutdown flushes everything.
WORKER_OPTIONS = (
    f"-c lock_timeout={int(float(os.environ.get('CEREBRO_LOCK_TIMEOUT_S', 60)) * 1000)}ms"
    " -c synchronous_commit=off"
)
# a server that vanishes from the network is noticed in about a minute, not hours
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "connect_timeout": 10,
}


def connect(dsn: str, name: str, options: str = LEADER_OPTIONS) -> psycopg.Connection:
    """An autocommit connection named ``name`` in pg_stat_activity (recovery finds orphaned
    workers by that name). Steering triggers record who acted: everything this daemon does is
    'system'."""
    return psycopg.connect(
        psycopg.conninfo.make_conninfo(dsn, **KEEPALIVES),
        autocommit=True,
        application_name=name,
        options=f"-c cerebro.actor=system {options}",
    )


def durable(conn: psycopg.Connection) -> None:
    """Make the open transaction's commit wait for its WAL flush (see WORKER_OPTIONS)."""
    conn.execute("set local synchronous_commit = on")


class Listener:
    """The LISTEN connection: reopened (and LISTEN re-issued) when it breaks, so that a
    terminated listener backend costs one missed wake-up, which the poll covers."""

    def __init__(self, dsn: str, listen: sql.Composed) -> None:
        self.dsn = dsn
        self.listen = listen
        self.conn: psycopg.Connection | None = None

    def notified(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a notification; True if one came (or the connection
        was reopened, when one may have been missed)."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            # raises when the server is unreachable: the loop then starts over, with backoff
            self.conn = connect(self.dsn, "cerebro listener")
            self.conn.execute(self.listen)
            return True
        try:
            return bool(list(self.conn.notifies(timeout=timeout, stop_after=1)))
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise
            log.warning("listener connection lost; reopening it")
            self.close()
            return True

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Workers:
    """The worker connections by index: worker j's first unit is partition j's (the loop
    says which it runs after that).

    Each index is used by one thread at a time (the loop never runs two units on one worker),
    so the dict needs no lock.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conns: dict[int, psycopg.Connection] = {}
        # a worker's connections to the nodes holding its partition of some dataset
        self.node_conns: dict[tuple[int, str], psycopg.Connection] = {}
        self.conninfo: dict[str, str] = {}  # node -> conninfo (the planner keeps it fresh)

    def __len__(self) -> int:
        return len(self.conns)

    def get(self, j: int) -> psycopg.Connection:
        """Worker ``j``'s connection, opened (again) if it has none or it broke."""
        conn = self.conns.get(j)
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.dsn, f"cerebro worker {j}", WORKER_OPTIONS)
            self.conns[j] = conn
        return conn

    def node(self, j: int, name: str) -> psycopg.Connection:
        """Worker ``j``'s connection to node ``name``, opened (again) if needed; raises
        NodeDown when the node cannot be reached."""
        conn = self.node_conns.get((j, name))
        if conn is None or conn.closed or conn.broken:
            if name not in self.conninfo:
                raise NodeDown(name, "no such node in cerebro.nodes")
            try:
                conn = connect(self.conninfo[name], f"cerebro worker {j}", WORKER_OPTIONS)
            except psycopg.OperationalError as e:
                raise NodeDown(name, str(e).strip().splitlines()[-1]) from None
            self.node_conns[(j, name)] = conn
        return conn

    def close(self) -> None:
        for conn in [*self.conns.values(), *self.node_conns.values()]:
            conn.close()
        self.conns.clear()
        self.node_conns.clear()

    def keep_alive(self) -> list[int]:
        """Keep the connections that still answer (a new session reuses them, with the
        decoded partitions and compiled models their backends cache: a leader or listener
        fault then costs no TensorFlow start-up); close the others. Returns the backend
        pids kept. Called between sessions, when no unit runs."""
        for j, conn in list(self.conns.items()):
            try:
                if conn.closed or conn.broken:
                    raise psycopg.OperationalError("closed")
                conn.execute("select 1")
            except psycopg.Error:
                conn.close()
                del self.conns[j]
        return [c.info.backend_pid for c in self.conns.values()]


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
