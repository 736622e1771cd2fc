"""What ``cerebro top`` shows, as plain data: one snapshot of the catalog and its table cells.

Kept apart from the textual App (``top_app.py``) so that what a row says (a sparkline, an
ETA, a lineage) is a pure function of catalog rows: the App only lays the cells out and
keeps the cursor where the person left it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import psycopg

from . import catalog
from .params_text import summarise, varying_keys

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 16  # the last epochs shown in a config's sparkline
PARAMS_WIDTH = 44
EVENTS_SHOWN = 40

WORKLOAD_COLUMNS = ("workload", "status", "configs", "epochs", "units/min", "ETA")
CONFIG_COLUMNS = ("id", "status", "epoch", "best", "last", "curve", "params", "lineage")
EVENT_COLUMNS = ("time", "actor", "action", "config", "detail")


def connect(dsn: str) -> psycopg.Connection:
    """``catalog.connect`` typed as the catalog's functions take it (they read dict rows
    through their own cursors, whatever the connection's row factory)."""
    return cast(psycopg.Connection, catalog.connect(dsn))


@dataclass
class Snapshot:
    """Everything one refresh shows: the workloads, and the selected one's configs, their
    objective curves and its recent events."""

    role: str
    workloads: list[dict[str, Any]]
    workload: str | None
    configs: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[int, list[float]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def config(self, config_id: int) -> dict[str, Any] | None:
        return next((c for c in self.configs if c["config_id"] == config_id), None)


def load(conn: psycopg.Connection[Any], workload: str | None, role: str) -> Snapshot:
    """One consistent-enough read of the catalog (a few statements, autocommit): the
    selected workload when it is visible, else the first one."""
    rows = catalog.progress(conn)
    names = [w["workload"] for w in rows]
    if workload not in names:
        workload = names[0] if names else None
    snap = Snapshot(role, rows, workload)
    if workload is None:
        return snap
    objective = str(rows[names.index(workload)]["objective"]).split(":")[0]
    snap.configs = catalog.configs(conn, workload)
    for p in catalog.curves(conn, workload, objective):
        if p.value is not None:
            snap.curves.setdefault(p.config_id, []).append(p.value)
    snap.events = catalog.events(conn, workload, limit=EVENTS_SHOWN)
    return snap


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` values as block characters, lowest ▁ to highest █ (a flat curve is
    a flat line in the middle); non-finite values are skipped."""
    vals = [v for v in values if math.isfinite(v)][-width:] if width > 0 else []
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        return BARS[3] * len(vals)
    top = len(BARS) - 1
    return "".join(BARS[round((v - lo) / (hi - lo) * top)] for v in vals)


def number(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def eta(v: timedelta | None) -> str:
    """An interval as h:mm:ss (no microseconds); '-' when nothing is training."""
    if v is None:
        return "-"
    return str(timedelta(seconds=round(v.total_seconds())))


def workload_cells(w: dict[str, Any]) -> tuple[str, ...]:
    by_status = " ".join(
        f"{n}{w[s]}"
        for s, n in (("active", "a"), ("stopped", "s"), ("completed", "c"), ("failed", "f"))
        if w[s]
    )
    return (
        str(w["workload"]),
        str(w["status"]),
        f"{w['configs']} ({by_status})" if by_status else str(w["configs"]),
        f"{w['epochs_done']}/{w['epochs_total']}",
        f"{float(w['units_per_minute']):.1f}",
        eta(w["eta"]),
    )


def lineage(c: dict[str, Any]) -> str:
    """Where a config came from: ``clone of 12@3`` (parent and the epoch it was cloned at)
    or its source (automl, human, drill_down...)."""
    if c.get("parent_config") is not None:
        at = c.get("clone_epoch")
        return f"clone of {c['parent_config']}" + (f"@{at}" if at is not None else "")
    return str(c.get("source") or "")


def config_cells(snap: Snapshot, width: int = PARAMS_WIDTH) -> list[tuple[int, tuple[str, ...]]]:
    """(config_id, cells) per config in rank order; params summarised around the keys that
    tell this workload's configs apart."""
    first = varying_keys(c["params"] for c in snap.configs)
    out: list[tuple[int, tuple[str, ...]]] = []
    for c in snap.configs:
        cid = int(c["config_id"])
        cells = (
            str(cid),
            str(c["status"]),
            f"{c['epochs']}/{c['max_epochs']}",
            number(c["best_objective"]),
            number(c["last_objective"]),
            sparkline(snap.curves.get(cid, [])),
            summarise(c["params"], width, first=first),
            lineage(c),
        )
        out.append((cid, cells))
    return out


def event_cells(e: dict[str, Any]) -> tuple[str, ...]:
    detail = e.get("detail") or {}
    shown = " ".join(f"{k}={detail[k]}" for k in ("from", "to", "epoch", "error") if k in detail)
    return (
        e["at"].strftime("%H:%M:%S"),
        str(e["actor"]),
        str(e["action"]),
        "" if e["config_id"] is None else str(e["config_id"]),
        shown[:60],
    )
