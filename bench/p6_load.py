"""P6: ``cerebro.load_dataset`` rows/s vs ``COPY`` of the same rows into a plain table.

A source table of N rows x 30 ``real`` columns + an int label is generated in SQL (setseed).
(a) COPY: the rows are first fetched with ``COPY (select * from src) TO STDOUT`` (untimed);
    the timed part is ``COPY t FROM STDIN`` of those bytes from the client into a new plain
    table (created beforehand), committed.
(b) load_dataset: ``select cerebro.load_dataset(...)`` on the source table, committed.
Both are warmed up once on a small view, then run alternately; medians are compared.
Timings are reported, never asserted.

    .venv/bin/python bench/p6_load.py [--rows 200000] [--reps 5] [--partitions 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DATASET = "bench_p6"
WARM_DATASET = "bench_p6_warm"
SOURCE = "bench_p6_src"
WARM_VIEW = "bench_p6_warm_src"
COPY_TABLE = "bench_p6_copy"
NUM_FEATURES = 30
SEED = 11
DATA_SEED = 0.17
TARGET = 0.5
REPS = 5
CHUNK = 1 << 20


def cleanup(conn: psycopg.Connection) -> None:
    for name in (DATASET, WARM_DATASET):
        if conn.execute("select 1 from cerebro.datasets where name = %s", [name]).fetchone():
            conn.execute("select cerebro.drop_dataset(%s)", [name])
    conn.execute(f"drop view if exists {WARM_VIEW}")
    conn.execute(f"drop table if exists {COPY_TABLE}")
    conn.execute(f"drop table if exists {SOURCE}")


def make_source(conn: psycopg.Connection, rows: int) -> None:
    cols = ", ".join(f"random()::real as f{i}" for i in range(1, NUM_FEATURES + 1))
    conn.execute("select setseed(%s)", [DATA_SEED])
    conn.execute(
        f"create table {SOURCE} as select f.*, (f.f1 + f.f2 > 1)::int as label "
        f"from (select {cols} from generate_series(1, %s)) f",
        [rows],
    )
    conn.execute(f"vacuum analyze {SOURCE}")
    conn.execute(f"create view {WARM_VIEW} as select * from {SOURCE} limit 2000")


def dump_rows(conn: psycopg.Connection, source: str) -> list[bytes]:
    chunks = []
    with conn.cursor().copy(f"COPY (select * from {source}) TO STDOUT") as cp:
        for data in cp:
            chunks.append(bytes(data))
    # Re-chunk into ~1 MiB writes of whole lines, as a client streaming a file would.
    blob = b"".join(chunks)
    out, start = [], 0
    while start < len(blob):
        end = blob.find(b"\n", min(start + CHUNK, len(blob)) - 1)
        end = len(blob) if end < 0 else end + 1
        out.append(blob[start:end])
        start = end
    return out


def checkpoint(conn: psycopg.Connection) -> None:
    """Start each timed section from a clean slate (no pending dirty buffers)."""
    with contextlib.suppress(psycopg.Error):  # not allowed for this user: a bit noisier
        conn.execute("checkpoint")


def timed_copy(conn: psycopg.Connection, chunks: list[bytes]) -> float:
    conn.execute(f"drop table if exists {COPY_TABLE}")
    conn.execute(f"create table {COPY_TABLE} (like {SOURCE})")
    checkpoint(conn)
    t0 = time.perf_counter()
    with conn.cursor().copy(f"COPY {COPY_TABLE} FROM STDIN") as cp:
        for c in chunks:
            cp.write(c)
    wall = time.perf_counter() - t0
    conn.execute(f"drop table {COPY_TABLE}")
    return wall


def timed_load(conn: psycopg.Connection, name: str, source: str, partitions: int) -> float:
    features = [f"f{i}" for i in range(1, NUM_FEATURES + 1)]
    checkpoint(conn)
    t0 = time.perf_counter()
    conn.execute(
        "select cerebro.load_dataset(%s, %s, features => %s, label => 'label', "
        "num_partitions => %s, seed => %s)",
        [name, source, features, partitions, SEED],
    )
    wall = time.perf_counter() - t0
    conn.execute("select cerebro.drop_dataset(%s)", [name])
    return wall


def run(
    dsn: str, rows: int = 200_000, reps: int = REPS, partitions: int = 2, quiet: bool = False
) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    with psycopg.connect(dsn, autocommit=True) as conn:
        cleanup(conn)
        try:
            return _run(conn, say, rows, reps, partitions)
        finally:
            cleanup(conn)


def _run(conn: psycopg.Connection, say, rows: int, reps: int, partitions: int) -> dict:
    t0 = time.perf_counter()
    make_source(conn, rows)
    chunks = dump_rows(conn, SOURCE)
    nbytes = sum(len(c) for c in chunks)
    say(
        f"P6 setup: {rows} rows x {NUM_FEATURES} real columns + int label "
        f"({nbytes / 2**20:.1f} MiB of COPY text; {time.perf_counter() - t0:.1f} s), "
        f"load_dataset with num_partitions => {partitions}"
    )

    warm_copy = timed_copy(conn, chunks[:1])
    warm_load = timed_load(conn, WARM_DATASET, WARM_VIEW, 1)
    say(
        f"P6 warm-up: COPY of 1 chunk {warm_copy:.3f} s, load_dataset of 2000 rows "
        f"{warm_load:.3f} s"
    )

    copy_s, load_s = [], []
    backend = _common.backend_pid(conn)
    watch = _common.CpuWatch(
        [os.getpid(), *_common.server_aux_pids()] + ([backend] if backend else [])
    )
    for i in range(reps):
        copy_s.append(timed_copy(conn, chunks))
        load_s.append(timed_load(conn, DATASET, SOURCE, partitions))
        say(
            f"P6 run {i + 1}/{reps}: COPY {copy_s[-1]:.3f} s ({rows / copy_s[-1]:.0f} rows/s), "
            f"load_dataset {load_s[-1]:.3f} s ({rows / load_s[-1]:.0f} rows/s)"
        )

    interference = watch.report() if backend else None
    copy_rps = rows / _common.median(copy_s)
    load_rps = rows / _common.median(load_s)
    ratio = load_rps / copy_rps
    say(
        f"P6 load_dataset/COPY = {ratio:.2f} (load_dataset {load_rps:.0f} rows/s, COPY "
        f"{copy_rps:.0f} rows/s, median of {reps}; {rows} rows x {NUM_FEATURES} features)"
    )
    say(
        f"P6 best-of-{reps}: load_dataset {rows / min(load_s):.0f} rows/s, COPY "
        f"{rows / min(copy_s):.0f} rows/s, ratio {min(copy_s) / min(load_s):.2f}"
    )
    if interference:
        say(f"P6 {interference}")
    return {
        "id": "P6",
        "what": "load_dataset rows/s ÷ COPY FROM STDIN rows/s",
        "ratio": ratio,
        "target": TARGET,
        "load_rows_per_s": load_rps,
        "copy_rows_per_s": copy_rps,
        "rows": rows,
        "reps": reps,
        "copy_s": copy_s,
        "load_s": load_s,
        "interference": interference,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument("--partitions", type=int, default=2)
    args = ap.parse_args()
    run(_common.dsn(), args.rows, args.reps, args.partitions)


if __name__ == "__main__":
    main()
