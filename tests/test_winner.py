"""Using the winner: cerebro.evaluate, cerebro.predict, cerebro.export_model, export-model CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import psycopg
import pytest

from helpers import ROOT, launch, make_db, run_to_end

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon

SPACE = {"learning_rate": {"choice": [0.02]}, "hidden": {"choice": [[16]]}}


@pytest.fixture(scope="module")
def trained(server_dsn):
    """One mlp config trained 2 epochs on the circle-in-square data; returns (dsn, config)."""
    dsn = make_db(server_dsn, "cerebro_winner")
    launch(dsn, "winner", space=SPACE, epochs=2)
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        cid, status = c.execute("select config_id, status from cerebro.configs").fetchone()
        assert status == "completed"
    return dsn, cid


def _err(c: psycopg.Connection, query: str, args=()) -> str:
    with pytest.raises(psycopg.Error) as e:
        c.execute(query, args)
    return e.value.diag.message_primary


def test_evaluate_reproduces_the_validation_metrics_of_each_checkpoint(trained):
    dsn, cid = trained
    with psycopg.connect(dsn, autocommit=True) as c:
        for epoch in (1, 2):
            want = c.execute(
                "select valid_loss, valid_metrics from cerebro.metrics "
                "where config_id = %s and epoch = %s",
                (cid, epoch),
            ).fetchone()
            got = c.execute("select cerebro.evaluate(%s, 'va', %s)", (cid, epoch)).fetchone()[0]
            assert got["epoch"] == epoch and got["rows"] == 300
            assert got["loss"] == pytest.approx(want[0], rel=1e-4)
            assert got["accuracy"] == pytest.approx(want[1]["accuracy"], abs=1e-6)
        latest = c.execute("select cerebro.evaluate(%s, 'va')", (cid,)).fetchone()[0]
        assert latest["epoch"] == 2
        e1 = c.execute("select cerebro.evaluate(%s, 'va', 1)", (cid,)).fetchone()[0]
        assert e1["loss"] != latest["loss"]  # really a different checkpoint


def test_predict_scores_every_row_and_agrees_with_the_exported_keras_file(trained, tmp_path):
    import keras

    dsn, cid = trained
    with psycopg.connect(dsn, autocommit=True) as c:
        n = c.execute(
            "select cerebro.predict(%s, 'src', 'public.scores', key => 'id', batch_rows => 100)",
            (cid,),
        ).fetchone()[0]
        assert n == 1200
        rows = c.execute(
            "select s.id, s.lbl, p.lbl, p.probability, p.probabilities "
            "from src s join scores p using (id) order by s.id"
        ).fetchall()
        assert len(rows) == 1200
        classes = c.execute("select classes from cerebro.datasets where name = 'tr'").fetchone()[0]
        probs = np.array([r[4] for r in rows])
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert [classes[i] for i in probs.argmax(axis=1)] == [r[2] for r in rows]
        assert np.allclose(probs.max(axis=1), [r[3] for r in rows])
        accuracy = np.mean([r[1] == r[2] for r in rows])
        assert accuracy > 0.8, accuracy  # it learnt the circle

        blob = c.execute("select cerebro.export_model(%s)", (cid,)).fetchone()[0]
        (norm,) = c.execute(
            "select normalization from cerebro.datasets where name = 'tr'"
        ).fetchone()
        x = np.array(c.execute("select a, b from src order by id").fetchall(), dtype=np.float32)
    path = tmp_path / "winner.keras"
    path.write_bytes(blob)
    model = keras.models.load_model(path)
    x = (x - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)
    plain = model.predict(x, verbose=0)
    assert np.abs(plain - probs).max() <= 1e-5


def test_export_model_cli_writes_a_file_keras_loads(trained, tmp_path):
    import keras

    dsn, cid = trained
    out = tmp_path / "cli.keras"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "export-model",
            str(cid),
            str(out),
            "--epoch",
            "1",
            "--dsn",
            dsn,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert f"config {cid}" in r.stdout
    model = keras.models.load_model(out)
    with psycopg.connect(dsn, autocommit=True) as c:
        ref = c.execute("select cerebro.export_model(%s, 1)", (cid,)).fetchone()[0]
    (tmp_path / "ref.keras").write_bytes(ref)
    ref_model = keras.models.load_model(tmp_path / "ref.keras")
    for a, b in zip(model.get_weights(), ref_model.get_weights()):
        assert np.array_equal(a, b)
    again = subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "export-model", str(cid), str(out), "--dsn", dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert again.returncode == 1 and "--force" in again.stderr


def test_bad_requests_are_refused_and_create_nothing(trained):
    dsn, cid = trained
    with psycopg.connect(dsn, autocommit=True) as c:
        assert "config 999 does not exist" in _err(c, "select cerebro.evaluate(999, 'va')")
        assert "no checkpoint of epoch 7" in _err(
            c, "select cerebro.evaluate(%s, 'va', 7)", (cid,)
        )
        wid = c.execute(
            "select workload_id from cerebro.configs where config_id = %s", (cid,)
        ).fetchone()[0]
        fresh = c.execute(
            "insert into cerebro.configs (workload_id, params) values "
            "(%s, %s) returning config_id",
            (wid, json.dumps({"learning_rate": 0.1})),
        ).fetchone()[0]
        c.execute("update cerebro.configs set status = 'stopped' where config_id = %s", (fresh,))
        assert "has no checkpoint yet" in _err(c, "select cerebro.export_model(%s)", (fresh,))
        c.execute(
            "select cerebro.load_dataset('other', 'src', array['a'], 'lbl', num_partitions => 1)"
        )
        msg = _err(c, "select cerebro.evaluate(%s, 'other')", (cid,))
        assert "not encoded like 'tr'" in msg
        c.execute("create table taken (id int)")
        assert "already exists" in _err(
            c, "select cerebro.predict(%s, 'src', 'taken', key => 'id')", (cid,)
        )
        assert "no single-column primary key" in _err(
            c, "select cerebro.predict(%s, 'src', 'public.nokey')", (cid,)
        )
        assert "key column 'nope' does not exist" in _err(
            c, "select cerebro.predict(%s, 'src', 'public.nokey', key => 'nope')", (cid,)
        )
        c.execute("create table wrong as select id, a as x from src")
        assert "unknown column 'a'" in _err(
            c, "select cerebro.predict(%s, 'wrong', 'public.nokey', key => 'id')", (cid,)
        )
        c.execute("create table arr as select array[id] as ids, a, b from src")
        assert "is an array" in _err(
            c, "select cerebro.predict(%s, 'arr', 'public.nokey', key => 'ids')", (cid,)
        )
        assert c.execute("select to_regclass('public.nokey')").fetchone()[0] is None
        assert c.execute("select count(*) from taken").fetchone()[0] == 0


def test_predict_uses_the_primary_key_and_writes_values_for_regression(server_dsn):
    dsn = make_db(server_dsn, "cerebro_winner_reg")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table reg (id bigint primary key, a float8, b float8, t float8)")
        c.execute("insert into reg select id, a, b, 3 * a - b from src")
        c.execute(
            "select cerebro.load_dataset('rtr', 'reg', array['a', 'b'], 't', num_partitions => 2)"
        )
        c.execute(
            "select cerebro.load_dataset('rva', 'reg', like_dataset => 'rtr', num_partitions => 2)"
        )
        c.execute(
            "select cerebro.launch('reg', 'mlp', 'rtr', 'rva', 'grid', %s, "
            "max_epochs => 3, seed => 1)",
            (json.dumps({"learning_rate": {"choice": [0.02]}}),),
        )
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute("select config_id from cerebro.configs").fetchone()[0]
        assert c.execute("select cerebro.predict(%s, 'reg', 'out')", (cid,)).fetchone()[0] == 1200
        cols = [
            r[0]
            for r in c.execute(
                "select attname from pg_attribute where attrelid = 'out'::regclass and attnum > 0 "
                "order by attnum"
            )
        ]
        assert cols == ["id", "t"]
        err = c.execute(
            "select sqrt(avg((o.t - r.t) ^ 2)) from out o join reg r using (id)"
        ).fetchone()[0]
        std = c.execute("select stddev_pop(t) from reg").fetchone()[0]
        assert err < 0.5 * std, (err, std)  # much better than predicting the mean


def test_predict_keeps_a_text_key_and_its_type_across_batches(trained):
    """Rows travel to the output table one batch at a time as arrays; a varchar(n) key with
    duplicates and odd characters comes back row for row, typed as in the source."""
    dsn, cid = trained
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "create table named as select ('r-' || (id % 600) || ' \\\\ \"x,}')::varchar(40) "
            "as name, id, a, b from src"
        )
        n = c.execute(
            "select cerebro.predict(%s, 'named', 'named_scores', key => 'name', batch_rows => 7)",
            (cid,),
        ).fetchone()[0]
        assert n == 1200
        assert (
            c.execute(
                "select format_type(atttypid, atttypmod) from pg_attribute where "
                "attrelid = 'named_scores'::regclass and attname = 'name'"
            ).fetchone()[0]
            == "character varying(40)"
        )
        want = c.execute("select name, count(*) from named group by 1 order by 1").fetchall()
        got = c.execute("select name, count(*) from named_scores group by 1 order by 1").fetchall()
        assert got == want and len(want) == 600
        # the same rows scored as under the integer key: per name, the same probabilities
        c.execute("select cerebro.predict(%s, 'src', 'by_id', key => 'id')", (cid,))
        by_name = c.execute(
            "select n.name, array_agg(b.probability order by b.probability) "
            "from named n join by_id b using (id) group by 1 order by 1"
        ).fetchall()
        scored = c.execute(
            "select name, array_agg(probability order by probability) "
            "from named_scores group by 1 order by 1"
        ).fetchall()
        assert [r[0] for r in scored] == [r[0] for r in by_name]
        np.testing.assert_allclose([r[1] for r in scored], [r[1] for r in by_name], atol=1e-6)
