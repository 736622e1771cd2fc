"""P10 (part): a state hop between two PostgreSQL servers, and a scale-out model.

Measured: two node servers on 127.0.0.1 (separate data directories and ports, scram
passwords), started the way ``cerebro up --nodes 2`` starts them; a state of S bytes (one
``bytea`` row) is moved node1 -> node2 with ``cerebro.transfer.stream_rows`` (binary COPY out,
binary COPY in, committed on node2), and, side by side, copied within node1 by one
``INSERT ... SELECT`` (what a hop costs when both partitions are on one server). Sizes: 100 MB
and 283 MB (ResNet50 + Adam). Median of 3 each.

``--simulate``: predicts MOP throughput for 1, 2, 8, 32 and 128 nodes from a sub-epoch's fit
time (``--fit-s``), the state size, the measured hop rate and a stated network bandwidth
(``--bandwidth-gbit``): every node trains one config at a time, each unit pays its fit plus
one incoming hop at min(measured rate, network); the coordinator's per-epoch checkpoint
commit is one more hop per config and epoch. Not yet checked against 1- and 2-node training
measurements: the scheduler does not run units on remote nodes yet (issue 14 is open).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from cerebro.nodes import NODE_LOGIN, NodeServer
from cerebro.transfer import stream_rows
from helpers import local_nodes

MB = 1_000_000
SIZES = {"100 MB": 100 * MB, "ResNet50 + Adam (283 MB)": 283 * MB}
TABLE = sql.Identifier("p10_states")


def _prepare(servers: list[NodeServer]) -> None:
    for s in servers:
        with psycopg.connect(s.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("drop table if exists {}").format(TABLE))
            c.execute(sql.SQL("create unlogged table {} (id int, state bytea)").format(TABLE))
            c.execute(sql.SQL("grant all on {} to {}").format(TABLE, sql.Identifier(NODE_LOGIN)))


def _hop_once(src: psycopg.Connection, dst: psycopg.Connection, rep: int) -> float:
    query = sql.SQL("select {}, state from {} where id = 0").format(sql.Literal(rep + 1), TABLE)
    t0 = time.perf_counter()
    stream_rows(src, query, dst, "p10_states", ["id", "state"])
    dst.commit()
    return time.perf_counter() - t0


def _local_once(src: psycopg.Connection, rep: int) -> float:
    t0 = time.perf_counter()
    src.execute(
        sql.SQL("insert into {} select {}, state from {} where id = 0").format(
            TABLE, sql.Literal(100 + rep), TABLE
        )
    )
    return time.perf_counter() - t0


def measure(servers: list[NodeServer], size: int, reps: int = 3) -> dict[str, float]:
    """Median seconds of a hop node1 -> node2 and of a copy within node1, for one size."""
    blob = np.random.default_rng(size).bytes(size)
    with (
        psycopg.connect(servers[0].tcp_conninfo(), autocommit=True) as src,
        psycopg.connect(servers[1].tcp_conninfo()) as dst,
    ):
        for c in (src, dst):
            c.execute(sql.SQL("truncate {}").format(TABLE))
        dst.commit()
        with src.cursor().copy(sql.SQL("copy {} (id, state) from stdin").format(TABLE)) as cp:
            cp.write_row([0, blob])
        across = statistics.median(_hop_once(src, dst, r) for r in range(reps))
        within = statistics.median(_local_once(src, r) for r in range(reps))
    return {"bytes": size, "across_s": across, "within_s": within}


def simulate(fit_s: float, state_mb: float, hop_mb_s: float, gbit: float, partitions: int) -> None:
    """Print predicted throughput (units/s and speed-up) for 1..128 nodes."""
    net_mb_s = gbit * 1000 / 8
    rate = min(hop_mb_s, net_mb_s)
    hop_s = state_mb / rate
    per_unit = fit_s + hop_s + hop_s / partitions  # + the per-epoch checkpoint to the coordinator
    print(
        f"model: fit {fit_s:.2f} s/unit, state {state_mb:.0f} MB, hop at "
        f"min({hop_mb_s:.0f} MB/s measured, {net_mb_s:.0f} MB/s network) = {hop_s:.2f} s"
    )
    print(f"{'nodes':>6} {'units/s':>9} {'speed-up':>9} {'efficiency':>10}")
    base = 1 / fit_s
    for n in (1, 2, 8, 32, 128):
        ups = (1 / fit_s) if n == 1 else n / per_unit  # one node: no hop between servers
        print(f"{n:>6} {ups:>9.3f} {ups / base:>9.1f} {ups / base / n:>10.0%}")


def run() -> dict[str, dict[str, float]]:
    coordinator = _common.fresh_database(_common.dsn(), "cerebro_bench_p10")
    with local_nodes(coordinator, 2) as (_, servers):
        _prepare(servers)
        return {name: measure(servers, size) for name, size in SIZES.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true", help="also print the scale-out model")
    ap.add_argument("--fit-s", type=float, default=30.0, help="seconds of one sub-epoch's fit")
    ap.add_argument("--bandwidth-gbit", type=float, default=10.0, help="network, Gbit/s")
    ap.add_argument("--partitions", type=int, default=8, help="partitions per epoch (model)")
    args = ap.parse_args()
    results = run()
    for name, r in results.items():
        mb = r["bytes"] / MB
        print(
            f"P10 hop {name}: across servers {r['across_s']:.2f} s ({mb / r['across_s']:.0f} "
            f"MB/s), within one {r['within_s']:.2f} s ({mb / r['within_s']:.0f} MB/s), "
            f"ratio {r['across_s'] / r['within_s']:.2f}"
        )
    if args.simulate:
        r = results["ResNet50 + Adam (283 MB)"]
        simulate(
            args.fit_s,
            r["bytes"] / MB,
            r["bytes"] / MB / r["across_s"],
            args.bandwidth_gbit,
            args.partitions,
        )


if __name__ == "__main__":
    main()
