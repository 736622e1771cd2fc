"""P7: wall time of the same search with cerebro ÷ Optuna with K parallel worker processes.

The search: a grid of N MLP configs (~50k parameters), E epochs each, on R rows, batch 256,
K = 2. cerebro: the warm scheduler daemon trains it with MOP over K partitions; wall time
from `launch` to the last config completed. Optuna: K worker processes share one study
(JournalStorage on a file, GridSampler over the same grid); each trial builds the same model
(same code) and fits it on all R rows (the partitions' arrays, concatenated) for E epochs.
TensorFlow is imported before the clock starts on both sides.

    .venv/bin/python bench/p7_optuna.py [--rows 100000] [--configs 4] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl

DB = "cerebro_bench_p7"
TARGET = 1.0
HIDDEN = [[192, 192], [160, 224], [224, 160], [176, 208], [200, 184], [184, 200]]


def optuna_run(arrays: list[Path], grid: list, epochs: int, tmp: Path, k: int) -> float:
    import optuna

    journal = str(tmp / "journal.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    optuna.create_study(study_name="p7", storage=storage, direction="minimize")
    job = tmp / "optuna.json"
    job.write_text(
        json.dumps(
            {
                "arrays": [str(a) for a in arrays],
                "journal": journal,
                "epochs": epochs,
                "grid": {"hidden": [json.dumps(h) for h in grid]},
                "n_trials": -(-len(grid) // k),
                "fixed": {
                    "activation": "relu",
                    "dropout": 0.0,
                    "optimizer": "adam",
                    "learning_rate": 0.001,
                    "batch_size": 256,
                },
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
            [sys.executable, str(Path(__file__).parent / "_plain_worker.py"), "optuna", str(job)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(k)
    ]
    for p in procs:
        while p.stdout.readline().strip() != "ready":
            pass
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdout.readline()
        p.wait()
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="p7", storage=storage)
    done = {
        t.params["hidden"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
    }
    if len(done) != len(grid):
        print(
            f"P7 note: optuna's GridSampler covered {len(done)} of {len(grid)} grid points "
            "(parallel workers may draw the same point)"
        )
    return wall


def run(server: str | None = None, rows: int = 100_000, configs: int = 4, epochs: int = 2) -> dict:
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    sched = None
    grid = HIDDEN[:configs]
    try:
        wl.make_data(dsn, rows)
        sched = wl.start_scheduler(dsn)
        wl.warm_up(dsn, "bench", 2)
        res = wl.run_workload(
            dsn, "p7", "bench", {"hidden": {"choice": grid}}, epochs, {"batch_size": 256}
        )
        sched.terminate()
        sched.wait(timeout=120)
        sched = None
        with tempfile.TemporaryDirectory() as d:
            arrays = wl.partition_arrays(dsn, "bench", Path(d))
            opt = optuna_run(arrays, grid, epochs, Path(d), 2)
    finally:
        if sched is not None:
            sched.terminate()
            sched.wait(timeout=120)
        wl.drop_db(server, DB)
    ratio = res["wall"] / opt
    print(
        f"P7 cerebro/optuna wall time = {ratio:.2f} (cerebro {res['wall']:.1f} s, optuna "
        f"{opt:.1f} s; {configs} configs x {epochs} epochs x {rows} rows, 2 workers)"
    )
    return {
        "id": "P7",
        "what": "same search: cerebro wall time ÷ Optuna, K=2 processes",
        "ratio": ratio,
        "target": TARGET,
        "reps": 1,
        "lower_is_better": True,
        "cerebro_seconds": res["wall"],
        "optuna_seconds": opt,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--configs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    run(rows=a.rows, configs=a.configs, epochs=a.epochs)
