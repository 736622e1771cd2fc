"""P10 (part): a state hop between two PostgreSQL servers, and a scale-out model.

Measured: two node servers on 127.0.0.1 (separate data directories and ports, scram
passwords), started the way ``cerebro up --nodes 2`` starts them; a state of S bytes (one
``bytea`` row) is moved node1 -> node2 with ``cerebro.transfer.stream_rows`` (binary COPY out,
binary COPY in, committed on node2), and, side by side, copied within node1 by one
``INSERT ... SELECT`` (what a hop costs when both partitions are on one server). Sizes: 100 MB
and 283 MB (ResNet50 + Adam). Median of 3 each.

Also the hop of a 1 kB state (median of 7): the fixed cost of a hop. And, unless
``--rounds 0``, the measured training of ``p10_training.py``: one grid trained by the
scheduler daemon with its two partitions on one server, on two and on three (the coordinator
and the same two node servers), with the per-unit overhead and throughput ratios.

``--simulate``: predicts MOP throughput for 1, 2, 8, 32 and 128 nodes from a sub-epoch's fit
time (``--fit-s``), the state size, the measured hop costs and a stated network bandwidth
(``--bandwidth-gbit``): every node trains one config at a time, each unit pays its fit plus
one incoming hop (the 1 kB hop's fixed cost plus the state at min(measured rate, network));
the coordinator's per-epoch checkpoint commit is one more hop per config and epoch. First it
checks the model against the measured training: two workers (one per partition) in every
setup, a unit's time and the idle time per unit on one server as measured, plus, across
servers, the model's hops of the measured state size; predicted units/s next to measured
(steady, after epoch 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import p10_training
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


def _drop(servers: list[NodeServer]) -> None:
    for s in servers:
        with psycopg.connect(s.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("drop table if exists {}").format(TABLE))


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


def latency(servers: list[NodeServer], reps: int = 7) -> float:
    """Median seconds of a hop node1 -> node2 of a 1 kB state: the per-hop fixed cost."""
    sizes = measure(servers, 1000, reps)
    return sizes["across_s"]


def per_unit_s(unit_s: float, hop_s: float, partitions: int) -> float:
    """The model's seconds per unit across servers: the unit on one server, one hop in, and
    the per-epoch hop of the state back to the coordinator spread over the epoch's units."""
    return unit_s + hop_s + hop_s / partitions


def hop_seconds(state_mb: float, hop_mb_s: float, gbit: float, lat_s: float) -> float:
    """One hop: the fixed cost plus the state at min(measured rate, network bandwidth)."""
    return lat_s + state_mb / min(hop_mb_s, gbit * 1000 / 8)


def simulate(
    fit_s: float, state_mb: float, hop_mb_s: float, gbit: float, partitions: int, lat_s: float
) -> None:
    """Print predicted throughput (units/s and speed-up) for 1..128 nodes, one config at a
    time on each node."""
    net_mb_s = gbit * 1000 / 8
    hop_s = hop_seconds(state_mb, hop_mb_s, gbit, lat_s)
    per_unit = per_unit_s(fit_s, hop_s, partitions)
    print(
        f"model: fit {fit_s:.2f} s/unit, state {state_mb:.0f} MB, hop {lat_s * 1e3:.1f} ms + "
        f"state at min({hop_mb_s:.0f} MB/s measured, {net_mb_s:.0f} MB/s network) = "
        f"{hop_s:.2f} s, {partitions} partitions"
    )
    print(f"{'nodes':>6} {'units/s':>9} {'speed-up':>9} {'efficiency':>10}")
    base = 1 / fit_s
    for n in (1, 2, 8, 32, 128):
        ups = (1 / fit_s) if n == 1 else n / per_unit  # one node: no hop between servers
        print(f"{n:>6} {ups:>9.3f} {ups / base:>9.1f} {ups / base / n:>10.0%}")


def check(trained: dict[str, dict[str, float]], hop_mb_s: float, lat_s: float) -> None:
    """The model against the measured runs: 2 workers (one per partition) in every setup;
    a unit takes the median unit time plus the idle time per unit measured on one server,
    plus, across servers, the model's hops of the measured state size (loopback: no network
    limit but the measured rate)."""
    one = trained["1 server"]
    base = one["unit_s"] + one["idle_s"]
    print(
        f"check: {one['unit_s'] * 1e3:.0f} ms per unit + {one['idle_s'] * 1e3:.0f} ms idle on "
        f"one server, hop {lat_s * 1e3:.1f} ms + bytes at {hop_mb_s:.0f} MB/s"
    )
    print(f"{'setup':<10} {'predicted/s':>11} {'measured/s':>10} {'measured/predicted':>18}")
    for name, r in trained.items():
        hop_s = hop_seconds(r["hop_in_bytes"] / MB, hop_mb_s, float("inf"), lat_s)
        predicted = 2 / (base if name == "1 server" else per_unit_s(base, hop_s, 2))
        print(
            f"{name:<10} {predicted:>11.2f} {r['steady']:>10.2f} {r['steady'] / predicted:>18.2f}"
        )


def run(epochs: int, rounds: int) -> tuple[dict, float, dict]:
    """The training setups (unless rounds is 0), then the hops, on fresh node servers;
    drops the coordinator database afterwards."""
    server = _common.dsn()
    coordinator = _common.fresh_database(server, "cerebro_bench_p10")
    try:
        with local_nodes(coordinator, 2) as (_, servers):
            trained = p10_training.run(coordinator, epochs, rounds) if rounds else {}
            _prepare(servers)
            try:
                hops = {name: measure(servers, size) for name, size in SIZES.items()}
                lat = latency(servers)
            finally:
                _drop(servers)
    finally:
        name = str(psycopg.conninfo.conninfo_to_dict(coordinator)["dbname"])
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
    return hops, lat, trained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true", help="also print the scale-out model")
    ap.add_argument("--fit-s", type=float, default=30.0, help="seconds of one sub-epoch's fit")
    ap.add_argument("--bandwidth-gbit", type=float, default=10.0, help="network, Gbit/s")
    ap.add_argument("--partitions", type=int, default=8, help="partitions per epoch (model)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the measured training")
    ap.add_argument(
        "--rounds", type=int, default=5, help="rounds of the measured training (0: none)"
    )
    args = ap.parse_args()
    load = os.getloadavg()[0]
    hops, lat, trained = run(args.epochs, args.rounds)
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {load:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (other work disturbs these timings)"
    )
    for name, r in hops.items():
        mb = r["bytes"] / MB
        print(
            f"P10 hop {name}: across servers {r['across_s']:.2f} s ({mb / r['across_s']:.0f} "
            f"MB/s), within one {r['within_s']:.2f} s ({mb / r['within_s']:.0f} MB/s), "
            f"ratio {r['across_s'] / r['within_s']:.2f}"
        )
    print(f"P10 hop of a 1 kB state across servers: {lat * 1e3:.1f} ms (the fixed cost)")
    big = hops["ResNet50 + Adam (283 MB)"]
    rate = big["bytes"] / MB / big["across_s"]
    if trained:
        p10_training.report(trained)
    if args.simulate:
        if trained:
            check(trained, rate, lat)
        simulate(args.fit_s, big["bytes"] / MB, rate, args.bandwidth_gbit, args.partitions, lat)


if __name__ == "__main__":
    main()
