"""Recovery: make the tables consistent after whatever happened to the previous scheduler.

Runs once, when a scheduler becomes the leader. Nothing needs repairing beyond this because
the daemon keeps no state of its own: a unit in flight never committed (its transaction died
with its client), so marking it lost is enough for it to run again.
"""

from __future__ import annotations

import logging

import psycopg

from . import statements as S
from .connections import one

log = logging.getLogger("cerebro.scheduler")


def recover(conn: psycopg.Connection, own_workers: list[int] | None = None) -> None:
    """Forget dead schedulers, end their workers (but ``own_workers``, this process's idle
    backends), book their units lost, drop orphan chunks and state files."""
    conn.execute(S.FORGET_DEAD_SCHEDULERS)
    conn.execute(S.END_ORPHAN_WORKERS, [own_workers or []])
    n = conn.execute(S.LOSE_UNITS_IN_FLIGHT).rowcount
    if n:
        log.info("recovered: %d unit(s) in flight were lost and will run again", n)
    gone = one(conn, S.DROP_UNREFERENCED_CHUNKS)[0]
    if gone:
        log.info("recovered: removed %d unreferenced state chunk(s)", gone)
    files = one(conn, S.COLLECT_STATE_FILES)[0]
    if files:
        log.info("recovered: removed %d unreferenced state file(s)", files)
