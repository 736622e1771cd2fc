"""How the runner books a unit that did not commit (pure: the classification alone).

"Not now" errors (a full disk, a lock held past lock_timeout, too many connections) must
never fail a config; a lost backend is counted as lost; a bug of the daemon's own is
counted, so that a persistent one ends with a clear error instead of retrying for ever.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from cerebro.scheduler.runner import _BOOKINGS, _classify
from cerebro.scheduler.unit import CheckpointMissing, StateLost

ALIVE = SimpleNamespace(broken=False)
BROKEN = SimpleNamespace(broken=True)


@pytest.mark.parametrize(
    ("error", "conn", "booking"),
    [
        (
            psycopg.errors.DiskFull("could not extend file: No space left on device"),
            ALIVE,
            "deferred",
        ),
        (
            psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
            ALIVE,
            "deferred",
        ),
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), ALIVE, "deferred"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), ALIVE, "deferred"),
        (
            psycopg.errors.QueryCanceled("canceling statement due to user request"),
            ALIVE,
            "cancelled",
        ),
        (psycopg.errors.AdminShutdown("terminating connection"), BROKEN, "lost"),
        (psycopg.OperationalError("server closed the connection unexpectedly"), BROKEN, "lost"),
        (psycopg.errors.DataException("cerebro: loss is NaN"), ALIVE, "failed"),
        (StateLost(), ALIVE, "state lost"),
        (CheckpointMissing("the checkpoint of epoch 2 is missing"), ALIVE, "failed"),
        (KeyError("spec"), ALIVE, "crashed"),
    ],
)
def test_each_error_gets_its_booking(error: Exception, conn: Any, booking: str) -> None:
    assert _classify(error, conn)[0] == booking


def test_only_a_config_fault_can_fail_a_config() -> None:
    assert not _BOOKINGS["deferred"].fails
    assert _BOOKINGS["crashed"].count is not None  # counted: fails after MAX_LOST_UNITS
    assert _BOOKINGS["failed"].fails and _BOOKINGS["failed"].count is None  # at once


def test_the_advice_names_what_to_raise() -> None:
    _, text = _classify(psycopg.errors.TooManyConnections("sorry, too many clients"), ALIVE)
    assert "max_connections" in text
    refused = psycopg.OperationalError(  # a refused connection: no SQLSTATE, only text
        'connection failed: FATAL:  too many connections for role "cerebro_scheduler"'
    )
    assert "max_connections" in _classify(refused, ALIVE)[1]
    _, text = _classify(psycopg.errors.DiskFull("No space left on device"), ALIVE)
    assert "space returns" in text
