"""Housekeeping: what keeps a search that runs for days from filling the disk.

One call, :func:`housekeep`, which the loop makes every few minutes on its leader connection.
All of it is ``cerebro._housekeeping()`` (sql/idempotent/075-housekeeping.sql), one
transaction that never waits for a row lock (it skips locked rows; they go next time):

- every workload's ``keep_checkpoints`` launch option: per config the newest N checkpoints,
  the latest and the best by the objective stay, the rest go with their chunk rows;
- units of committed epochs that ended ``units_retention_days`` ago (``cerebro.limits``);
- events of idle workloads older than ``events_retention_days``.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

HOUSEKEEPING = "select cerebro._housekeeping()"
# what cerebro._housekeeping() reports, each a count (checkpoint_bytes: of the states removed)
KINDS = ("checkpoints", "checkpoint_bytes", "chunks", "units", "events")


def housekeep(conn: psycopg.Connection) -> dict[str, int]:
    """Apply the retention and every workload's keep_checkpoints once; returns how much of
    each kind it removed, e.g. ``{"checkpoints": 6, "checkpoint_bytes": 3145728, "chunks": 0,
    "units": 120, "events": 0}``. On an autocommit connection (the leader's) that is one
    transaction of its own; otherwise it joins the open one and the caller commits."""
    row = conn.execute(HOUSEKEEPING).fetchone()
    assert row is not None  # a function call returns one row
    return counts(row[0])


def counts(result: Any) -> dict[str, int]:
    """``cerebro._housekeeping()``'s jsonb (psycopg loads it; text is parsed) as ints, every
    kind present."""
    data = json.loads(result) if isinstance(result, str) else dict(result or {})
    return {k: int(data.get(k) or 0) for k in KINDS}
