"""The README's psql walkthrough runs as written, with the scheduler training in between."""

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from helpers import ROOT, fresh_database, scheduler_dsn, wait_for

WAIT = 600.0  # seconds: the walkthrough trains five workloads


def sections() -> dict[str, str]:
    """SQL of each walkthrough section, by its heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Walkthrough in psql")
    body = text[start : text.index("\n## ", start)]
    parts = re.split(r"^### ", body, flags=re.M)[1:]
    return {p.splitlines()[0]: "\n".join(re.findall(r"```sql\n(.*?)```", p, re.S)) for p in parts}


EXPECTED_DONE = "pts-tpe:13:0 pts-tpe/drill-1:4:0 pts-v1:10:0 pts-v1/drill-1:3:0 tiny-v1:4:0"


def psql(dsn: str, script: str, tmp_path: Path) -> None:
    f = tmp_path / "step.sql"
    f.write_text(script)
    proc = subprocess.run(
        ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", str(f)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_readme_walkthrough(server_dsn, tmp_path):
    dsn = fresh_database(server_dsn, "cerebro_test_readme")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.5)")
    steps = sections()
    names = list(steps)
    assert [n.split(".")[0] for n in names] == ["1", "2", "3", "4", "5", "6", "7"]
    automl, drill = steps[names[3]].split("-- then drill down")
    drill = "-- then drill down" + drill
    psql(dsn, steps[names[0]] + steps[names[1]], tmp_path)  # load, launch
    daemon = subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", scheduler_dsn(dsn)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        # steer while it runs: once every config has a measured epoch
        wait_for(
            dsn, "select count(distinct config_id) from cerebro.metrics", lambda n: n >= 8, WAIT
        )
        psql(dsn, steps[names[2]], tmp_path)  # steer
        psql(dsn, automl, tmp_path)  # TPE + a human config
        wait_for(
            dsn,
            "select count(*) from cerebro.leaderboard where workload = 'pts-tpe' "
            "and best_objective is not null",
            lambda n: n >= 1,
            WAIT,
        )
        psql(dsn, drill, tmp_path)  # drill down on TPE
        psql(dsn, steps[names[4]] + steps[names[5]], tmp_path)  # by hand, own model
        # done when every workload has all its configs and none is active (TPE adds its
        # next config only after one finishes, so "nothing active" alone is not the end)
        wait_for(
            dsn,
            "select string_agg(format('%s:%s:%s', workload, configs, active), ' ' "
            "order by workload) from cerebro.progress",
            lambda v: v == EXPECTED_DONE,
            WAIT,
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select workload, configs, active, stopped + completed, failed "
            "from cerebro.progress order by workload"
        ).fetchall()
        assert rows == [
            ("pts-tpe", 13, 0, 13, 0),
            ("pts-tpe/drill-1", 4, 0, 4, 0),
            ("pts-v1", 10, 0, 10, 0),
            ("pts-v1/drill-1", 3, 0, 3, 0),
            ("tiny-v1", 4, 0, 4, 0),
        ]
        best = c.execute(
            "select best_objective from cerebro.leaderboard where workload = 'pts-v1' and rank = 1"
        ).fetchone()[0]
        assert best < 0.3
        psql(dsn, steps[names[6]], tmp_path)  # use the winner
        assert c.execute(
            "select count(*), count(distinct id), avg((probability > 0.5)::int) from pts_scores"
        ).fetchone() == (2000, 2000, 1)
        right = c.execute(
            "select avg((s.lbl = p.lbl)::int) from pts_scores s join pts p using (id)"
        ).fetchone()[0]
        assert right > 0.9
        actions = {r[0] for r in c.execute("select distinct action from cerebro.events")}
        assert {
            "launch",
            "add",
            "clone",
            "max_epochs",
            "priority",
            "pause",
            "drill_down",
            "completed",
        } <= actions


def seed_sections() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The five seed workloads")
    body = text[start : text.index("\n## ", start + 1)]
    parts = re.split(r"^### ", body, flags=re.M)[1:]
    return {p.splitlines()[0]: "\n".join(re.findall(r"```sql\n(.*?)```", p, re.S)) for p in parts}


def test_seed_workloads_sql_runs_on_tables_of_the_same_shape(server_dsn, tmp_path):
    """The X-ray and review workloads load, validate and launch as written (the scheduler is
    not started: that the roster models train is tests/test_roster.py's job)."""
    import io

    import numpy as np
    from PIL import Image

    dsn = fresh_database(server_dsn, "cerebro_test_readme_seed")
    rng = np.random.default_rng(2)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table xray (id int primary key, image bytea, label text, split text)")
        c.execute(
            "create table reviews (id int primary key, review text, sentiment text, split text)"
        )
        for i in range(12):
            b = io.BytesIO()
            Image.fromarray((rng.random((48, 40)) * 255).astype(np.uint8)).save(b, "PNG")
            split = "val" if i % 3 == 0 else "train"
            c.execute(
                "insert into xray values (%s, %s, %s, %s)",
                (i, b.getvalue(), "pneumonia" if i % 2 else "normal", split),
            )
            c.execute(
                "insert into reviews values (%s, %s, %s, %s)",
                (
                    i,
                    f"a {'great' if i % 2 else 'dull'} film, number {i}",
                    "pos" if i % 2 else "neg",
                    split,
                ),
            )
    seeds = seed_sections()
    sql_text = "".join(v for k, v in seeds.items() if k.startswith(("Chest", "Movie")))
    assert sql_text.count("cerebro.launch") == 4
    psql(dsn, sql_text, tmp_path)
    with psycopg.connect(dsn, autocommit=True) as c:
        shapes = dict(c.execute("select name, feature_shape from cerebro.datasets"))
        assert shapes == {
            "xray_train": [224, 224, 3],
            "xray_valid": [224, 224, 3],
            "reviews_train": [128],
            "reviews_valid": [128],
        }
        launched = dict(
            c.execute(
                "select w.name || ':' || m.name, count(c.*) from "
                "cerebro.workloads w join cerebro.models m using (model_id) "
                "left join cerebro.configs c using (workload_id) "
                "group by 1"
            )
        )
    assert launched["xray-resnet50:resnet50"] == 4 and launched["reviews-bert:bert_base"] == 4
    assert launched["xray-mobilenet:mobilenet"] >= 1
    assert launched["reviews-distilbert:distilbert"] >= 1
