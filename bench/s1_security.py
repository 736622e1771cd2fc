"""S1: what row-level security and the steering whitelist cost a plain user.

Two users, alice and bob, each own a workload of N configs with E epochs of metrics (written
directly, no training). The same statements run as alice (a ``cerebro_user``: row-level
security, the views' visibility filter, the INVOKER steering trigger with its whitelist) and
as the superuser (who bypasses row-level security), alternately, R times each; medians are
compared. The baseline is the superuser running the very same statement in the same run.

    .venv/bin/python bench/s1_security.py [--configs 200] [--epochs 10] [--reps 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _workload

DB = "cerebro_bench_s1"
TARGET = 1.5  # leaderboard as alice ÷ as superuser (lower is better)
STATEMENTS = {
    "leaderboard": "select * from cerebro.leaderboard where workload = 'w_alice'",
    "learning_curves": "select count(*) from cerebro.learning_curves where workload = 'w_alice'",
    "configs": "select count(*) from cerebro.configs",
    "steer": "update cerebro.configs set priority = (priority + 1) % 7 where config_id = {cid}",
}


def _setup(server: str, configs: int, epochs: int) -> tuple[str, int]:
    dsn = _common.fresh_database(server, DB)
    with psycopg.connect(dsn, autocommit=True) as c:
        for user in ("alice", "bob"):
            c.execute(
                "do $$ begin if not exists (select 1 from pg_roles where rolname = "
                f"'{user}') then create role {user} login; end if; end $$"
            )
            c.execute(sql.SQL("grant cerebro_user to {}").format(sql.Identifier(user)))
            c.execute(sql.SQL("create schema {0} authorization {0}").format(sql.Identifier(user)))
            c.execute(
                sql.SQL(
                    "create table {0}.t as select i as id, (i % 7)::float8 as a, (i % 2) as y "
                    "from generate_series(1, 200) i; alter table {0}.t owner to {0}"
                ).format(sql.Identifier(user))
            )
    for user in ("alice", "bob"):
        with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=user), autocommit=True) as c:
            c.execute(
                f"select cerebro.load_dataset('d_{user}', '{user}.t', array['a'], 'y', "
                "num_partitions => 2)"
            )
            c.execute(
                f"select cerebro.launch('w_{user}', 'mlp', 'd_{user}', search => 'random', "
                """space => '{"learning_rate": {"loguniform": [0.0001, 0.1]}}', """
                f"num_configs => {configs}, max_epochs => {epochs}, objective => 'train_loss')"
            )
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "insert into cerebro.metrics (config_id, epoch, train_loss) select c.config_id, e, "
            "1.0 / (e + c.config_id) from cerebro.configs c, generate_series(1, %s) e",
            [epochs],
        )
        c.execute("analyze")
        row = c.execute(
            "select min(config_id) from cerebro.configs c join cerebro.workloads w "
            "using (workload_id) where w.name = 'w_alice'"
        ).fetchone()
        assert row is not None
    return dsn, row[0]


def _time(conn: psycopg.Connection, statement: str) -> float:
    t = time.perf_counter()
    cur = conn.execute(statement)
    if cur.description:
        cur.fetchall()
    return time.perf_counter() - t


def run(server: str, configs: int = 200, epochs: int = 10, reps: int = 9) -> dict:
    dsn, cid = _setup(server, configs, epochs)
    times: dict[str, dict[str, list[float]]] = {k: {"alice": [], "super": []} for k in STATEMENTS}
    with (
        psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user="alice"), autocommit=True) as a,
        psycopg.connect(dsn, autocommit=True) as s,
    ):
        for name, statement in STATEMENTS.items():
            q = statement.format(cid=cid)
            _time(a, q), _time(s, q)  # warm both backends
            for _ in range(reps):
                times[name]["alice"].append(_time(a, q))
                times[name]["super"].append(_time(s, q))
    med = {
        k: (statistics.median(v["alice"]), statistics.median(v["super"])) for k, v in times.items()
    }
    for name, (al, su) in med.items():
        print(
            f"{name:16s} alice {al * 1e3:8.2f} ms  superuser {su * 1e3:8.2f} ms  "
            f"ratio {al / su:5.2f}"
        )
    return {
        "id": "S1",
        "what": "leaderboard as a plain user (row-level security) ÷ as superuser",
        "ratio": med["leaderboard"][0] / med["leaderboard"][1],
        "target": TARGET,
        "lower_is_better": True,
        "medians_ms": {k: [v[0] * 1e3, v[1] * 1e3] for k, v in med.items()},
        "configs": configs * 2,
        "epochs": epochs,
        "reps": reps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--configs", type=int, default=200)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--reps", type=int, default=9)
    a = p.parse_args()
    r = run(_workload.server_dsn(), a.configs, a.epochs, a.reps)
    print(f"S1 = {r['ratio']:.2f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
