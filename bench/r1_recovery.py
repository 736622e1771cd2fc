"""R1: how long a fault interrupts a search, against the daemon's own cold start.

A grid of 4 mlp configs x 30 epochs x 2 partitions trains under the supervised daemon (as
`cerebro up` runs it). The baseline is measured in the same run: the daemon's cold start,
from its launch until its first unit commits (connections opened, leadership taken,
recovery, new backends importing TensorFlow and building the models). Then each fault hits
a unit in flight, and the time from the fault until a unit *started after it* commits is
measured: a terminated worker, leader and listener; a SIGKILLed worker backend (the
postmaster resets every backend); SIGKILL of the daemon (the supervisor restarts it). The
ratio is the slowest recovery ÷ the cold start: a fault should cost about what starting
afresh costs, no more.

    .venv/bin/python bench/r1_recovery.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _workload
from helpers import launch, make_db, wait_through_restarts

DB = "cerebro_bench_r1"
TARGET = 1.5  # slowest recovery ÷ cold start (lower is better)
SUPERVISE = [sys.executable, "-m", "cerebro.cli", "supervise"]  # as cerebro up starts it
RUNNING = (
    "select (select backend_pid from cerebro.units where ended_at is null "
    "and kind = 'train' order by unit_id limit 1)"
)


def _backend(app: str) -> str:
    return (
        "select (select pid from pg_stat_activity where datname = current_database() "
        f"and application_name = '{app}' and usename = 'cerebro_scheduler' limit 1)"
    )


def _poll(dsn: str, query: str, predicate: Callable[[Any], bool], **kw: Any) -> Any:
    return wait_through_restarts(dsn, query, predicate, timeout=600, **kw)


def _now(dsn: str) -> dt.datetime:
    return _poll(dsn, "select clock_timestamp()", lambda t: t is not None)


def _first_commit_after(dsn: str, since: dt.datetime) -> float:
    ended = _poll(
        dsn,
        "select min(ended_at) from cerebro.units where outcome = 'ok' and started_at > %s",
        lambda t: t is not None,
        params=[since],
    )
    return (ended - since).total_seconds()


def _faults(state: Path) -> list[tuple[str, Callable[[str], None]]]:
    def terminate(query: str) -> Callable[[str], None]:
        def inject(dsn: str) -> None:
            pid = _poll(dsn, query, lambda p: p is not None)
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("select pg_terminate_backend(%s)", [pid])

        return inject

    def kill_backend(dsn: str) -> None:
        os.kill(_poll(dsn, RUNNING, lambda p: p is not None), signal.SIGKILL)

    def kill_daemon(dsn: str) -> None:
        _poll(dsn, RUNNING, lambda p: p is not None)
        os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)

    return [
        ("terminate a worker", terminate(RUNNING)),
        ("terminate the leader", terminate(_backend("cerebro scheduler"))),
        ("terminate the listener", terminate(_backend("cerebro listener"))),
        ("kill -9 a worker backend", kill_backend),
        ("kill -9 the daemon", kill_daemon),
    ]


def run(server: str) -> dict[str, Any]:
    dsn = make_db(server, DB)
    launch(dsn, "r1", epochs=30)
    state = Path(tempfile.mkdtemp(prefix="cerebro-r1-")) / "scheduler.json"
    since = _now(dsn)
    log = (state.parent / "daemon.log").open("wb")  # the timeline of each recovery
    daemon = subprocess.Popen(
        [*SUPERVISE, "--dsn", _common.scheduler_dsn(dsn), "--state", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=_workload.ROOT,
        start_new_session=True,
    )
    try:
        cold = _first_commit_after(dsn, since)
        recoveries = {}
        for name, inject in _faults(state):
            inject(dsn)
            recoveries[name] = _first_commit_after(dsn, _now(dsn))
            print(f"  {name}: {recoveries[name]:.1f} s until a new unit committed")
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        log.close()
        _workload.drop_db(server, DB)
    worst = max(recoveries.values())
    print(f"  cold start: {cold:.1f} s; slowest recovery {worst:.1f} s (log: {log.name})")
    return {
        "id": "R1",
        "what": "slowest recovery from a fault ÷ the daemon's cold start",
        "ratio": worst / cold,
        "target": TARGET,
        "lower_is_better": True,
        "cold_start_s": cold,
        "median_recovery_s": statistics.median(recoveries.values()),
        "recoveries": recoveries,
    }


if __name__ == "__main__":
    print(run(_workload.server_dsn()))
