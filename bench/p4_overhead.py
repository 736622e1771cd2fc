"""P4: fixed cost per sub-epoch (tiny model), and the hop of a ~100 MB state.

(a) A tiny model (mlp hidden [4]) on 64 rows in 2 partitions, N configs × E epochs, no
    validation, through the warm scheduler daemon. Per unit: (ended_at − started_at) − the
    model.fit seconds the aggregate reports = SQL round trip + state hop + bookkeeping; plus
    the gap between one unit's end and the next unit's start on the same worker (the
    scheduler's own turnaround). Fixed cost = median unit overhead + median gap.
(b) A ~100 MB state (MLP with ~8.5M parameters: weights + two Adam moments) trained on
    16-row partitions for 3 epochs by the scheduler (``p8_scheduler_hop.measure``,
    "mlp_100mb"): a warm epoch-first unit's time outside ``fit`` plus its commit and the
    scheduler's turnaround, so the figure is the whole hop (map + restore, capture + write).

    .venv/bin/python bench/p4_overhead.py [--configs 8] [--epochs 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl
import p8_scheduler_hop

DB = "cerebro_bench_p4"
TARGET_MS = 10.0  # DESIGN.md §6


def unit_overheads(dsn: str, wid: int) -> tuple[list[float], list[float]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select u.worker, u.started_at, u.ended_at, (u.result->>'seconds')::float8 "
            "from cerebro.units u join cerebro.configs c using (config_id) where "
            "c.workload_id = %s and u.outcome = 'ok' order by u.worker, u.started_at",
            [wid],
        ).fetchall()
    overhead = [((e - s).total_seconds() - fit) * 1000 for _, s, e, fit in rows]
    gaps = [
        (rows[i][1] - rows[i - 1][2]).total_seconds() * 1000
        for i in range(1, len(rows))
        if rows[i][0] == rows[i - 1][0]
    ]
    return overhead, gaps


def run(server: str | None = None, configs: int = 8, epochs: int = 15) -> dict:
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    sched = None
    try:
        wl.make_data(dsn, 64, features=4)
        sched = wl.start_scheduler(dsn)
        wl.warm_up(dsn, "bench", 2)
        space = {"learning_rate": {"choice": [0.001 * (i + 1) for i in range(configs)]}}
        res = wl.run_workload(dsn, "p4", "bench", space, epochs, {"hidden": [4], "batch_size": 16})
        overhead, gaps = unit_overheads(dsn, res["workload_id"])
        sched.terminate()
        sched.wait(timeout=120)
        sched = None
        p8_scheduler_hop.make_points(dsn)
        hop = p8_scheduler_hop.measure(dsn, "mlp_100mb")
    finally:
        if sched is not None:
            sched.terminate()
            sched.wait(timeout=120)
        wl.drop_db(server, DB)
    o, g = statistics.median(overhead), statistics.median(gaps)
    fixed = o + g
    print(
        f"P4 fixed cost per sub-epoch = {fixed:.1f} ms (median unit overhead {o:.1f} ms "
        f"+ median scheduler gap {g:.1f} ms; p90 overhead "
        f"{statistics.quantiles(overhead, n=10)[-1]:.1f} ms; {res['units']} units)"
    )
    print(
        f"P4 state hop of {hop['state_mb']:.0f} MB under the scheduler ({hop['store']}): "
        f"{hop['hop_s']:.3f} s ({hop['mb_per_s']:.0f} MB/s; in the unit "
        f"{hop['hop_inside_s']:.3f} s + commit and turnaround {hop['gap_s']:.3f} s)"
    )
    return {
        "id": "P4",
        "what": "fixed cost per sub-epoch, tiny model (ms)",
        "ratio": fixed,
        "target": TARGET_MS,
        "reps": res["units"],
        "lower_is_better": True,
        "hop": hop,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=15)
    a = ap.parse_args()
    run(configs=a.configs, epochs=a.epochs)
