"""P11: data larger than memory: sub-epochs reading their partition from cerebro.buffers.

A dataset of R rows x F float32 features (~250 MB of packed buffers) in 2 partitions; one
small MLP config (hidden [16], batch 4096, so reading dominates), E epochs, no validation,
trained by the real scheduler daemon (``cerebro scheduler --once``) twice per round, side by
side: once with the server's partition cache (default 2048 MB: from its second epoch every
sub-epoch finds its decoded partition in the worker backend's GD), once with
``CEREBRO_PARTITION_CACHE_MB=0`` in the daemon's environment (passed in every unit's config as
``partition_cache_mb``: no partition is ever kept, every sub-epoch decodes its buffers from
the rows of the statement). Timed per unit from ``cerebro.units``: ended_at - started_at (the
whole unit: scan, collect, decode, fit, state hop, commit) and the aggregate's ``model.fit``
seconds; epoch 1 (TensorFlow import, model build, trace, cache fill) is left out. Both cases
scan the same rows: the training statement passes every buffer's x and y to the aggregate
whatever the cache holds, so the cache saves the decode, not the read.

Baselines for the reading rate, on the same rows, from a client connection: a sequential scan
that detoasts every value (``sum(get_byte(x, 0))`` - ``octet_length`` alone reads only the
TOAST pointer) and a binary ``COPY (select x, y ...) TO STDOUT`` read by the client.
The ratio returned (reported, 0.5 a placeholder target) is the out-of-core sub-epoch's buffer
MB/s outside fit (buffer bytes ÷ (unit time - fit time)) ÷ the detoasting scan's MB/s; the
cost, out-of-core ÷ in-memory sub-epoch time, is printed and returned as ``cost``. Then a
breakdown in one backend: scan, + the aggregate's collect(), + the decode.

    .venv/bin/python bench/p11_out_of_core.py [--rows 240000] [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl
from _common import scheduler_dsn

DB = "cerebro_bench_p11"
FEATURES = 256
BASE_ROWS = 30_000  # generated with random(); the rest are copies (reading does not care)
PARAMS = {"hidden": [16], "batch_size": 4096}
SPACE = {"learning_rate": {"choice": [0.001]}}  # one config
TARGET = 0.5  # reported: the sub-epoch reads at least at half a sequential scan's rate
ENV = "CEREBRO_PARTITION_CACHE_MB"


def make_data(dsn: str, rows: int) -> int:
    """``src``: ``rows`` rows of a 256-float array + a label, packed as 'big' (2 partitions)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.11)")
        c.execute(
            "create table base as select i as id, array(select random()::real "
            "from generate_series(1, %s) where i > 0) as f from generate_series(1, %s) i",
            [FEATURES, BASE_ROWS],
        )
        c.execute(
            "create table src as select (k * %s + id) as id, f, (f[1] + f[2] * f[3] > 0.75)::int "
            "as lbl from base, generate_series(0, %s) k",
            [BASE_ROWS, -(-rows // BASE_ROWS) - 1],
        )
        c.execute("delete from src where id > %s", [rows])
        c.execute(
            "select cerebro.load_dataset('big', 'src', array['f'], 'lbl', num_partitions => 2, "
            "seed => 1)"
        )
        c.execute("drop table base, src")
        c.execute("vacuum analyze cerebro.buffers")
        return c.execute("select dataset_id from cerebro.datasets where name = 'big'").fetchone()[
            0
        ]


def partition_bytes(dsn: str, ds: int) -> dict[int, tuple[int, int, int]]:
    """partition -> (rows, buffers, bytes of x and y)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select __dist_key__, sum(num_rows), count(*), sum(octet_length(x) + "
            "octet_length(y)) from cerebro.buffers where dataset_id = %s group by 1 order by 1",
            [ds],
        ).fetchall()
    return {int(p): (int(r), int(b), int(n)) for p, r, b, n in rows}


def scan_seconds(dsn: str, ds: int, part: int) -> tuple[float, float]:
    """(detoasting sequential scan s, binary COPY out to this client s) of one partition."""
    where = f"where dataset_id = {int(ds)} and __dist_key__ = {int(part)}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("set max_parallel_workers_per_gather = 0")
        t0 = time.perf_counter()
        c.execute(f"select sum(get_byte(x, 0)) + sum(get_byte(y, 0)) from cerebro.buffers {where}")
        scan = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = 0
        with c.cursor().copy(
            f"copy (select x, y from cerebro.buffers {where}) to stdout (format binary)"
        ) as cp:
            for chunk in cp:
                n += len(chunk)
        return scan, time.perf_counter() - t0


BREAKDOWN_FINAL = """
create function pg_temp.p11_final(token bigint, cfg jsonb) returns float8
language plpython3u as $$
import json, time
from cerebro_udfs import training
buffers = training._take(GD, token)
t0 = time.perf_counter()
if cfg is not None:
    c = json.loads(cfg)
    c.pop("cache_key", None)
    x, y = training._partition_arrays(GD, buffers, c)
return time.perf_counter() - t0
$$"""
BREAKDOWN_AGG = (
    "create aggregate pg_temp.p11_collect(cfg jsonb order by buffer_id int, x bytea, y bytea, "
    "num_rows int) (sfunc = cerebro._collect, stype = bigint, finalfunc = pg_temp.p11_final)"
)


def breakdown(dsn: str, ds: int, reps: int = 3) -> dict[str, float]:
    """Where an out-of-core sub-epoch's reading goes, in one backend, partition 0 (medians):
    the detoasting scan; the same rows through the training aggregate's transition function
    (``collect``: each value converted to a Python ``bytes``) with a final function that
    drops them; and with one that decodes them (``_partition_arrays``, no cache key)."""
    where = f"from cerebro.buffers where dataset_id = {int(ds)} and __dist_key__ = 0"
    within = "within group (order by buffer_id, x, y, num_rows)"
    t: dict[str, list[float]] = {"scan": [], "collect": [], "decode": [], "total": []}
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("set max_parallel_workers_per_gather = 0")
        c.execute(BREAKDOWN_FINAL)
        c.execute(BREAKDOWN_AGG)
        cfg = c.execute("select cerebro.subepoch_config('mlp', 'big', '{}', 0, 0)").fetchone()[0]
        for _ in range(reps):
            t0 = time.perf_counter()
            c.execute(f"select sum(get_byte(x, 0)) + sum(get_byte(y, 0)) {where}")
            t["scan"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            c.execute(f"select pg_temp.p11_collect(null) {within} {where}")
            t["collect"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dec = c.execute(
                f"select pg_temp.p11_collect(%s) {within} {where}", [json.dumps(cfg)]
            ).fetchone()[0]
            t["total"].append(time.perf_counter() - t0)
            t["decode"].append(dec)
    return {k: statistics.median(v) for k, v in t.items()}


def train(dsn: str, name: str, epochs: int, cache_mb: int | None) -> tuple[int, list[tuple]]:
    """One config trained by a ``--once`` daemon: its id and its units (epoch, partition,
    wall s, fit s, loss)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        wid = c.execute(
            "select cerebro.launch(%s, 'mlp', 'big', null, 'grid', %s, max_epochs => %s, "
            "objective => 'train_loss', seed => 7, params => %s)",
            [name, json.dumps(SPACE), epochs, json.dumps(PARAMS)],
        ).fetchone()[0]
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if cache_mb is not None:
        env[ENV] = str(cache_mb)
    p = subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", scheduler_dsn(dsn), "--once"],
        cwd=wl.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=wl.WAIT,
    )
    if p.returncode != 0:
        raise RuntimeError(f"scheduler --once failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    with psycopg.connect(dsn, autocommit=True) as c:
        units = c.execute(
            "select u.epoch, u.partition, extract(epoch from u.ended_at - u.started_at), "
            "(u.result->>'seconds')::float8, (u.result->>'loss')::float8 from cerebro.units u "
            "join cerebro.configs c using (config_id) where c.workload_id = %s and "
            "u.outcome = 'ok' order by u.started_at",
            [wid],
        ).fetchall()
        cid, status = c.execute(
            "select config_id, status from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()
    if status != "completed" or len(units) != 2 * epochs:
        raise RuntimeError(f"workload {name}: {status}, {len(units)} units")
    return cid, [(int(e), int(p), float(w), float(f), float(x)) for e, p, w, f, x in units]


def measure(dsn: str, ds: int, epochs: int, rounds: int) -> dict:
    """Both sides alternating (the order flips every round), the scans between them."""
    units: dict[str, list[tuple]] = {"memory": [], "disk": []}
    # config id -> its losses in visit order (a config's partition order depends on its id)
    losses: dict[str, dict[int, list[float]]] = {"memory": {}, "disk": {}}
    scans: list[tuple[int, float, float]] = []
    loads = []
    for r in range(rounds):
        sides = ("memory", "disk") if r % 2 == 0 else ("disk", "memory")
        for side in sides:
            cid, got = train(dsn, f"{side}{r}", epochs, None if side == "memory" else 0)
            units[side] += [u for u in got if u[0] >= 2]
            losses[side][cid] = [u[4] for u in got]
            for part in (0, 1):
                scans.append((part, *scan_seconds(dsn, ds, part)))
            loads.append(os.getloadavg()[0])
    return {"units": units, "losses": losses, "scans": scans, "load": max(loads)}


def _same_losses(losses: dict[str, dict[int, list[float]]]) -> tuple[bool, int]:
    """Whether every in-memory config lost what its out-of-core twin lost (configs whose ids
    have the same parity visit the 2 partitions in the same order), and how many pairs."""
    pairs = [
        (a, b)
        for ca, a in losses["memory"].items()
        for cb, b in losses["disk"].items()
        if ca % 2 == cb % 2
    ]
    return bool(pairs) and all(a == b for a, b in pairs), len(pairs)


def summarize(m: dict, parts: dict[int, tuple[int, int, int]]) -> dict:
    med = statistics.median
    mb = {p: v[2] / 1e6 for p, v in parts.items()}
    side = {}
    for name, us in m["units"].items():
        side[name] = {
            "wall": med(u[2] for u in us),
            "fit": med(u[3] for u in us),
            "rest": med(u[2] - u[3] for u in us),
            "mb_per_s": med(mb[u[1]] / (u[2] - u[3]) for u in us),
            "units": len(us),
        }
    mem, disk = side["memory"], side["disk"]
    scan = med(mb[p] / s for p, s, _ in m["scans"])
    same, pairs = _same_losses(m["losses"])
    load = (
        f"1-minute load average up to {m['load']:.1f} on {os.cpu_count()} CPUs (this benchmark "
        "alone keeps about 1 busy: one unit at a time)"
    )
    return {
        "id": "P11",
        "what": "data larger than the partition cache: out-of-core sub-epoch's buffer MB/s "
        "outside fit ÷ a detoasting sequential scan's (reported)",
        "ratio": disk["mb_per_s"] / scan,
        "target": TARGET,
        "cost": disk["wall"] / mem["wall"],
        "extra_s": disk["rest"] - mem["rest"],
        "rows": sum(v[0] for v in parts.values()),
        "buffers": sum(v[1] for v in parts.values()),
        "buffer_mb": sum(mb.values()),
        "part0_mb": mb[0],
        "memory": mem,
        "disk": disk,
        "scan_mb_per_s": scan,
        "copy_mb_per_s": med(mb[p] / c for p, _, c in m["scans"]),
        "same_losses": same,
        "pairs": pairs,
        "breakdown": m["breakdown"],
        "load": load,
        "interference": f"{load}: the figures are disturbed" if m["load"] > 1.5 else None,
    }


def report(r: dict) -> None:
    mem, disk, b = r["memory"], r["disk"], r["breakdown"]
    print(
        f"P11 data: {r['rows']:,} rows x {FEATURES} features, 2 partitions, "
        f"{r['buffer_mb']:.0f} MB of buffers ({r['buffers']} buffers); mlp {PARAMS}"
    )
    print(f"{'case':<26}{'units':>6}{'sub-epoch s':>13}{'fit s':>8}{'rest s':>8}{'rest MB/s':>11}")
    for s, label in ((mem, "in-memory (GD cache)"), (disk, "out-of-core (cache 0 MB)")):
        print(
            f"{label:<26}{s['units']:>6}{s['wall']:>13.3f}{s['fit']:>8.3f}"
            f"{s['rest']:>8.3f}{s['mb_per_s']:>11.0f}"
        )
    print(
        f"P11 cost: out-of-core ÷ in-memory sub-epoch time = {r['cost']:.2f} (medians; fit "
        f"varies with load); outside fit {r['extra_s'] * 1000:+.0f} ms a sub-epoch of "
        f"{r['buffer_mb'] / 2:.0f} MB ({r['extra_s'] / mem['wall'] * 100:+.0f}% of the "
        "in-memory one)"
    )
    print(
        f"P11 reading: out-of-core sub-epoch {disk['mb_per_s']:.0f} MB/s outside fit; "
        f"detoasting seq scan {r['scan_mb_per_s']:.0f} MB/s (ratio {r['ratio']:.2f}); "
        f"binary COPY out to a client {r['copy_mb_per_s']:.0f} MB/s "
        f"(ratio {disk['mb_per_s'] / r['copy_mb_per_s']:.2f})"
    )
    print(
        f"P11 where reading partition 0 ({r['part0_mb']:.0f} MB) goes, one backend: detoasting "
        f"scan {b['scan']:.3f} s; + into the aggregate's collect() as Python bytes "
        f"{b['collect']:.3f} s; + decode (_partition_arrays) {b['total']:.3f} s "
        f"(the decode itself {b['decode']:.3f} s)"
    )
    print(f"P11 {r['interference'] or r['load']}")
    print(
        f"P11 losses identical in both cases (same seed and order, {r['pairs']} pairs): "
        f"{r['same_losses']}"
    )


def run(server: str | None = None, rows: int = 240_000, epochs: int = 3, rounds: int = 3) -> dict:
    server = server or wl.server_dsn()
    dsn = wl.fresh_db(server, DB)
    try:
        ds = make_data(dsn, rows)
        parts = partition_bytes(dsn, ds)
        m = measure(dsn, ds, epochs, rounds)
        m["breakdown"] = breakdown(dsn, ds)
    finally:
        wl.drop_db(server, DB)
    r = summarize(m, parts)
    report(r)
    return r


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=240_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    t0 = time.perf_counter()
    run(rows=a.rows, epochs=a.epochs, rounds=a.rounds)
    print(f"P11 took {time.perf_counter() - t0:.0f} s")
