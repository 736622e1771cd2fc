"""The optional client extra ``gp``: the leaderboard and learning curves as greenplum-python
DataFrames, read by a ``cerebro_reader`` login from a finished workload.

greenplum-python pins psycopg2-binary and dill 0.3.6, so it is never installed into the
project's environment: a session fixture builds a scratch venv with it and psycopg 3 side by
side (about 5 s with PyPI reachable; CEREBRO_GP_PYTHON names an existing interpreter instead)
and the client runs there as a subprocess. Without a package index the test is skipped with
pip's own words, never passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from helpers import DB_SUFFIX, launch, make_db, run_to_end

pytestmark = pytest.mark.slow  # trains a workload through the scheduler, builds a venv

SPACE = {"hidden": {"choice": [[8]]}, "learning_rate": {"choice": [0.01, 0.003]}}
REQUIREMENTS = ("greenplum-python>=1.1,<2", "psycopg[binary]>=3.2,<3.4")

# What a person would write (README, "greenplum-python"), plus psycopg 3 in the same process
CLIENT = """
import json, sys
import greenplumpython as gp
import psycopg, psycopg2
from greenplumpython.builtins.functions import min as gp_min

uri, workload = sys.argv[1], sys.argv[2]
db = gp.database(uri=uri)
board = (db.create_dataframe(table_name="leaderboard", schema="cerebro")
         .where(lambda t: t["workload"] == workload)
         .order_by("rank").order_by("config_id")[:])
curves = (db.create_dataframe(table_name="bi_curves", schema="cerebro")
          .where(lambda t: (t["workload"] == workload) & (t["metric"] == "valid_loss")))
best = curves.group_by("config_id").apply(lambda t: gp_min(t["value"]), column_name="best")
points = curves[["config_id", "epoch", "value"]].order_by("config_id").order_by("epoch")[:]
with psycopg.connect(uri) as c:  # psycopg 3 in the same interpreter
    n = c.execute("select count(*) from cerebro.bi_curves where workload = %s",
                  [workload]).fetchone()[0]
print(json.dumps({
    "leaderboard": [[r["config_id"], r["rank"], r["status"], r["best_objective"]]
                    for r in board],
    "best": sorted([r["config_id"], r["best"]] for r in best),
    "points": [[r["config_id"], r["epoch"], r["value"]] for r in points],
    "curve_rows": n,
    "drivers": [psycopg.__version__, psycopg2.__version__.split()[0]],
}))
"""


@pytest.fixture(scope="session")
def gp_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with greenplum-python and psycopg 3 installed together."""
    given = os.environ.get("CEREBRO_GP_PYTHON")
    if given:
        return given
    venv = tmp_path_factory.mktemp("gpvenv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if pip.returncode != 0:
        lines = [x for x in pip.stderr.splitlines() if "is ignored" not in x]
        pytest.skip("greenplum-python did not install: " + "\n".join(lines[-5:]))
    return python


@pytest.fixture(scope="module")
def world(server_dsn: str) -> Iterator[dict[str, Any]]:
    """A finished 2-config workload and a reader login; dropped afterwards."""
    role = f"gp{DB_SUFFIX}_{uuid.uuid4().hex[:6]}".lower()
    dsn = make_db(server_dsn, "cerebro_test_gp")
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
            c.execute(sql.SQL("grant cerebro_reader to {}").format(sql.Identifier(role)))
        launch(dsn, "gp1", SPACE, epochs=2)
        run_to_end(dsn)
        yield {"dsn": psycopg.conninfo.make_conninfo(dsn, user=role)}
    finally:  # the database stays, like every test's (the next run recreates it)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def test_leaderboard_and_curves_as_greenplum_python_dataframes(gp_python, world, tmp_path: Path):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    run = subprocess.run(
        [gp_python, str(script), world["dsn"], "gp1"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    with psycopg.connect(world["dsn"], autocommit=True) as c:
        board = c.execute(
            "select config_id, rank, status, best_objective from cerebro.leaderboard "
            "where workload = 'gp1' order by rank, config_id"
        ).fetchall()
        points = c.execute(
            "select config_id, epoch, value from cerebro.bi_curves "
            "where workload = 'gp1' and metric = 'valid_loss' order by config_id, epoch"
        ).fetchall()
        n = c.execute("select count(*) from cerebro.bi_curves where workload = 'gp1'").fetchone()
    assert len(board) == 2 and len(points) == 2 * 2
    assert [tuple(r) for r in got["leaderboard"]] == board
    assert [tuple(r) for r in got["points"]] == points
    best: dict[int, float] = {}
    for cid, _, value in points:
        best[cid] = min(best.get(cid, value), value)
    assert [tuple(r) for r in got["best"]] == sorted(best.items())
    assert got["curve_rows"] == n[0] > len(points)
    assert got["drivers"][0].startswith("3.") and got["drivers"][1].startswith("2.")
