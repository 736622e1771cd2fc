"""P8: what a sub-epoch of each roster model costs here, and what its model state costs to hop.

For each roster model, in one fresh backend: ``cerebro.run_subepoch`` on partition 0 from a
fresh init (build + trace + fit: reported as "first"), then on partition 1 continuing from
that state (reported: the warm sub-epoch). The state stays in the server between the two
calls (a temp table, as the scheduler keeps it in cerebro.states), so a warm sub-epoch is:
read the state, decode it and restore it into the cached compiled model (weights and Adam
moments), ``model.fit`` over the partition, capture and encode the new state, write it back.
"fit" is the aggregate's own ``model.fit`` seconds; "hop" is the rest of the call.

The ResNet50 state hop (a ~283 MB state) is the hop part of its warm sub-epoch: everything in
that run_subepoch call except ``model.fit`` (the same call as a partition of a few rows would
make, without retracing a second full ResNet50 here). ``--tiny-hop`` also measures it
literally: full-size ResNet50 on a dataset of 2 rows per partition (one more build + trace,
~40 s), reported as the total seconds of that call. MB/s count the state once.

Sizes (stated in each line): images 32x32x3; mlp on 30 numeric features; resnet50 (full width
and depth), mobilenet (alpha 1.0), bert_base and distilbert at their full default sizes on 64
tokens with a WordPiece vocabulary of at most 2,000 tokens learnt from the text (so the
embedding table is small: BERT-base is ~87M parameters, a 1.04 GB state with Adam; DistilBERT
~44M, 0.53 GB; the state sizes printed are exact). There is no baseline to
divide by: the "ratio" is the ResNet50 hop rate in MB/s (higher is better, no target).

    .venv/bin/python bench/p8_roster.py [--models mlp,resnet50,...] [--tiny-hop]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl

DB = f"cerebro_bench_p8_{os.getpid()}"  # its own: never drops a concurrent run's database
IMAGE_ROWS = 64  # per partition
TEXT_ROWS = 8  # per partition (a full BERT-base step on 64 tokens is ~1 s / 4 rows)
NUMERIC_ROWS = 4096  # per partition
TINY_ROWS = 2  # per partition, for the ResNet50 hop
# model, dataset, params, what the rows are
MODELS = (
    ("mlp", "tabular", {"hidden": [256, 128], "batch_size": 256}, "30 features"),
    ("mobilenet", "images", {"alpha": 1.0, "batch_size": 32}, "32x32x3"),
    ("resnet50", "images", {"batch_size": 32}, "32x32x3"),
    ("distilbert", "reviews", {"batch_size": 16}, "64 tokens"),
    ("bert_base", "reviews", {"batch_size": 16}, "64 tokens"),
)


def make_data(dsn: str) -> None:
    rng = np.random.default_rng(8)
    words = [f"w{i}" for i in range(1500)]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.8)")
        cols = ", ".join(f"random()::real as f{i}" for i in range(30))
        c.execute(
            f"create table tabular as select i as id, {cols}, (i % 3) as y "
            f"from generate_series(1, {2 * NUMERIC_ROWS}) i"
        )
        for table, n in (("images", IMAGE_ROWS), ("tiny", TINY_ROWS)):
            c.execute(f"create table {table} (id int primary key, x real[], y int)")
            with c.cursor() as cur, cur.copy(f"copy {table} (id, x, y) from stdin") as cp:
                for i in range(2 * n):
                    cp.write_row((i, rng.random((32, 32, 3), dtype=np.float32).tolist(), i % 10))
        c.execute("create table reviews (id int primary key, txt text, y int)")
        with c.cursor() as cur, cur.copy("copy reviews (id, txt, y) from stdin") as cp:
            for i in range(2 * TEXT_ROWS):
                cp.write_row((i, " ".join(rng.choice(words, 80)), i % 2))
        c.execute(
            "select cerebro.load_dataset('tabular', 'tabular', %s, 'y', num_partitions => 2)",
            [[f"f{i}" for i in range(30)]],
        )
        for table in ("images", "tiny"):
            c.execute(
                f"select cerebro.load_dataset('{table}', '{table}', array['x'], 'y', "
                "num_partitions => 2)"
            )
        c.execute(
            "select cerebro.load_dataset('reviews', 'reviews', array['txt'], 'y', "
            "num_partitions => 2, max_length => 64, vocabulary_size => 2000)"
        )


def two_subepochs(dsn: str, model: str, dataset: str, params: dict) -> dict:
    """Partition 0 from scratch (first), then partition 1 from its state (warm), one backend."""
    p = json.dumps(params)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create temp table s (state bytea, loss float8)")
        c.execute("alter table s alter column state set storage external")  # as cerebro.states
        t0 = time.perf_counter()
        c.execute(
            "insert into s select state, loss from cerebro.run_subepoch(%s, %s, 0, %s, seed => 1)",
            [model, dataset, p],
        )
        first = time.perf_counter() - t0
        size = c.execute("select octet_length(state) from s").fetchone()[0]
        t0 = time.perf_counter()
        # the function in the select list of a subquery: its (up to 1 GB) composite result is
        # not materialised in a tuplestore, as a CTE or a FROM-clause function scan would be
        fit, rows, loss = c.execute(
            "update s set state = (r.x).state, loss = (r.x).loss from (select "
            "cerebro.run_subepoch(%s, %s, 1, %s, state => (select state from s), seed => 1) "
            "as x) r returning (r.x).seconds, (r.x).rows, (r.x).loss",
            [model, dataset, p],
        ).fetchone()
        total = time.perf_counter() - t0
    if loss is None or not np.isfinite(loss):
        raise RuntimeError(f"{model}: loss {loss}")
    return {
        "model": model,
        "rows": rows,
        "first_s": first,
        "subepoch_s": total,
        "fit_s": fit,
        "hop_s": total - fit,
        "state_mb": size / 1e6,
        "loss": loss,
    }


def run(
    server: str | None = None, models: list[str] | None = None, tiny_hop: bool = False
) -> dict:
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    results = []
    hop = None
    t_all = time.perf_counter()
    try:
        make_data(dsn)
        for model, dataset, params, what in MODELS:
            if models and model not in models:
                continue
            r = two_subepochs(dsn, model, dataset, params)
            results.append(r)
            print(
                f"P8 {model:<10} {r['rows']:>5} rows of {what:<11} "
                f"{json.dumps(params)}: sub-epoch {r['subepoch_s']:6.2f} s "
                f"(fit {r['fit_s']:6.2f} s + hop {r['hop_s']:5.2f} s), "
                f"state {r['state_mb']:7.1f} MB; first (build + trace + fit) "
                f"{r['first_s']:5.1f} s",
                flush=True,
            )
            if model == "resnet50":
                hop = {
                    "mb": r["state_mb"],
                    "seconds": r["hop_s"],
                    "mb_per_s": r["state_mb"] / r["hop_s"],
                    "how": "sub-epoch - fit",
                }
                print(
                    f"P8 ResNet50 state hop: {hop['mb']:.0f} MB in {hop['seconds']:.2f} s "
                    f"({hop['mb_per_s']:.0f} MB/s): its warm sub-epoch less model.fit",
                    flush=True,
                )
        if tiny_hop:
            h = two_subepochs(dsn, "resnet50", "tiny", {"batch_size": TINY_ROWS})
            hop = {
                "mb": h["state_mb"],
                "seconds": h["subepoch_s"],
                "fit_s": h["fit_s"],
                "mb_per_s": h["state_mb"] / h["subepoch_s"],
                "how": "tiny partition",
            }
            print(
                f"P8 ResNet50 state hop: run_subepoch on a {h['rows']}-row partition with "
                f"a {h['state_mb']:.0f} MB state in and out: {h['subepoch_s']:.2f} s "
                f"(fit {h['fit_s']:.2f} s), {hop['mb_per_s']:.0f} MB/s",
                flush=True,
            )
    finally:
        wl.drop_db(server, DB)
    print(f"P8 total {time.perf_counter() - t_all:.0f} s", flush=True)
    return {
        "id": "P8",
        "what": "roster: seconds per sub-epoch; ResNet50 state hop MB/s",
        "ratio": hop["mb_per_s"] if hop else None,
        "target": 0.0,
        "models": results,
        "hop": hop,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="", help="comma-separated subset of the roster")
    ap.add_argument(
        "--tiny-hop",
        action="store_true",
        help="also time the ResNet50 hop on a 2-row partition (~40 s more)",
    )
    a = ap.parse_args()
    run(models=[m for m in a.models.split(",") if m] or None, tiny_hop=a.tiny_hop)
