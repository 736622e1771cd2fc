"""Shared setup of the workload benchmarks (P2, P4, P7): a fresh database, data, a warm
scheduler daemon, and the partitions' arrays for the plain-Keras / Optuna side."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from _common import fresh_database, scheduler_dsn, wait_for

ROOT = Path(__file__).resolve().parent.parent
WAIT = 1800.0  # seconds a whole workload may take


def server_dsn() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from cerebro.cluster import Cluster

    return Cluster.default().conninfo("postgres")


def fresh_db(server: str, name: str) -> str:
    """(Re)create database ``name`` with the extension (the tests' helper)."""
    return fresh_database(server, name)


def drop_db(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def make_data(
    dsn: str, rows: int, features: int = 32, partitions: int = 2, name: str = "bench"
) -> None:
    cols = ", ".join(f"random()::real as f{i}" for i in range(features))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.21)")
        c.execute(
            f"create table src as select i as id, {cols} from generate_series(1, %s) i", [rows]
        )
        c.execute("alter table src add column lbl int")
        c.execute("update src set lbl = (f0 + f1 * f2 > 0.75)::int")
        c.execute(
            "select cerebro.load_dataset(%s, 'src', %s, 'lbl', num_partitions => %s, seed => 1)",
            [name, [f"f{i}" for i in range(features)], partitions],
        )


def partition_arrays(dsn: str, name: str, out_dir: Path) -> list[Path]:
    """Each partition's packed arrays, exactly as the database trains on them, as .npz."""
    out = []
    with psycopg.connect(dsn, autocommit=True) as c:
        shape, n = c.execute(
            "select feature_shape, num_partitions from cerebro.datasets where name = %s", [name]
        ).fetchone()
        for p in range(n):
            rows = c.execute(
                "select b.num_rows, b.x, b.y from cerebro.buffers b join "
                "cerebro.datasets d using (dataset_id) where d.name = %s and "
                "b.__dist_key__ = %s order by b.buffer_id",
                [name, p],
                binary=True,
            ).fetchall()
            x = np.concatenate([np.frombuffer(r[1], "<f4").reshape(r[0], *shape) for r in rows])
            y = np.concatenate([np.frombuffer(r[2], "<i4") for r in rows])
            path = out_dir / f"part{p}.npz"
            np.savez(path, x=x, y=y)
            out.append(path)
    return out


def start_scheduler(dsn: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", scheduler_dsn(dsn)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def warm_up(dsn: str, dataset: str, workers: int) -> None:
    """Every worker backend imports TensorFlow and traces a model before timing starts."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.launch('warmup', 'mlp', %s, null, 'grid', %s, max_epochs => 1, "
            "objective => 'train_loss')",
            [dataset, json.dumps({"hidden": {"choice": [[4 + i] for i in range(workers)]}})],
        )
    wait_for(
        dsn,
        "select count(*) from cerebro.configs c join cerebro.workloads w "
        "using (workload_id) where w.name = 'warmup' and c.status = 'completed'",
        lambda n: n == workers,
        WAIT,
    )


def run_workload(
    dsn: str, name: str, dataset: str, space: dict, epochs: int, params: dict
) -> dict:
    """Launch a grid search and wait until it is done; times from the tables."""
    with psycopg.connect(dsn, autocommit=True) as c:
        t0 = time.perf_counter()
        wid = c.execute(
            "select cerebro.launch(%s, 'mlp', %s, null, 'grid', %s, "
            "max_epochs => %s, objective => 'train_loss', params => %s)",
            [name, dataset, json.dumps(space), epochs, json.dumps(params)],
        ).fetchone()[0]
        n = c.execute(
            "select count(*) from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0]
    wait_for(
        dsn,
        f"select count(*) from cerebro.configs where workload_id = {wid} and status = 'completed'",
        lambda k: k == n,
        WAIT,
    )
    wall = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as c:
        first, last, rows, units, fit_s = c.execute(
            "select min(u.started_at), max(u.ended_at), sum((u.result->>'rows')::bigint), "
            "count(*), sum((u.result->>'seconds')::float8) from cerebro.units u join "
            "cerebro.configs c using (config_id) where c.workload_id = %s and "
            "u.outcome = 'ok'",
            [wid],
        ).fetchone()
    return {
        "workload_id": wid,
        "configs": n,
        "wall": wall,
        "span": (last - first).total_seconds(),
        "rows": int(rows),
        "units": units,
        "fit_seconds": fit_s,
    }
