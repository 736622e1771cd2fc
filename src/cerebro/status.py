"""``cerebro status``: is the server up, is the scheduler running, is work getting done.

Read from the tables (``cerebro.schedulers``: heartbeat, since when, last error;
``cerebro.units``: throughput) and from the supervisor's state file of the embedded default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from .supervisor import read_state

SCHEDULERS = """
select role, host, os_pid, workers, since,
       extract(epoch from now() - heartbeat_at)::int as beat_age,
       last_error, last_error_at
  from cerebro.schedulers order by role, since
"""
WORK = """
select (select count(*) from cerebro.workloads where status = 'active'),
       (select count(*) from cerebro.configs c join cerebro.workloads w using (workload_id)
         where c.status = 'active' and w.status = 'active'),
       (select count(*) from cerebro.units
         where outcome = 'ok' and ended_at > now() - interval '10 minutes') / 10.0,
       (select max(ended_at) from cerebro.units where outcome = 'ok')
"""


def supervisor_lines(state_file: Path, supervisor_pid: int | None) -> list[str]:
    """What the supervisor of the embedded default says about the scheduler process."""
    state = read_state(state_file)
    if not supervisor_pid or not state or not state.get("pid"):
        return ["scheduler: not running (cerebro up starts it)"]
    line = (
        f"scheduler: running, pid {state['pid']} since {state.get('started_at')} "
        f"(supervisor {supervisor_pid} since {state.get('since')}, "
        f"{state.get('restarts', 0)} restart(s)"
    )
    if state.get("last_exit") is not None:
        line += f", last exit {state['last_exit']} at {state.get('last_exit_at')}"
    return [line + ")"]


def database_lines(conn: psycopg.Connection) -> list[str]:
    """The schedulers' rows and the work done, as a human reads them."""
    rows = conn.execute(SCHEDULERS).fetchall()
    out = [_scheduler_line(r) for r in rows] or ["leader:    none (no scheduler is connected)"]
    row = conn.execute(WORK).fetchone()
    assert row is not None  # aggregates return one row
    workloads, configs, per_min, last = row
    out.append(
        f"work:      {workloads} active workload(s), {configs} active config(s); "
        f"{float(per_min):.1f} units/min over the last 10 min"
        + (f"; last unit committed {last:%Y-%m-%d %H:%M:%S %Z}" if last else "")
    )
    return out + node_lines(conn)


def node_lines(conn: psycopg.Connection) -> list[str]:
    """The nodes' health: probed now by an admin or the scheduler (who may read conninfo),
    else as last recorded (cerebro.node_health). Nothing before 0.4.0 or with no nodes."""
    from .nodes import health_lines, probe

    exists = conn.execute("select to_regclass('cerebro.node_health') is not null").fetchone()
    if exists != (True,):
        return []
    count = conn.execute("select count(*) from cerebro.node_health where not is_local")
    if count.fetchone() == (0,):
        return []
    if conn.execute("select cerebro._is_admin() or cerebro._is_scheduler()").fetchone() == (True,):
        return health_lines(probe(conn)) + waiting_lines(conn)
    rows = conn.execute(
        "select name, last_seen_at, last_error from cerebro.node_health where not is_local "
        "order by name"
    ).fetchall()
    return [
        f"node:      {name}: "
        + (f"DOWN: {error}" if error else "reachable" if seen else "never probed")
        + (f"; last seen {seen:%Y-%m-%d %H:%M:%S %Z}" if seen else "")
        for name, seen, error in rows
    ] + waiting_lines(conn)


def waiting_lines(conn: psycopg.Connection) -> list[str]:
    """Workloads whose active configs wait for a node that is away (cerebro.progress)."""
    rows = conn.execute(
        "select workload, waiting_on from cerebro.progress where waiting_on is not null "
        "order by workload"
    ).fetchall()
    return [
        f"waiting:   workload {name} waits for node(s) {', '.join(nodes)} "
        "(its configs go on when they are back)"
        for name, nodes in rows
    ]


def _scheduler_line(r: tuple[Any, ...]) -> str:
    role, host, os_pid, workers, since, beat_age, error, error_at = r
    line = (
        f"{role + ':':<10} pid {os_pid} on {host}, {workers} worker(s), heartbeat "
        f"{beat_age} s ago" + (f", running since {since:%Y-%m-%d %H:%M:%S %Z}" if since else "")
    )
    if error:
        line += f"\n           last error ({error_at:%Y-%m-%d %H:%M:%S %Z}): {error}"
    return line
