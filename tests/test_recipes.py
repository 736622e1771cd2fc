"""The psql recipes in sql/examples/ do what their comments say."""

import json
import subprocess

import psycopg
import pytest

from helpers import ROOT, make_db, run_to_end

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon

SPACE = {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.03, 0.003]}}


def recipe(dsn: str, name: str, **variables) -> str:
    args = ["psql", dsn, "-X", "-v", "ON_ERROR_STOP=1", "-A", "-t"]
    for k, v in variables.items():
        args += ["-v", f"{k}={v}"]
    proc = subprocess.run(
        [*args, "-f", str(ROOT / "sql" / "examples" / name)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_recipes(server_dsn):
    dsn = make_db(server_dsn, "cerebro_test_recipes")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.launch('rc', 'mlp', 'tr', 'va', 'grid', %s, max_epochs => 2, "
            "seed => 4, params => '{\"batch_size\": 32}')",
            [json.dumps(SPACE)],
        )
        # one epoch for everybody first, so that there is something to rank
        c.execute("update cerebro.configs set max_epochs = 1")
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update cerebro.configs set max_epochs = 2")  # all active again
        ranked = [
            r[0]
            for r in c.execute(
                "select config_id from cerebro.leaderboard where workload = 'rc' order by rank"
            )
        ]
    out = recipe(dsn, "stop_worst_k.sql", workload="rc", k=2)
    stopped = sorted(int(line.split("|")[0]) for line in out.split() if "|" in line)
    assert stopped == sorted(ranked[-2:])

    out = recipe(dsn, "clone_best_lower_lr.sql", workload="rc", extra=1)
    clone_id = int(out.split()[0])
    with psycopg.connect(dsn, autocommit=True) as c:
        (best_lr,) = c.execute(
            "select params->>'learning_rate' from cerebro.configs where config_id = %s",
            [ranked[0]],
        ).fetchone()
        row = c.execute(
            "select parent_config, epoch, max_epochs, params->>'learning_rate' "
            "from cerebro.configs where config_id = %s",
            [clone_id],
        ).fetchone()
    assert row[:3] == (ranked[0], 1, 2)
    assert float(row[3]) == float(best_lr) / 10

    out = recipe(dsn, "drill_down_around_best.sql", workload="rc", n=3)
    child = int(out.split()[0])
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        lrs = [
            r[0]
            for r in c.execute(
                "select (params->>'learning_rate')::float8 from "
                "cerebro.configs where workload_id = %s",
                [child],
            )
        ]
        status = dict(c.execute("select config_id, status from cerebro.configs").fetchall())
    assert len(lrs) == 3 and all(float(best_lr) / 3 <= lr <= float(best_lr) * 3 for lr in lrs)
    assert [status[s] for s in stopped] == ["stopped", "stopped"]
    assert status[clone_id] == "completed"
    assert all(v == "completed" for k, v in status.items() if k not in stopped)


def test_criteo_custom_model_example_learns_the_categorical_signal(server_dsn):
    """sql/examples/criteo_custom_mlp.sql: 13 numeric + 26 hashed categorical columns, a custom
    model with hashed embeddings; every config completes and the best beats the base rate."""
    from conftest import fresh_database

    dsn = fresh_database(server_dsn, "cerebro_test_criteo")
    recipe(dsn, "criteo_custom_mlp.sql", rows=4000)
    with psycopg.connect(dsn, autocommit=True) as c:
        cols = [
            r[0]
            for r in c.execute(
                "select attname from pg_attribute where attrelid = 'criteo_sample'::regclass "
                "and attnum > 0 order by attnum"
            )
        ]
        assert cols == ["id", "clicked"] + [f"i{k}" for k in range(1, 14)] + [
            f"c{k}" for k in range(1, 27)
        ]
        assert c.execute(
            "select feature_shape from cerebro.datasets where name = 'criteo_train'"
        ).fetchone()[0] == [39]
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        status = [r[0] for r in c.execute("select status from cerebro.configs")]
        assert status == ["completed"] * 4
        base = c.execute(
            "select greatest(avg(clicked), 1 - avg(clicked)) from criteo_valid"
        ).fetchone()[0]
        best = c.execute(
            "select max((valid_metrics->>'accuracy')::float8) from cerebro.metrics"
        ).fetchone()[0]
        assert best > float(base) + 0.1, (best, base)
