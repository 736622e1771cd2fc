"""Leadership and heartbeat: only one scheduler per database is active.

The active one holds an advisory lock on its leader connection; others wait as hot standbys
and take over when the lock is released (the leader's connection ends with it). Every
scheduler keeps a row in ``cerebro.schedulers`` (role, workers, heartbeat) so that a human can
see who is active and recovery can forget schedulers whose backend is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import psycopg

from . import statements as S
from .connections import one

log = logging.getLogger("cerebro.scheduler")

LOCK_KEY = 0x63657262  # "cerb": pg_advisory_lock key of the active scheduler


def heartbeat(conn: psycopg.Connection, role: str, workers: int) -> None:
    """Upsert this scheduler's row: role ('leader' or 'standby'), worker count, now()."""
    conn.execute(S.HEARTBEAT, [socket.gethostname(), os.getpid(), role, workers])


def acquire(conn: psycopg.Connection, stop: threading.Event, workers: int = 0) -> None:
    """Block until this process holds the scheduler lock (hot standby until then) or ``stop``
    is set."""
    announced = False
    while not stop.is_set():
        got = one(conn, S.TRY_LOCK, [LOCK_KEY])[0]
        heartbeat(conn, "leader" if got else "standby", workers)
        if got:
            return
        if not announced:
            log.info("another scheduler is active; waiting as standby")
            announced = True
        stop.wait(1.0)
