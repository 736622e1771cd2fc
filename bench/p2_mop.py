"""P2: MOP workload throughput with K workers ÷ K concurrent plain-Keras processes.

N configs × E epochs of an MLP (~50k parameters) on R rows in K = 2 partitions, no validation
set. MOP: the scheduler daemon (warmed up: every worker backend has imported TensorFlow) runs
the grid; throughput = rows trained / time from the first unit's start to the last unit's end
(from cerebro.units). Baseline: K processes, process j trains the same N configs (same model
code, same batch size) for E passes over partition j — the machine's parallel capacity for
this work; throughput = rows / the slowest process's time (imports excluded on both sides).
The baseline runs as many training steps per call into TensorFlow as cerebro's aggregate
(``steps_per_execution``, training.py), so the ratio is the cost of MOP and the database;
the ratio against Keras's default of one step per call is printed too.

    .venv/bin/python bench/p2_mop.py [--rows 100000] [--configs 4] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl
import timeline

DB = "cerebro_bench_p2"
TARGET = 0.9
SPACE = {"hidden": {"choice": [[192, 192], [160, 224], [224, 160], [176, 208]]}}


def plain_baseline(
    arrays: list[Path], configs: list[dict], epochs: int, tmp: Path, loop: str = "keras"
) -> dict:
    job = tmp / "job.json"
    job.write_text(
        json.dumps(
            {
                "loop": loop,
                "configs": configs,
                "epochs": epochs,
                "dataset": {
                    "feature_shape": [32],
                    "task": "classification",
                    "num_classes": 2,
                    "classes": [0, 1],
                },
            }
        )
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "_plain_worker.py"),
                "mop-baseline",
                str(a),
                str(job),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for a in arrays
    ]
    for p in procs:
        while p.stdout.readline().strip() != "ready":
            pass
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return {"rows": sum(r["rows"] for r in results), "seconds": max(r["seconds"] for r in results)}


def run(server: str | None = None, rows: int = 100_000, configs: int = 4, epochs: int = 2) -> dict:
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    sched = None
    try:
        wl.make_data(dsn, rows)
        sched = wl.start_scheduler(dsn)
        wl.warm_up(dsn, "bench", 2)
        space = {"hidden": {"choice": SPACE["hidden"]["choice"][:configs]}}
        mop = wl.run_workload(dsn, "p2", "bench", space, epochs, {"batch_size": 256})
        print("P2 MOP timeline (s after launch; bench/timeline.py)")
        print(timeline.table(timeline.load(dsn, mop["workload_id"])))
        with tempfile.TemporaryDirectory() as d:
            arrays = wl.partition_arrays(dsn, "bench", Path(d))
            base = {
                "hidden": [64],
                "activation": "relu",
                "dropout": 0.0,
                "optimizer": "adam",
                "learning_rate": 0.001,
                "batch_size": 256,
            }
            configs_ = [{**base, "hidden": h} for h in space["hidden"]["choice"]]
            plain = plain_baseline(arrays, configs_, epochs, Path(d), loop="cerebro")
            keras_ = plain_baseline(arrays, configs_, epochs, Path(d), loop="keras")
    finally:
        if sched is not None:
            sched.terminate()
            sched.wait(timeout=120)
        wl.drop_db(server, DB)
    mop_rate = mop["rows"] / mop["span"]
    plain_rate = plain["rows"] / plain["seconds"]
    keras_rate = keras_["rows"] / keras_["seconds"]
    ratio = mop_rate / plain_rate
    print(
        f"P2 mop/plain = {ratio:.2f} (mop {mop_rate:.0f} rows/s on 2 workers over "
        f"{mop['units']} units in {mop['span']:.1f} s, fit time {mop['fit_seconds']:.1f} s; "
        f"plain {plain_rate:.0f} rows/s with 2 processes in {plain['seconds']:.1f} s, as many "
        f"steps per call as cerebro; {configs} configs x {epochs} epochs x {rows} rows)"
    )
    print(
        f"P2 mop/plain with Keras's default of one step per call = {mop_rate / keras_rate:.2f} "
        f"(plain {keras_rate:.0f} rows/s in {keras_['seconds']:.1f} s)"
    )
    return {
        "id": "P2",
        "what": "MOP workload rows/s ÷ K plain-Keras processes",
        "ratio": ratio,
        "target": TARGET,
        "reps": 1,
        "mop_rows_per_s": mop_rate,
        "plain_rows_per_s": plain_rate,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--configs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    run(rows=a.rows, configs=a.configs, epochs=a.epochs)
