"""P5: steering takes effect as specified, measured against a running scheduler daemon.

(a) Stops: while a workload trains, configs are stopped one after another; afterwards we
    count units of each stopped config that started after its stop committed (target 0).
    The stop's commit is bounded below by its event's timestamp (taken inside the stopping
    transaction), so the count can only over-report.
(b) Delays: with every worker idle, a config is added (INSERT), resumed (UPDATE) or cloned
    (cerebro.clone); the delay is from the action's event timestamp (inside its transaction,
    i.e. at or before commit) to the start of its first unit (target <= 1 s; median and max).

    .venv/bin/python bench/p5_steering.py [--reps 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _workload

DB = "cerebro_bench_p5"
REPS = 8
TARGET_DELAY = 1.0


def _db(server_dsn: str) -> str:
    dsn = _workload.fresh_db(server_dsn, DB)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.5)")
        c.execute(
            "create table src as select i as id, random() * 2 - 1 as a, "
            "random() * 2 - 1 as b, (i % 2)::text as lbl from generate_series(1, 4000) i"
        )
        c.execute(
            "select cerebro.load_dataset('tr', 'src', array['a', 'b'], 'lbl', num_partitions => 2)"
        )
    return dsn


POLL = 0.01  # seconds between polls of the units table


def _idle(c: psycopg.Connection) -> None:
    _common.wait_for(
        c,
        "select count(*) from cerebro.units where ended_at is null",
        lambda n: n == 0,
        interval=POLL,
    )


def _first_unit_delay(c: psycopg.Connection, cid: int, action: str) -> float:
    at = c.execute(
        "select max(at) from cerebro.events where config_id = %s and action = %s", [cid, action]
    ).fetchone()[0]
    started = _common.wait_for(
        c,
        "select min(started_at) from cerebro.units where config_id = %s and started_at >= %s",
        lambda v: v is not None,
        params=[cid, at],
        interval=POLL,
    )
    return (started - at).total_seconds()


def run(server_dsn: str, reps: int = REPS) -> dict:
    dsn = _db(server_dsn)
    sched = subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", _common.scheduler_dsn(dsn)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=_common.ROOT,
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            wid = c.execute(
                "select cerebro.launch('p5', 'mlp', 'tr', null, 'grid', "
                '\'{"hidden": {"choice": [[8], [16], [24], [32]]}}\', '
                "max_epochs => 1000, objective => 'train_loss')"
            ).fetchone()[0]
            ids = [r[0] for r in c.execute("select config_id from cerebro.configs order by 1")]
            # warm up: every config has run a unit (worker backends have TensorFlow loaded)
            _common.wait_for(
                c,
                "select count(distinct config_id) from cerebro.units where outcome = 'ok'",
                lambda n: n == len(ids),
                timeout=300,
                interval=POLL,
            )

            # (a) stops while running, then count units started after each stop committed
            late = 0
            for i in range(reps):
                cid = ids[i % len(ids)]
                c.execute(
                    "update cerebro.configs set status = 'stopped' where config_id = %s "
                    "and status = 'active'",
                    [cid],
                )
                # let the others run a few units: chances for a wrong start of `cid`
                done = c.execute(
                    "select count(*) from cerebro.units where outcome = 'ok'"
                ).fetchone()[0]
                _common.wait_for(
                    c,
                    "select count(*) from cerebro.units where outcome = 'ok'",
                    lambda n, d=done: n >= d + 4,
                    interval=POLL,
                )
                c.execute(
                    "update cerebro.configs set status = 'active' where config_id = %s", [cid]
                )
            for cid in ids:
                late += c.execute(
                    "select count(*) from cerebro.events s where s.config_id = %s and "
                    "s.action = 'stop' and exists (select 1 from cerebro.units u where "
                    "u.config_id = s.config_id and u.started_at > s.at and u.started_at < "
                    "coalesce((select min(r.at) from cerebro.events r where r.config_id = "
                    "s.config_id and r.action = 'resume' and r.at > s.at), 'infinity'))",
                    [cid],
                ).fetchone()[0]

            # (b) delays to the first unit with idle workers
            c.execute("update cerebro.configs set status = 'stopped' where status = 'active'")
            _idle(c)
            delays: dict[str, list[float]] = {"insert": [], "resume": [], "clone": []}
            parent = ids[0]
            for i in range(reps):
                new = c.execute(
                    "insert into cerebro.configs (workload_id, params) values "
                    "(%s, %s) returning config_id",
                    [wid, json.dumps({"hidden": [4 + i]})],
                ).fetchone()[0]
                delays["insert"].append(_first_unit_delay(c, new, "add"))
                c.execute(
                    "update cerebro.configs set status = 'stopped' where config_id = %s", [new]
                )
                _idle(c)
                cid = ids[i % len(ids)]
                c.execute(
                    "update cerebro.configs set status = 'active' where config_id = %s", [cid]
                )
                delays["resume"].append(_first_unit_delay(c, cid, "resume"))
                c.execute(
                    "update cerebro.configs set status = 'stopped' where config_id = %s", [cid]
                )
                _idle(c)
                if c.execute(
                    "select count(*) from cerebro.checkpoints where config_id = %s", [parent]
                ).fetchone()[0]:
                    clone = c.execute(
                        "select cerebro.clone(%s, %s)",
                        [parent, json.dumps({"learning_rate": 0.001 * (i + 1)})],
                    ).fetchone()[0]
                    delays["clone"].append(_first_unit_delay(c, clone, "clone"))
                    c.execute(
                        "update cerebro.configs set status = 'stopped' where config_id = %s",
                        [clone],
                    )
                    _idle(c)
    finally:
        sched.terminate()
        sched.wait(timeout=120)
        _workload.drop_db(server_dsn, DB)

    summary = {k: (statistics.median(v), max(v)) for k, v in delays.items() if v}
    worst = max(m for _, m in summary.values())
    line = ", ".join(f"{k} median {a:.3f} s max {b:.3f} s" for k, (a, b) in summary.items())
    print(f"P5 units started after a committed stop = {late} (of {reps} stops; target 0)")
    print(f"P5 delay to first unit on an idle worker: {line} (target <= {TARGET_DELAY} s)")
    return {
        "id": "P5",
        "what": "steering: late units after stop / delay to first unit",
        "ratio": worst,
        "target": TARGET_DELAY,
        "reps": reps,
        "late_units": late,
        "delays": summary,
        "lower_is_better": True,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=REPS)
    a = ap.parse_args()
    from cerebro.cluster import Cluster

    run(Cluster.default().conninfo("postgres"), a.reps)
