"""P1: in-database sub-epoch training throughput vs plain Keras ``model.fit`` on the same data.

In-DB: wall time (seen from the client) of ``select ... from cerebro.run_subepoch('mlp', ...)``
on one partition, passing the state returned by the previous call (what a MOP hop does).
Plain: ``model.fit(x, y, batch_size, epochs=1, shuffle=False)`` in a separate Python process
(its own TensorFlow thread pools, the server's thread-related environment), on the very
arrays packed in ``cerebro.buffers``, with the model built by the same code and seed.

Both sides are warmed up first (imports, model build, tracing); then the runs alternate
in-DB / plain and the medians are compared. Timings are reported, never asserted.

    .venv/bin/python bench/p1_training.py [--rows N] [--reps 7] [--partitions 1]
                                           [--plain-python EXE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _protocol

DATASET = "bench_p1"
SOURCE = "bench_p1_src"
NUM_FEATURES = 32
PARAMS = {
    "hidden": [208, 208],
    "activation": "relu",
    "dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 256,
}
SEED = 7  # load_dataset shuffle seed and model init seed
DATA_SEED = 0.42  # setseed() for the generated source table
TARGET = 0.95
REPS = 7


def cleanup(conn: psycopg.Connection) -> None:
    if conn.execute("select 1 from cerebro.datasets where name = %s", [DATASET]).fetchone():
        conn.execute("select cerebro.drop_dataset(%s)", [DATASET])
    conn.execute(f"drop table if exists {SOURCE}")


def make_source(conn: psycopg.Connection, rows: int) -> None:
    cols = ", ".join(f"random()::real as f{i}" for i in range(1, NUM_FEATURES + 1))
    conn.execute("select setseed(%s)", [DATA_SEED])
    conn.execute(
        f"create table {SOURCE} as select f.*, "
        f"(f.f1 + f.f2 * f.f3 - f.f4 > 0.25)::int as label "
        f"from (select {cols} from generate_series(1, %s)) f",
        [rows],
    )


def read_partition(
    conn: psycopg.Connection, dataset_id: int, partition: int, feature_shape: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The packed arrays of one partition, decoded exactly like the training aggregate does."""
    cur = conn.cursor(binary=True)
    rows = cur.execute(
        "select buffer_id, num_rows, x, y from cerebro.buffers "
        "where dataset_id = %s and __dist_key__ = %s order by buffer_id",
        [dataset_id, partition],
    ).fetchall()
    xs = [np.frombuffer(bytes(r[2]), dtype="<f4").reshape((r[1], *feature_shape)) for r in rows]
    ys = [np.frombuffer(bytes(r[3]), dtype="<i4") for r in rows]
    return np.concatenate(xs), np.concatenate(ys)


class PlainKeras(_protocol.Worker):
    """The plain-Keras process: started once, warmed up, then asked for one fit at a time."""

    def __init__(
        self, arrays: Path, config: Path, env: dict[str, str], python: str | None = None
    ) -> None:
        if python and python != sys.executable:
            # Another interpreter (e.g. one linked to libpython like PL/Python is): give it
            # this environment's packages, as the server gets them.
            env = dict(env)
            env["PYTHONPATH"] = os.pathsep.join(
                [sysconfig.get_paths()["purelib"], env.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep)
        super().__init__(
            [
                python or sys.executable,
                str(Path(__file__).resolve().parent / "_plain_keras.py"),
                str(arrays),
                str(config),
            ],
            env,
            "plain keras",
        )

    def fit(self) -> float:
        return float(self.ask("fit")["seconds"])


def plain_env(server: dict | None) -> dict[str, str]:
    """The client's environment with the server's thread-related settings instead of ours."""
    env = dict(os.environ)
    if server is not None:
        for k in _common.THREAD_KEYS:
            env.pop(k, None)
        env.update(server["env"])
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def in_db_call(
    conn: psycopg.Connection, state: bytes | None, partition: int
) -> tuple[bytes, float, float, int]:
    """One run_subepoch; returns (state, wall seconds, fit seconds reported, rows)."""
    t0 = time.perf_counter()
    row = conn.execute(
        "select state, rows, seconds from cerebro.run_subepoch('mlp', %s, %s, %s::jsonb, "
        "state => %s::bytea, seed => %s)",
        [DATASET, partition, json.dumps(PARAMS), state, SEED],
        binary=True,
    ).fetchone()
    wall = time.perf_counter() - t0
    return bytes(row[0]), wall, float(row[2]), int(row[1])


def run(
    dsn: str,
    rows: int = 200_000,
    reps: int = REPS,
    partitions: int = 1,
    quiet: bool = False,
    plain_python: str | None = None,
) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    with psycopg.connect(dsn, autocommit=True) as conn:
        cleanup(conn)
        try:
            return _run(conn, say, rows, reps, partitions, plain_python)
        finally:
            cleanup(conn)


def _run(
    conn: psycopg.Connection, say, rows: int, reps: int, partitions: int, plain_python: str | None
) -> dict:
    t0 = time.perf_counter()
    make_source(conn, rows)
    features = [f"f{i}" for i in range(1, NUM_FEATURES + 1)]
    dataset_id = conn.execute(
        "select cerebro.load_dataset(%s, %s, features => %s, label => 'label', "
        "num_partitions => %s, seed => %s)",
        [DATASET, SOURCE, features, partitions, SEED],
    ).fetchone()[0]
    cfg = conn.execute(
        "select cerebro.subepoch_config('mlp', %s, %s::jsonb, seed => %s, partition => 0)",
        [DATASET, json.dumps(PARAMS), SEED],
    ).fetchone()[0]
    x, y = read_partition(conn, dataset_id, 0, cfg["dataset"]["feature_shape"])
    say(
        f"P1 setup: {rows} rows x {NUM_FEATURES} float features, {partitions} partition(s); "
        f"training partition 0 = {x.shape[0]} rows per sub-epoch "
        f"({time.perf_counter() - t0:.1f} s to generate and load)"
    )

    server = _common.server_env(conn)
    env = plain_env(server)
    if server is None:
        say(
            "P1 note: cannot read the server's environment (not a superuser?); the plain "
            "process uses the client's thread settings"
        )
    else:
        say(
            f"P1 threads: server backend cpu_count={server['cpu_count']} "
            f"affinity={server['affinity']} nice={server['nice']} "
            f"env={server['env'] or '{}'} (the plain process gets the same)"
        )

    with tempfile.TemporaryDirectory(prefix="cerebro-bench-p1-") as tmp:
        arrays, config = Path(tmp) / "arrays.npz", Path(tmp) / "config.json"
        np.savez(arrays, x=x, y=y)
        config.write_text(json.dumps(cfg))
        plain = PlainKeras(arrays, config, env, plain_python)
        try:
            info = plain.info
            say(
                f"P1 model: mlp hidden={PARAMS['hidden']} -> {info['params']} parameters, "
                f"batch_size={PARAMS['batch_size']}, adam; plain TF intra_op="
                f"{info['intra_op']} inter_op={info['inter_op']} (0 = TF default); plain "
                f"interpreter {plain_python or sys.executable}"
            )
            say(
                f"P1 warm-up: plain start {info['startup_seconds']:.1f} s "
                f"(first fit {info['warmup_seconds']:.2f} s)"
            )
            # In-DB warm-up: a fresh init (imports TF, builds, traces), then one hop with a
            # state (restores into the cached compiled model), as every later call does.
            state, w1, _, _ = in_db_call(conn, None, 0)
            state, w2, _, _ = in_db_call(conn, state, 0)
            say(f"P1 warm-up: in-db first call {w1:.2f} s, second {w2:.2f} s")

            db_wall, db_fit, plain_fit = [], [], []
            backend = _common.backend_pid(conn)
            watch = _common.CpuWatch(
                [os.getpid(), plain.proc.pid, *_common.server_aux_pids()]
                + ([backend] if backend else [])
            )
            for i in range(reps):
                state, wall, fit_s, n = in_db_call(conn, state, 0)
                assert n == x.shape[0], (n, x.shape)
                db_wall.append(wall)
                db_fit.append(fit_s)
                plain_fit.append(plain.fit())
                say(
                    f"P1 run {i + 1}/{reps}: in-db {wall:.3f} s (fit {fit_s:.3f} s, "
                    f"overhead {wall - fit_s:.3f} s), plain {plain_fit[-1]:.3f} s"
                )
            interference = watch.report() if backend else None
        finally:
            plain.close()

    n = int(x.shape[0])
    db_rps = n / _common.median(db_wall)
    plain_rps = n / _common.median(plain_fit)
    ratio = db_rps / plain_rps
    overhead = _common.median([w - f for w, f in zip(db_wall, db_fit, strict=True)])
    fit_only = (n / _common.median(db_fit)) / plain_rps
    say(
        f"P1 in-db/plain = {ratio:.2f} (in-db {db_rps:.0f} rows/s, plain {plain_rps:.0f} "
        f"rows/s, median of {reps}; {n} rows per sub-epoch, {info['params']} parameters)"
    )
    say(
        f"P1 breakdown: in-db model.fit alone {n / _common.median(db_fit):.0f} rows/s "
        f"(fit-only ratio {fit_only:.2f}); per-call overhead outside fit {overhead:.3f} s "
        f"(median wall {_common.median(db_wall):.3f} s - fit {_common.median(db_fit):.3f} s)"
    )
    say(
        f"P1 best-of-{reps}: in-db {n / min(db_wall):.0f} rows/s, plain "
        f"{n / min(plain_fit):.0f} rows/s, ratio {min(plain_fit) / min(db_wall):.2f} "
        f"(less sensitive to other work on the machine)"
    )
    if interference:
        say(f"P1 {interference}")
    return {
        "id": "P1",
        "what": "in-DB sub-epoch training rows/s ÷ plain Keras fit rows/s",
        "ratio": ratio,
        "target": TARGET,
        "in_db_rows_per_s": db_rps,
        "plain_rows_per_s": plain_rps,
        "rows": n,
        "params": info["params"],
        "reps": reps,
        "overhead_s": overhead,
        "fit_only_ratio": fit_only,
        "in_db_wall_s": db_wall,
        "in_db_fit_s": db_fit,
        "plain_fit_s": plain_fit,
        "interference": interference,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="num_partitions of the dataset; partition 0 is trained",
    )
    ap.add_argument(
        "--plain-python",
        metavar="EXE",
        help="interpreter of the plain side (default: this one); e.g. one linked "
        "to libpython3.X.so like PL/Python, see bench/README.md",
    )
    args = ap.parse_args()
    run(_common.dsn(), args.rows, args.reps, args.partitions, plain_python=args.plain_python)


if __name__ == "__main__":
    main()
