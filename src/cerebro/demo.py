"""`make demo`: a real model-selection workload on the embedded default, by hand.

Loads the handwritten-digits dataset that ships inside scikit-learn (1,797 8x8 images, no
download), packs it into partitions, then trains a few MLP configs with model hopper
parallelism done by hand: every epoch each config visits every partition once, hopping its
state (weights + optimizer) between partitions as bytea; after each epoch it is evaluated on
the validation set. Progress is live; the leaderboard is printed at the end.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .cluster import Cluster

CONFIGS = [
    {"hidden": [32], "learning_rate": 0.003, "batch_size": 32},
    {"hidden": [128, 64], "learning_rate": 0.001, "batch_size": 32},
    {"hidden": [64], "learning_rate": 0.03, "optimizer": "sgd", "batch_size": 16},
    {"hidden": [256], "learning_rate": 0.0003, "batch_size": 64, "dropout": 0.2},
]
EPOCHS = 4
SEED = 2026


def load_digits_table(conn: psycopg.Connection) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    conn.execute("drop table if exists public.digits")
    conn.execute("create table public.digits (id int primary key, pixels real[], "
                 "label int not null)")
    with conn.cursor().copy("copy public.digits (id, pixels, label) from stdin") as cp:
        for i, (img, lab) in enumerate(zip(digits.images, digits.target)):
            cp.write_row([i, img.astype(np.float32).tolist(), int(lab)])
    conn.execute("drop view if exists public.digits_train, public.digits_valid")
    conn.execute("create view public.digits_train as select * from public.digits "
                 "where id % 5 <> 0")
    conn.execute("create view public.digits_valid as select * from public.digits "
                 "where id % 5 = 0")


def main() -> None:
    console = Console()
    dsn = os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    with psycopg.connect(dsn, autocommit=True) as conn:
        console.print(f"[bold]cerebro demo[/] on {dsn}")
        load_digits_table(conn)
        for name in ("digits_valid", "digits_train"):
            if conn.execute("select 1 from cerebro.datasets where name = %s", [name]).fetchone():
                conn.execute("select cerebro.drop_dataset(%s)", [name])
        t0 = time.perf_counter()
        conn.execute("select cerebro.load_dataset('digits_train', 'public.digits_train', "
                     "features => array['pixels'], label => 'label', seed => %s)", [SEED])
        conn.execute("select cerebro.load_dataset('digits_valid', 'public.digits_valid', "
                     "like_dataset => 'digits_train', num_partitions => 1)")
        parts, rows = conn.execute("select num_partitions, num_rows from cerebro.datasets "
                                   "where name = 'digits_train'").fetchone()
        console.print(f"packed digits_train: {rows} rows, 8x8 images, {parts} partitions "
                      f"({time.perf_counter() - t0:.2f} s)")

        states: list[bytes | None] = [None] * len(CONFIGS)
        results = [{"epoch": 0, "train_loss": None, "valid_loss": None, "valid_acc": None}
                   for _ in CONFIGS]
        rng = random.Random(SEED)

        def table() -> Table:
            t = Table(title="MLP configs on digits (MOP sub-epochs run by hand)")
            for col in ("config", "params", "epoch", "train loss", "valid loss", "valid acc"):
                t.add_column(col)
            for i, (cfg, r) in enumerate(zip(CONFIGS, results)):
                t.add_row(str(i + 1), json.dumps(cfg), f"{r['epoch']}/{EPOCHS}",
                          _fmt(r["train_loss"]), _fmt(r["valid_loss"]), _fmt(r["valid_acc"]))
            return t

        with Live(table(), console=console, refresh_per_second=4) as live:
            for epoch in range(1, EPOCHS + 1):
                order = list(range(parts))
                rng.shuffle(order)                       # per-epoch partition order
                for i, cfg in enumerate(CONFIGS):
                    losses = []
                    for p in order:
                        st, loss, n = conn.execute(
                            "select state, loss, rows from cerebro.run_subepoch('mlp', "
                            "'digits_train', %s, %s, state => %s, seed => %s, epoch => %s)",
                            [p, json.dumps(cfg), states[i], SEED + i, epoch]).fetchone()
                        states[i] = st
                        losses.append((loss, n))
                    vloss, vmetrics = conn.execute(
                        "select loss, metrics from cerebro.run_evaluation('mlp', "
                        "'digits_valid', %s, %s)", [states[i], json.dumps(cfg)]).fetchone()
                    results[i] = {"epoch": epoch,
                                  "train_loss": sum(a * b for a, b in losses) /
                                  sum(b for _, b in losses),
                                  "valid_loss": vloss, "valid_acc": vmetrics["accuracy"]}
                    live.update(table())
        board = sorted(range(len(CONFIGS)), key=lambda i: results[i]["valid_loss"])
        lb = Table(title="leaderboard (objective: valid_loss, lower is better)")
        for col in ("rank", "config", "params", "valid loss", "valid acc"):
            lb.add_column(col)
        for rank, i in enumerate(board, 1):
            lb.add_row(str(rank), str(i + 1), json.dumps(CONFIGS[i]),
                       _fmt(results[i]["valid_loss"]), _fmt(results[i]["valid_acc"]))
        console.print(lb)
        console.print(f"done in {time.perf_counter() - t0:.1f} s. Try it yourself: "
                      "[bold]cerebro psql[/] and see README.md")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


if __name__ == "__main__":
    main()
