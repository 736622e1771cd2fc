"""P9: ``cerebro.predict`` rows/s ÷ the same scoring done by a client outside the database.

R rows × 32 ``real`` features (the workload benchmarks' data, a binary label) are packed in
2 partitions and one MLP config (hidden [64, 64]) trains 1 epoch under the scheduler. Then,
alternately (medians compared; both sides warmed up first):

- **in-DB**: ``select cerebro.predict(config, 'src', 'scores_db', key => 'id')`` into a new
  table, committed, always in the same connection (its first call, untimed, imports
  TensorFlow: ~3 s that a new session pays once) (featurize in SQL, normalise, batched Keras
  inference, one INSERT per batch).
- **client**: a separate Python process (`_client_predict.py`, the server backend's thread
  settings) with the model from ``cerebro.export_model``: binary ``COPY ... TO STDOUT`` of the
  key and features, the dataset's normalisation, one ``model.predict`` over all rows, binary
  ``COPY ... FROM STDIN`` of key, class, probability and probabilities into a new table,
  committed — the fastest way we know to do it outside.

The ratio is client seconds ÷ in-DB seconds (above 1: in-database predict is faster).

    .venv/bin/python bench/p9_predict.py [--rows 200000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _protocol
import _workload as wl
from p1_training import plain_env

DB = "cerebro_bench_p9"
FEATURES = 32
TARGET = 1.0


class Client(_protocol.Worker):
    """The client process: started once, warmed up, then asked for one scoring at a time."""

    def __init__(self, dsn: str, model: Path, norm: Path, env: dict[str, str]) -> None:
        super().__init__(
            [
                sys.executable,
                str(Path(__file__).resolve().parent / "_client_predict.py"),
                dsn,
                str(model),
                str(norm),
                "scores_client",
            ],
            env,
            "client",
        )

    def run(self) -> float:
        return float(self.ask("run")["seconds"])


def _in_db(conn: psycopg.Connection, cid: int) -> float:
    """One predict in the same (warm) backend, as the client side is one warm process."""
    conn.execute("drop table if exists scores_db")
    t0 = time.perf_counter()
    conn.execute("select cerebro.predict(%s, 'src', 'scores_db', key => 'id')", [cid])
    return time.perf_counter() - t0


def run(
    server: str | None = None, rows: int = 200_000, reps: int = 3, quiet: bool = False
) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    try:
        return _run(dsn, say, rows, reps)
    finally:
        wl.drop_db(server, DB)


def _run(dsn: str, say, rows: int, reps: int) -> dict:
    t0 = time.perf_counter()
    wl.make_data(dsn, rows, FEATURES, 2)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.launch('p9', 'mlp', 'bench', null, 'grid', %s, "
            "max_epochs => 1, objective => 'train_loss', seed => 1)",
            [json.dumps({"hidden": {"choice": [[64, 64]]}, "batch_size": {"choice": [256]}})],
        )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "scheduler",
            "--dsn",
            _common.scheduler_dsn(dsn),
            "--once",
        ],
        capture_output=True,
        text=True,
        cwd=wl.ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"scheduler: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    with psycopg.connect(dsn, autocommit=True) as c:
        cid, status = c.execute("select config_id, status from cerebro.configs").fetchone()
        if status != "completed":
            raise RuntimeError(f"config {cid} is {status}")
        blob = c.execute("select cerebro.export_model(%s)", [cid]).fetchone()[0]
        norm, classes, feats = c.execute(
            "select normalization, classes, features from cerebro.datasets where name = 'bench'"
        ).fetchone()
        server_env = _common.server_env(c)
    say(
        f"P9 setup: {rows} rows x {FEATURES} features, MLP [64, 64] trained 1 epoch "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="cerebro-p9-") as d:
        model_path, norm_path = Path(d) / "m.keras", Path(d) / "norm.json"
        model_path.write_bytes(blob)
        norm_path.write_text(json.dumps({**norm, "classes": classes, "features": feats}))
        client = Client(dsn, model_path, norm_path, plain_env(server_env))
        conn = psycopg.connect(dsn, autocommit=True)
        try:
            warm_db = _in_db(conn, cid)  # imports TensorFlow, loads the checkpoint
            say(f"P9 warm-up: in-DB {warm_db:.2f} s, client {client.info['warmup_seconds']:.2f} s")
            db_s, client_s = [], []
            for i in range(reps):
                db_s.append(_in_db(conn, cid))
                client_s.append(client.run())
                say(
                    f"P9 run {i + 1}/{reps}: in-DB {db_s[-1]:.2f} s "
                    f"({rows / db_s[-1]:.0f} rows/s), client {client_s[-1]:.2f} s "
                    f"({rows / client_s[-1]:.0f} rows/s)"
                )
        finally:
            conn.close()
            client.close()
    with psycopg.connect(dsn, autocommit=True) as c:
        diff = c.execute(
            "select count(*), max(abs(a.probability - b.probability)), "
            "count(*) filter (where a.lbl <> b.lbl) from scores_db a "
            "join scores_client b using (id)"
        ).fetchone()
    ratio = _common.median(client_s) / _common.median(db_s)
    say(
        f"P9 client/in-DB = {ratio:.2f} (in-DB {rows / _common.median(db_s):.0f} rows/s, "
        f"client {rows / _common.median(client_s):.0f} rows/s, median of {reps}); "
        f"{diff[0]} rows joined, max |Δprobability| {diff[1]:.2e}, {diff[2]} classes differ"
    )
    return {
        "id": "P9",
        "what": "predict: client export+COPY seconds ÷ cerebro.predict seconds",
        "ratio": ratio,
        "target": TARGET,
        "rows": rows,
        "db_s": db_s,
        "client_s": client_s,
        "joined": diff[0],
        "max_diff": diff[1],
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    run(rows=a.rows, reps=a.reps)
