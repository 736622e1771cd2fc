"""P7: wall time of the same search with cerebro ÷ Optuna with K parallel worker processes.

Two searches ("shapes"), each a grid of N MLP configs (~43k parameters, distinct hidden
sizes), E epochs each, on R rows, batch 256, K = 2:

- 4 configs × 2 epochs (as many configs as 2 × workers);
- 8 configs × 3 epochs (more configs than workers: MOP keeps every worker busy).

cerebro: the warm scheduler daemon trains each grid over K partitions; wall time from `launch`
to the last config completed. Optuna: K worker processes share one study (JournalStorage on
a file, GridSampler over the same grid); each trial builds the same model (same code) and
fits it on all R rows (the partitions' arrays, concatenated) for E epochs. TensorFlow is
imported before the clock starts on both sides. Per shape and repetition, Optuna runs right
after cerebro (the daemon idles meanwhile); each repetition changes the learning rate a
little on both sides, and the shapes' configs differ, so no compiled model is reused from a
worker's cache. A shape's ratio = median cerebro ÷ median Optuna; P7 is the worse shape's.
Each cerebro run's timeline (bench/timeline.py) and the CPU other processes used are printed.
Optuna's trials run Keras's default of one training step per call into TensorFlow, as a
user's would; cerebro's aggregate runs up to 32 (``steps_per_execution``, training.py), which
is most of cerebro's lead on small models. ``--optuna-loop cerebro`` gives Optuna's trials
the same loop.

    .venv/bin/python bench/p7_optuna.py [--rows 100000] [--shapes 4x2,8x3] [--reps 1]
        [--optuna-loop keras|cerebro]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg

import _common
import _workload as wl
import timeline

DB = "cerebro_bench_p7"
TARGET = 0.9
SHAPES = ((4, 2), (8, 3))  # (configs, epochs)
# ~43k parameters each; every shape takes the next N, so no two workloads share a config
HIDDEN = [
    [192, 192], [160, 224], [224, 160], [176, 208], [200, 184], [184, 200],
    [208, 176], [168, 216], [216, 168], [196, 188], [188, 196], [180, 204],
]  # fmt: skip


def _cpu_s(watch: _common.CpuWatch) -> float:
    """CPU seconds the watched processes (ours) used since the watch started (nan if one of
    them is gone): a figure that others' load disturbs much less than wall time."""
    end = watch._sample()
    if watch.start is None or end is None:
        return float("nan")
    return (end[2] - watch.start[2]) / watch.hz


def optuna_run(
    arrays: list[Path],
    grid: list,
    epochs: int,
    tmp: Path,
    k: int,
    lr: float = 0.001,
    loop: str = "keras",
) -> tuple[float, str | None, float]:
    """Optuna's wall time for the grid, the CPU others used meanwhile, the CPU s it used.
    ``loop``: "keras" (Keras's default, one step per call into TensorFlow, as a user runs
    it) or "cerebro" (as many as cerebro's training aggregate)."""
    import optuna

    journal = str(tmp / f"journal-{len(grid)}x{epochs}-{lr}.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    optuna.create_study(study_name="p7", storage=storage, direction="minimize")
    job = tmp / "optuna.json"
    job.write_text(
        json.dumps(
            {
                "arrays": [str(a) for a in arrays],
                "loop": loop,
                "journal": journal,
                "epochs": epochs,
                "grid": {"hidden": [json.dumps(h) for h in grid]},
                "n_trials": -(-len(grid) // k),
                "fixed": {
                    "activation": "relu",
                    "dropout": 0.0,
                    "optimizer": "adam",
                    "learning_rate": lr,
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
    watch = _common.CpuWatch([os.getpid(), *(p.pid for p in procs), *_common.server_aux_pids()])
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdout.readline()
    wall = time.perf_counter() - t0
    others = watch.report()  # before the processes are reaped (their /proc entries go)
    cpu = _cpu_s(watch)
    for p in procs:
        p.wait()
    study = optuna.load_study(study_name="p7", storage=storage)
    done = {
        t.params["hidden"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
    }
    if len(done) != len(grid):
        print(
            f"P7 note: optuna's GridSampler covered {len(done)} of {len(grid)} grid points "
            "(parallel workers may draw the same point)"
        )
    return wall, others, cpu


def _our_pids(dsn: str, sched: subprocess.Popen) -> list[int]:
    """This process, the daemon and its backends, the server's background writers."""
    with psycopg.connect(dsn, autocommit=True) as c:
        backends = [
            r[0]
            for r in c.execute(
                "select pid from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid()"
            )
        ]
    return [os.getpid(), sched.pid, *backends, *_common.server_aux_pids()]


def _grids(shapes: tuple[tuple[int, int], ...]) -> list[list]:
    out, at = [], 0
    for n, _ in shapes:
        if at + n > len(HIDDEN):
            raise SystemExit(f"P7 has {len(HIDDEN)} distinct configs for all shapes together")
        out.append(HIDDEN[at : at + n])
        at += n
    return out


def _cerebro(dsn: str, sched: subprocess.Popen, n: int, e: int, grid: list, lr: float) -> dict:
    """One shape's workload under the warm daemon, with its timeline."""
    watch = _common.CpuWatch(_our_pids(dsn, sched))
    res = wl.run_workload(
        dsn,
        f"p7_{n}x{e}_{lr}",
        "bench",
        {"hidden": {"choice": grid}},
        e,
        {"batch_size": 256, "learning_rate": lr},
    )
    res["others"] = watch.report()
    res["cpu_s"] = _cpu_s(watch)
    units = timeline.load(dsn, res["workload_id"])
    print(f"P7 {n} configs x {e} epochs: cerebro timeline (s after launch; bench/timeline.py)")
    print(timeline.table(units, 0.0, None))
    res["timeline"] = {str(k): v for k, v in timeline.attribute(units).items()}
    return res


def _side_by_side(
    dsn: str,
    sched: subprocess.Popen,
    shapes: tuple[tuple[int, int], ...],
    reps: int,
    loop: str = "keras",
) -> list[list[tuple[dict, float, str | None, float]]]:
    """Per shape, ``reps`` × (cerebro, then Optuna right after it); the daemon idles while
    Optuna runs. Each repetition changes the learning rate a little (on both sides), so no
    compiled model is reused from a worker's cache."""
    out: list[list[tuple[dict, float, str | None, float]]] = [[] for _ in shapes]
    with tempfile.TemporaryDirectory() as d:
        arrays = wl.partition_arrays(dsn, "bench", Path(d))
        for r in range(reps):
            lr = round(0.001 + r * 1e-6, 6)
            for i, ((n, e), grid) in enumerate(zip(shapes, _grids(shapes), strict=True)):
                ours = _cerebro(dsn, sched, n, e, grid, lr)
                opt, others, cpu = optuna_run(arrays, grid, e, Path(d), 2, lr, loop)
                print(
                    f"P7 {n}x{e} rep {r + 1}: cerebro {ours['wall']:.1f} s, optuna {opt:.1f} s "
                    f"= {ours['wall'] / opt:.2f}; CPU s used: cerebro {ours['cpu_s']:.1f}, "
                    f"optuna {cpu:.1f}\n  during cerebro: {ours['others']}\n"
                    f"  during optuna: {others}"
                )
                out[i].append((ours, opt, others, cpu))
    return out


def run(
    server: str | None = None,
    rows: int = 100_000,
    shapes: tuple[tuple[int, int], ...] = SHAPES,
    reps: int = 1,
    optuna_loop: str = "keras",
) -> dict:
    server = server or wl.server_dsn()
    _grids(shapes)  # enough distinct configs?
    dsn = wl.fresh_db(server, DB)
    sched = None
    try:
        wl.make_data(dsn, rows)
        sched = wl.start_scheduler(dsn)
        wl.warm_up(dsn, "bench", 2)
        runs = _side_by_side(dsn, sched, shapes, reps, optuna_loop)
    finally:
        if sched is not None:
            sched.terminate()
            sched.wait(timeout=120)
        wl.drop_db(server, DB)
    figures = []
    for (n, e), shape_runs in zip(shapes, runs, strict=True):
        ours = statistics.median(o["wall"] for o, _, _, _ in shape_runs)
        opt = statistics.median(t for _, t, _, _ in shape_runs)
        cpu = statistics.median(o["cpu_s"] / c for o, _, _, c in shape_runs)
        figures.append(
            {
                "configs": n,
                "epochs": e,
                "ratio": ours / opt,
                "best_ratio": min(o["wall"] / t for o, t, _, _ in shape_runs),
                "cpu_ratio": cpu,
                "cerebro_seconds": ours,
                "optuna_seconds": opt,
                "timeline": shape_runs[-1][0]["timeline"],
                "interference": {
                    "cerebro": shape_runs[-1][0]["others"],
                    "optuna": shape_runs[-1][2],
                },
            }
        )
        print(
            f"P7 {n}x{e}: cerebro/optuna wall time = {ours / opt:.2f} (medians of {reps}: "
            f"cerebro {ours:.1f} s, optuna {opt:.1f} s; best ratio "
            f"{figures[-1]['best_ratio']:.2f}; CPU s cerebro/optuna {cpu:.2f}; {n} configs x "
            f"{e} epochs x {rows} rows, 2 workers)"
        )
    worst = max(figures, key=lambda f: f["ratio"])
    return {
        "id": "P7",
        "what": "same search: cerebro wall time ÷ Optuna, K=2 processes (worse shape)",
        "ratio": worst["ratio"],
        "target": TARGET,
        "reps": reps,
        "lower_is_better": True,
        "shapes": figures,
        "cerebro_seconds": worst["cerebro_seconds"],
        "optuna_seconds": worst["optuna_seconds"],
        "interference": "; ".join(
            f"{f['configs']}x{f['epochs']} {side}: {text}"
            for f in figures
            for side, text in f["interference"].items()
            if text and "disturbed" in text
        ),
    }


def _shape(text: str) -> tuple[int, int]:
    n, e = text.lower().split("x")
    return int(n), int(e)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument(
        "--shapes",
        default=",".join(f"{n}x{e}" for n, e in SHAPES),
        help="configs x epochs, comma-separated (default 4x2,8x3)",
    )
    ap.add_argument("--reps", type=int, default=1, help="side-by-side repetitions per shape")
    ap.add_argument(
        "--optuna-loop",
        choices=["keras", "cerebro"],
        default="keras",
        help="Optuna's trials with Keras's one step per call (default) or cerebro's",
    )
    a = ap.parse_args()
    run(
        rows=a.rows,
        shapes=tuple(_shape(s) for s in a.shapes.split(",")),
        reps=a.reps,
        optuna_loop=a.optuna_loop,
    )
