"""P8 (scheduler path): what a sub-epoch of the large roster models costs when the real
scheduler runs it, and how much of it is moving the model state.

``p8_roster.py`` times ``cerebro.run_subepoch`` (a state passed in and returned as a value).
Here one config per model trains 2 epochs over 2 partitions under ``cerebro scheduler``, as a
user's workload does: the input state is read from ``cerebro.states`` inside the training
statement and the new one upserted in it (chunked above 512 MB), the epoch's checkpoint is
committed with its metrics. Each worker backend builds and traces the model on its first
sub-epoch, so the two warm sub-epochs are reported: ``fit`` (Keras inside the aggregate) and
``hop`` (everything else in the unit: state in, restore, capture, encode, state out, commit,
and for the epoch's last unit the checkpoint).

    .venv/bin/python bench/p8_scheduler_hop.py [--models resnet50,bert_base]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _workload as wl

DB = "cerebro_bench_sched_hop"
MODELS = {
    "resnet50": ("images", 64),
    "mobilenet": ("images", 64),
    "distilbert": ("reviews", 8),
    "bert_base": ("reviews", 8),
}


def make_data(dsn: str, image_rows: int, text_rows: int) -> None:
    rng = np.random.default_rng(8)
    words = [f"w{i}" for i in range(1500)]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table images (id int primary key, x real[], y int)")
        with c.cursor() as cur, cur.copy("copy images (id, x, y) from stdin") as cp:
            for i in range(2 * image_rows):
                cp.write_row((i, rng.random((32, 32, 3), dtype=np.float32).tolist(), i % 10))
        c.execute("create table reviews (id int primary key, txt text, y int)")
        with c.cursor() as cur, cur.copy("copy reviews (id, txt, y) from stdin") as cp:
            for i in range(2 * text_rows):
                cp.write_row((i, " ".join(rng.choice(words, 80)), i % 2))
        c.execute(
            "select cerebro.load_dataset('images', 'images', array['x'], 'y', num_partitions => 2)"
        )
        c.execute(
            "select cerebro.load_dataset('reviews', 'reviews', array['txt'], 'y', "
            "num_partitions => 2, max_length => 64, vocabulary_size => 2000)"
        )


def measure(dsn: str, model: str, dataset: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as c:
        wid = c.execute(
            "select cerebro.launch(%s, %s, %s, null, 'grid', "
            '\'{"learning_rate": {"choice": [0.0001]}}\', max_epochs => 2, '
            "objective => 'train_loss', params => '{\"batch_size\": 16}')",
            [f"hop-{model}", model, dataset],
        ).fetchone()[0]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "scheduler",
            "--dsn",
            _common.scheduler_dsn(dsn),
            "--once",
        ],
        cwd=wl.ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    with psycopg.connect(dsn, autocommit=True) as c:
        units = c.execute(
            "select u.worker, extract(epoch from u.ended_at - u.started_at)::float8, "
            "(u.result->>'seconds')::float8, (u.result->>'rows')::int from cerebro.units u "
            "join cerebro.configs k using (config_id) where k.workload_id = %s and "
            "u.kind = 'train' and u.outcome = 'ok' order by u.unit_id",
            [wid],
        ).fetchall()
        size, chunked = c.execute(
            "select octet_length(s.state) + coalesce((select sum(octet_length(data)) from "
            "cerebro.state_chunks where blob = cerebro._chunk_blob(s.state)), 0), "
            "(cerebro.state_info(s.state)->>'chunked') is not null from cerebro.states s "
            "join cerebro.configs k using (config_id) where k.workload_id = %s",
            [wid],
        ).fetchone()
        status = c.execute(
            "select status from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0]
        c.execute("select cerebro.drop_workload(%s)", [f"hop-{model}"])
    if status != "completed" or len(units) != 4:
        raise RuntimeError(f"{model}: config {status} after {len(units)} sub-epochs")
    seen: set = set()
    warm = []
    for worker, total, fit, rows in units:
        if worker in seen:
            warm.append((total, fit, rows))
        seen.add(worker)
    total = statistics.median(t for t, _, _ in warm)
    fit = statistics.median(f for _, f, _ in warm)
    return {
        "model": model,
        "rows": warm[0][2],
        "subepoch_s": total,
        "fit_s": fit,
        "hop_s": total - fit,
        "state_mb": size / 1e6,
        "chunked": chunked,
    }


def run(models: list[str] | None = None) -> list[dict]:
    server = wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    out = []
    t0 = time.perf_counter()
    try:
        make_data(dsn, MODELS["resnet50"][1], MODELS["bert_base"][1])
        for model in models or list(MODELS):
            r = measure(dsn, model, MODELS[model][0])
            out.append(r)
            print(
                f"P8 scheduler {model:<10} {r['rows']:>3} rows: sub-epoch "
                f"{r['subepoch_s']:.2f} s (fit {r['fit_s']:.2f} s + hop {r['hop_s']:.2f} s), "
                f"state {r['state_mb']:.0f} MB{' in chunks' if r['chunked'] else ''} "
                f"({r['state_mb'] / r['hop_s']:.0f} MB/s)",
                flush=True,
            )
    finally:
        wl.drop_db(server, DB)
    print(f"P8 scheduler total {time.perf_counter() - t0:.0f} s")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="")
    a = ap.parse_args()
    run([m for m in a.models.split(",") if m] or None)
