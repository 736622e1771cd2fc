"""P10 (part): one grid trained by the scheduler daemon on one server, on two and on three.

The same workload (the roster's ``mlp``, the 4-config grid of the scheduler tests, seed 11,
batch 32, no validation set) on the same synthetic dataset (``ROWS`` rows, 2 partitions,
seed 1), loaded three times on one coordinator database: (a) both partitions on the
coordinator, (b) ``nodes => array['local', 'node1']``, (c) ``array['node1', 'node2']`` (the
coordinator holds none). Each is trained to the end by ``cerebro scheduler --once`` in a
subprocess, one after the other; the three are run ``rounds`` times and each figure below is
the median over the rounds. From ``cerebro.units`` (ok train units):

* wall: the subprocess's wall time (TensorFlow start-up included), and units/s over it;
* steady units/s: units per second from the end of the last unit of epoch 1 (by then every
  worker's backend has imported TensorFlow and built every config's model) to the end of the
  last unit, a unit straddling that moment counted by the fraction of it inside the window;
* idle: in that window, the workers' time outside units per unit (the scheduler's turnaround
  between a worker's units, and any wait for a free config);
* fit: median ``result.seconds`` (time inside the training aggregate), epochs 2+;
* overhead: median of (ended_at - started_at) - seconds, epochs 2+ (epoch 1 pays start-up);
  across servers it includes the state's hop in and, at an epoch's end, out;
* hop in: median ``hop_in_s`` and ``hop_in_bytes`` of the units that recorded one.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from datetime import datetime
from typing import Any

import psycopg

from _common import scheduler_dsn
from helpers import ROOT, SPACE

ROWS = 4000
SETUPS: dict[str, list[str] | None] = {
    "1 server": None,
    "2 servers": ["local", "node1"],
    "3 servers": ["node1", "node2"],
}
PARAMS = {"batch_size": 32}


def make_data(dsn: str) -> None:
    """The source table and one dataset per setup (tr0, tr1, tr2; same rows, same split)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.3)")
        c.execute(
            "create table src as select i as id, a, b, "
            "case when a * a + b * b < 0.5 then 'in' else 'out' end as lbl "
            "from (select i, random() * 2 - 1 as a, random() * 2 - 1 as b "
            f"from generate_series(1, {ROWS}) i) s order by i"
        )
        for k, nodes in enumerate(SETUPS.values()):
            c.execute(
                "select cerebro.load_dataset(%s, 'src', array['a', 'b'], 'lbl', seed => 1, "
                "num_partitions => 2, nodes => %s)",
                [f"tr{k}", nodes],
            )


def _scheduler_once(dsn: str) -> float:
    """``cerebro scheduler --once`` as a subprocess; returns its wall time."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [ROOT / ".venv/bin/python", "-m", "cerebro.cli", "scheduler", "--once", "--dsn", dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if p.returncode != 0:
        raise RuntimeError(f"scheduler --once failed:\n{p.stdout}\n{p.stderr}")
    return time.perf_counter() - t0


def _units(dsn: str, wid: int) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select u.worker, u.epoch, u.started_at, u.ended_at, u.result from cerebro.units u "
            "join cerebro.configs c using (config_id) where c.workload_id = %s "
            "and u.kind = 'train' and u.outcome = 'ok' order by u.started_at",
            [wid],
        ).fetchall()
    return [dict(zip(("worker", "epoch", "start", "end", "result"), r, strict=True)) for r in rows]


def steady(units: list[dict[str, Any]]) -> tuple[float, float]:
    """Units per second from the end of epoch 1 to the end (see the module docstring), and
    the workers' idle seconds in that window per unit (the scheduler's turnaround)."""
    t0: datetime = max(u["end"] for u in units if u["epoch"] == 1)
    t1: datetime = max(u["end"] for u in units)
    done = busy = 0.0
    for u in units:
        inside = (u["end"] - max(u["start"], t0)).total_seconds()
        if inside > 0:
            done += inside / (u["end"] - u["start"]).total_seconds()
            busy += inside
    window = (t1 - t0).total_seconds()
    workers = len({u["worker"] for u in units})
    return done / window, (workers * window - busy) / done


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(units: list[dict[str, Any]], wall: float) -> dict[str, float]:
    later = [u for u in units if u["epoch"] > 1]
    rate, idle = steady(units)
    total = [(u["end"] - u["start"]).total_seconds() for u in later]
    fit = [float(u["result"]["seconds"]) for u in later]
    hops = [u["result"] for u in units if "hop_in_s" in u["result"]]
    return {
        "units": len(units),
        "wall": wall,
        "rate": len(units) / wall,
        "steady": rate,
        "idle_s": idle,
        "unit_s": _median(total),
        "fit_s": _median(fit),
        "overhead_s": _median([t - f for t, f in zip(total, fit, strict=True)]),
        "hop_in_s": _median([float(r["hop_in_s"]) for r in hops]),
        "hop_in_bytes": _median([float(r["hop_in_bytes"]) for r in hops]),
        "hops": len(hops),
    }


def run_setup(dsn: str, k: int, name: str, epochs: int) -> dict[str, float]:
    """Launch the grid on dataset tr<k>, train it to the end, summarize its units."""
    with psycopg.connect(dsn, autocommit=True) as c:
        wid = c.execute(
            "select cerebro.launch(%s, 'mlp', %s, null, 'grid', %s, max_epochs => %s, "
            "objective => 'train_loss', seed => 11, params => %s)",
            [name, f"tr{k}", json.dumps(SPACE), epochs, json.dumps(PARAMS)],
        ).fetchone()[0]
    wall = _scheduler_once(scheduler_dsn(dsn))
    with psycopg.connect(dsn, autocommit=True) as c:
        left = c.execute(
            "select count(*) from cerebro.configs where workload_id = %s "
            "and status <> 'completed'",
            [wid],
        ).fetchone()[0]
    if left:
        raise RuntimeError(f"{name}: {left} configs not completed after scheduler --once")
    return summarize(_units(dsn, wid), wall)


def run(dsn: str, epochs: int, rounds: int) -> dict[str, dict[str, float]]:
    """The three setups one after the other, ``rounds`` times (so a change of the machine's
    load hits all three); each figure is the median over the rounds."""
    make_data(dsn)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETUPS}
    for i in range(rounds):
        for k, name in enumerate(SETUPS):
            runs[name].append(run_setup(dsn, k, f"p10_{i}_{k}", epochs))
    return {
        name: {key: _median([r[key] for r in rs]) for key in rs[0]} for name, rs in runs.items()
    }


def report(results: dict[str, dict[str, float]]) -> None:
    print(
        f"{'setup':<10} {'units':>5} {'wall s':>7} {'units/s':>8} {'steady/s':>8} "
        f"{'fit ms':>7} {'overhead ms':>11} {'idle ms':>7} {'hop in ms':>9} {'hop kB':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['units']:>5.0f} {r['wall']:>7.1f} {r['rate']:>8.2f} "
            f"{r['steady']:>8.2f} {r['fit_s'] * 1e3:>7.0f} {r['overhead_s'] * 1e3:>11.1f} "
            f"{r['idle_s'] * 1e3:>7.1f} "
            f"{r['hop_in_s'] * 1e3:>9.1f} {r['hop_in_bytes'] / 1e3:>7.1f}"
        )
    one = results["1 server"]
    for name in list(results)[1:]:
        r = results[name]
        print(
            f"{name} / 1 server: per-unit overhead {r['overhead_s'] / one['overhead_s']:.2f}x, "
            f"steady throughput {r['steady'] / one['steady']:.2f}x, "
            f"wall throughput {r['rate'] / one['rate']:.2f}x"
        )
