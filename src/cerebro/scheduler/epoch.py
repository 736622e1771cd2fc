"""The epoch commit: exactly-once epoch accounting.

The last unit of a config's epoch commits, in its own transaction, the epoch counter (and
'completed' when the config is done), the checkpoint, the epoch's metrics row (the units'
results weighted by rows) and the AutoML procedure's decision. A crash before the commit loses
the unit, never half an epoch; the counter only moves from the epoch the unit ran in, so a
second commit of one epoch is an error, not a duplicate row.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from cerebro_udfs.chunks import env_limits

from . import statements as S
from .connections import durable
from .unit import Unit

# the daemon's CEREBRO_STATE_INLINE_MAX, as for the units' own states (None: the server's)
INLINE_MAX = env_limits().get("state_inline_max")

EPOCH_PROCEDURES = ("asha", "hyperband", "pbt")  # decide when a config's epoch commits


def lock_workload(conn: psycopg.Connection, workload_id: int) -> None:
    """Lock order workload -> config, as AutoML steps take them (see statements)."""
    conn.execute(S.LOCK_WORKLOAD, [workload_id])


def commit_epoch(conn: psycopg.Connection, unit: Unit) -> dict[str, Any]:
    """Commit ``unit``'s epoch (inside the unit's transaction); returns what ``on_epoch``
    callbacks are told: config, epoch, losses, validation metrics and the new status."""
    v, e = unit.view, unit.epoch
    durable(conn)  # a worker's commits are asynchronous, an epoch's is not
    lock_workload(conn, v.workload_id)
    row = conn.execute(S.COMMIT_EPOCH, {"e": e, "c": v.config_id}).fetchone()
    if row is None:
        raise RuntimeError(f"config {v.config_id}: epoch {e} was already committed")
    conn.execute(S.CHECKPOINT, {"e": e, "c": v.config_id, "inline_max": INLINE_MAX})
    train, valid = _epoch_metrics(conn, v.config_id, e)
    if v.extra.get("search") in EPOCH_PROCEDURES:
        conn.execute(S.ON_EPOCH, [v.config_id, e])
    return {
        "config_id": v.config_id,
        "epoch": e,
        "train_loss": train["loss"],
        "valid_loss": valid["loss"],
        "valid_metrics": valid["metrics"],
        "status": row[0],
    }


def _epoch_metrics(
    conn: psycopg.Connection, config_id: int, epoch: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the epoch's metrics row from its units; returns (train, valid) aggregates."""
    results = conn.execute(S.EPOCH_RESULTS, [config_id, epoch]).fetchall()
    train = weighted([r for k, r in results if k == "train"])
    valid = weighted([r for k, r in results if k == "valid"])
    conn.execute(
        S.METRICS,
        [
            config_id,
            epoch,
            train["loss"],
            json.dumps(train["metrics"]),
            valid["loss"],
            json.dumps(valid["metrics"]),
            train["rows"],
            train["seconds"] + valid["seconds"],
        ],
    )
    return train, valid


def weighted(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Loss and metrics of several partitions' results, weighted by their rows."""
    rows = sum(r["rows"] for r in results)
    if not results or rows == 0:
        return {
            "loss": None,
            "metrics": {},
            "rows": rows,
            "seconds": sum(r["seconds"] for r in results),
        }
    loss = sum(r["loss"] * r["rows"] for r in results) / rows
    names = set().union(*(r["metrics"].keys() for r in results))
    metrics = {
        k: sum(r["metrics"].get(k, 0.0) * r["rows"] for r in results) / rows for k in sorted(names)
    }
    return {
        "loss": loss,
        "metrics": metrics,
        "rows": rows,
        "seconds": sum(r["seconds"] for r in results),
    }
