"""Leadership and heartbeat: only one scheduler per database is active.

The active one holds a session advisory lock on its leader connection; others wait as hot
standbys and take over when the lock is released (the leader's connection ends with it).
Any role can take an advisory lock, so a standby that finds the key held by a session that
is not a scheduler ends that session (``cerebro._evict_lock_thieves``, which can end nothing
else) instead of standing by for ever. Every scheduler keeps a row in ``cerebro.schedulers``
(role, workers, heartbeat, since when its process runs, the last error it recovered from) so
that a human can see who is active, and recovery can forget schedulers whose backend is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime

import psycopg

from . import statements as S
from .connections import one

log = logging.getLogger("cerebro.scheduler")

LOCK_KEY = 0x63657262  # "cerb": pg_advisory_lock key of the active scheduler (035-leadership.sql)


class Health:
    """What the heartbeat reports besides liveness: since when this process runs and the
    last error it recovered from (kept across reconnections, so the new row still says it)."""

    def __init__(self) -> None:
        self.since = datetime.now().astimezone()
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    def error(self, message: str) -> None:
        self.last_error = message[:2000]
        self.last_error_at = datetime.now().astimezone()


def heartbeat(conn: psycopg.Connection, role: str, workers: int, health: Health) -> None:
    """Upsert this scheduler's row: role ('leader' or 'standby'), worker count, now()."""
    conn.execute(
        S.HEARTBEAT,
        [
            socket.gethostname(),
            os.getpid(),
            role,
            workers,
            health.since,
            health.last_error,
            health.last_error_at,
        ],
    )


def acquire(
    conn: psycopg.Connection, stop: threading.Event, health: Health, workers: int = 0
) -> None:
    """Block until this process holds the scheduler lock (hot standby until then) or ``stop``
    is set. A holder that is not a scheduler is ended, and the lock taken at once."""
    announced = False
    while not stop.is_set():
        got = one(conn, S.TRY_LOCK, [LOCK_KEY])[0]
        if not got and _evict_thieves(conn, health):
            got = one(conn, S.TRY_LOCK, [LOCK_KEY])[0]
        heartbeat(conn, "leader" if got else "standby", workers, health)
        if got:
            return
        if not announced:
            log.info("another scheduler is active; waiting as standby")
            announced = True
        stop.wait(1.0)


def _evict_thieves(conn: psycopg.Connection, health: Health) -> bool:
    """End the sessions of non-scheduler roles holding the lock; True if there were any."""
    thieves = conn.execute(S.EVICT_LOCK_THIEVES).fetchall()
    for pid, role in thieves:
        msg = f"ended session {pid} of role {role}: it held the scheduler's lock"
        log.warning("%s", msg)
        health.error(msg)
    pids = [pid for pid, _ in thieves]
    # the lock is released when the ended backend has exited: wait for that (bounded)
    for _ in range(100):
        if not pids or not one(conn, S.BACKENDS_ALIVE, [pids])[0]:
            break
        time.sleep(0.05)
    return bool(thieves)
