"""The README's psql walkthrough runs as written (then the scheduler trains what it launched)."""

import re
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent


def walkthrough_sql() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Walkthrough in psql"):text.index("## Reference")]
    return "\n".join(re.findall(r"```sql\n(.*?)```", section, re.S))


def test_readme_walkthrough(server_dsn, tmp_path):
    db = "cerebro_test_readme"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(db)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=db)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create extension cerebro cascade")
        c.execute("select setseed(0.5)")
    script = tmp_path / "walkthrough.sql"
    script.write_text(walkthrough_sql())
    proc = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", str(script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sched = subprocess.run([sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", dsn,
                            "--once"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert sched.returncode == 0, sched.stdout + sched.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute("select workload, configs, completed, failed from cerebro.progress "
                         "order by workload").fetchall()
        assert rows == [("pts-v1", 8, 8, 0), ("tiny-v1", 4, 4, 0)]
        best = c.execute("select best_objective from cerebro.leaderboard where "
                         "workload = 'pts-v1' and rank = 1").fetchone()[0]
        assert best < 0.3
