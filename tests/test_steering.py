"""Steering with plain SQL: the state machine, its audit trail, clone and drill-down."""

from __future__ import annotations

import json

import psycopg
import pytest

from cerebro_udfs import state
from helpers import make_db, run_to_end

SPACE = {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.01, 0.003]}}


@pytest.fixture(scope="module")
def sdsn(server_dsn):
    return make_db(server_dsn, "cerebro_test_steer")


@pytest.fixture()
def wl(sdsn):
    """A fresh grid workload (4 configs, nothing trained); returns (dsn, workload_id)."""
    with psycopg.connect(sdsn, autocommit=True) as c:
        n = c.execute("select count(*) from cerebro.workloads").fetchone()[0]
        wid = c.execute(
            "select cerebro.launch(%s, 'mlp', 'tr', 'va', 'grid', %s, "
            "max_epochs => 2, seed => 3, params => '{\"batch_size\": 32}')",
            [f"st{n}", json.dumps(SPACE)],
        ).fetchone()[0]
    return sdsn, wid


def _set(c, cid, status, system=False):
    if system:
        c.execute("set cerebro.actor = 'system'")
    try:
        c.execute("update cerebro.configs set status = %s where config_id = %s", [status, cid])
    finally:
        c.execute("reset cerebro.actor")


def _status(c, cid):
    return c.execute("select status from cerebro.configs where config_id = %s", [cid]).fetchone()[
        0
    ]


@pytest.mark.parametrize(
    "start, target, allowed",
    [
        ("active", "stopped", True),
        ("active", "completed", False),
        ("active", "failed", False),
        ("stopped", "active", True),
        ("stopped", "completed", False),
        ("stopped", "failed", False),
        ("failed", "active", True),
        ("failed", "stopped", False),
        ("failed", "completed", False),
        ("completed", "stopped", False),
        ("completed", "failed", False),
        ("active", "bogus", False),
    ],
)
def test_human_transitions(wl, start, target, allowed):
    dsn, wid = wl
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute(
            "select min(config_id) from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0]
        if start == "stopped":
            _set(c, cid, "stopped")
        elif start in ("failed", "completed"):
            _set(c, cid, start, system=True)
        assert _status(c, cid) == start
        before = c.execute("select count(*) from cerebro.events").fetchone()[0]
        if allowed:
            _set(c, cid, target)
            assert _status(c, cid) == target
            ev = c.execute(
                "select actor, action, detail->>'from', detail->>'to' from "
                "cerebro.events order by event_id desc limit 1"
            ).fetchone()
            assert ev == (
                "human:postgres",
                "stop" if target == "stopped" else "resume",
                start,
                target,
            )
        else:
            with pytest.raises(psycopg.Error) as e:
                _set(c, cid, target)
            msg = e.value.diag.message_primary
            assert f"cannot go from {start} to {target}" in msg
            assert "allowed: active -> stopped" in e.value.diag.message_hint
            assert _status(c, cid) == start
            assert c.execute("select count(*) from cerebro.events").fetchone()[0] == before


def test_train_longer_and_immutable_columns(wl):
    dsn, wid = wl
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute(
            "select min(config_id) from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0]
        c.execute("set cerebro.actor = 'system'")
        c.execute(
            "update cerebro.configs set epoch = 2, status = 'completed' where config_id = %s",
            [cid],
        )
        c.execute("reset cerebro.actor")
        with pytest.raises(psycopg.Error) as e:
            _set(c, cid, "active")  # epochs exhausted
        assert "cannot go from completed to active" in e.value.diag.message_primary
        c.execute("update cerebro.configs set max_epochs = 4 where config_id = %s", [cid])
        assert _status(c, cid) == "active"
        acts = [
            r[0]
            for r in c.execute(
                "select action from cerebro.events where config_id = %s "
                "order by event_id desc limit 2",
                [cid],
            )
        ]
        assert set(acts) == {"max_epochs", "resume"}
        for stmt, says in [
            ("update cerebro.configs set params = '{}' where config_id = %s", "cannot change"),
            ("update cerebro.configs set epoch = 7 where config_id = %s", "maintained by"),
            (
                "update cerebro.configs set partitions_done = '{1}' where config_id = %s",
                "maintained by",
            ),
        ]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(stmt, [cid])
            assert says in e.value.diag.message_primary


def test_insert_adds_a_checked_config_with_defaults(wl):
    dsn, wid = wl
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute(
            "insert into cerebro.configs (workload_id, params) values (%s, %s) "
            "returning config_id",
            [wid, json.dumps({"hidden": [32], "learning_rate": 0.002})],
        ).fetchone()[0]
        params, status, source = c.execute(
            "select params, status, source from cerebro.configs where config_id = %s", [cid]
        ).fetchone()
        assert params == {
            "hidden": [32],
            "learning_rate": 0.002,
            "batch_size": 32,
            "dropout": 0.0,
            "optimizer": "adam",
            "activation": "relu",
        }
        assert (status, source) == ("active", "human")
        assert c.execute(
            "select actor, action from cerebro.events where config_id = %s", [cid]
        ).fetchall() == [("human:postgres", "add")]
        for params, says in [
            ({"hiden": [4]}, "does not take parameter 'hiden'"),
            ({"optimizer": "lion"}, "is not one of"),
            ({"learning_rate": -1}, "below its minimum"),
        ]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(
                    "insert into cerebro.configs (workload_id, params) values (%s, %s)",
                    [wid, json.dumps(params)],
                )
            assert says in e.value.diag.message_primary
        with pytest.raises(psycopg.Error) as e:
            c.execute(
                "insert into cerebro.configs (workload_id, params, status) "
                "values (%s, '{}', 'stopped')",
                [wid],
            )
        assert "starts as active" in e.value.diag.message_primary


def test_workload_pause_resume_cancel(wl):
    dsn, wid = wl
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update cerebro.workloads set status = 'paused' where workload_id = %s", [wid])
        c.execute("update cerebro.workloads set status = 'active' where workload_id = %s", [wid])
        c.execute("update cerebro.workloads set priority = 5 where workload_id = %s", [wid])
        c.execute(
            "update cerebro.workloads set status = 'cancelled' where workload_id = %s", [wid]
        )
        assert c.execute(
            "select array_agg(distinct status) from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0] == ["stopped"]
        with pytest.raises(psycopg.Error) as e:
            c.execute(
                "update cerebro.workloads set status = 'active' where workload_id = %s", [wid]
            )
        assert "cancelled is final" in e.value.diag.message_hint
        with pytest.raises(psycopg.Error) as e:
            c.execute("insert into cerebro.configs (workload_id, params) values (%s, '{}')", [wid])
        assert "is cancelled" in e.value.diag.message_primary
        acts = [
            r[0]
            for r in c.execute(
                "select action from cerebro.events where workload_id = "
                "%s and config_id is null order by event_id",
                [wid],
            )
        ]
        assert acts == ["launch", "pause", "resume", "priority", "cancel"]


@pytest.mark.slow
def test_clone_continues_from_the_parents_weights_with_a_new_learning_rate(sdsn):
    with psycopg.connect(sdsn, autocommit=True) as c:
        wid = c.execute(
            "select cerebro.launch('clone_src', 'mlp', 'tr', 'va', 'grid', "
            "'{\"hidden\": [8]}', max_epochs => 1, seed => 1, "
            'params => \'{"learning_rate": 0.01, "batch_size": 32}\')'
        ).fetchone()[0]
        c.execute(
            "update cerebro.configs set status = 'stopped' where workload_id "
            "<> %s and status = 'active' returning config_id",
            [wid],
        ).fetchall()
    run_to_end(sdsn)
    with psycopg.connect(sdsn, autocommit=True) as c:
        parent = c.execute(
            "select config_id from cerebro.configs where workload_id = %s", [wid]
        ).fetchone()[0]
        child = c.execute(
            "select cerebro.clone(%s, '{\"learning_rate\": 0.001}')", [parent]
        ).fetchone()[0]
        row = c.execute(
            "select epoch, parent_config, source, params->>'learning_rate', "
            "status from cerebro.configs where config_id = %s",
            [child],
        ).fetchone()
        assert row == (1, parent, "clone", "0.001", "completed")
        same = c.execute(
            "select a.state = b.state from cerebro.checkpoints a, "
            "cerebro.checkpoints b where a.config_id = %s and b.config_id = %s "
            "and a.epoch = 1 and b.epoch = 1",
            [parent, child],
        ).fetchone()[0]
        assert same
        with pytest.raises(psycopg.Error) as e:
            c.execute("select cerebro.clone(%s, '{\"hidden\": [64]}')", [parent])
        assert "changes the model's architecture" in e.value.diag.message_primary
        assert "fresh => true" in e.value.diag.message_hint
        fresh = c.execute(
            "select cerebro.clone(%s, '{\"hidden\": [64]}', fresh => true)", [parent]
        ).fetchone()[0]
        assert (
            c.execute(
                "select epoch from cerebro.configs where config_id = %s", [fresh]
            ).fetchone()[0]
            == 0
        )
        c.execute("update cerebro.configs set max_epochs = 2 where config_id = %s", [child])
        c.execute("update cerebro.configs set status = 'stopped' where config_id = %s", [fresh])
    run_to_end(sdsn)
    with psycopg.connect(sdsn, autocommit=True) as c:
        p_blob = c.execute(
            "select state from cerebro.checkpoints where config_id = %s and epoch = 1", [parent]
        ).fetchone()[0]
        c_blob = c.execute(
            "select state from cerebro.checkpoints where config_id = %s and epoch = 2", [child]
        ).fetchone()[0]
        curves = c.execute(
            "select epoch, from_config from cerebro.learning_curves where "
            "config_id = %s and metric = 'valid_loss' order by epoch",
            [child],
        ).fetchall()
        hist = c.execute(
            "select config_id, generation, action from cerebro.history(%s)", [child]
        ).fetchall()
    p_opt, c_opt = dict(state.decode(p_blob).optimizer), dict(state.decode(c_blob).optimizer)
    assert int(c_opt["adam/iteration"]) > int(p_opt["adam/iteration"]) > 0  # moments carried
    assert float(c_opt["adam/learning_rate"]) == pytest.approx(0.001)
    assert float(p_opt["adam/learning_rate"]) == pytest.approx(0.01)
    assert curves == [(1, parent), (2, child)]  # history inherited by reference
    assert (child, 0, "clone") in hist and (parent, 1, "completed") in hist


@pytest.mark.slow
def test_drill_down_pins_the_best_configs_other_params(sdsn):
    with psycopg.connect(sdsn, autocommit=True) as c:
        c.execute("update cerebro.configs set status = 'stopped' where status = 'active'")
        wid = c.execute(
            "select cerebro.launch('dd_parent', 'mlp', 'tr', 'va', 'grid', %s, "
            "max_epochs => 1, seed => 2, params => '{\"batch_size\": 64}')",
            [json.dumps(SPACE)],
        ).fetchone()[0]
    run_to_end(sdsn)
    with psycopg.connect(sdsn, autocommit=True) as c:
        best = c.execute(
            "select config_id, params from cerebro.leaderboard where "
            "workload_id = %s and rank = 1",
            [wid],
        ).fetchone()
        child = c.execute(
            'select cerebro.drill_down(%s, \'{"learning_rate": '
            "{\"loguniform\": [0.0005, 0.05]}}', search => 'random', "
            "num_configs => 3)",
            [wid],
        ).fetchone()[0]
        name, parent = c.execute(
            "select name, parent_workload from cerebro.workloads where workload_id = %s", [child]
        ).fetchone()
        params = [
            r[0]
            for r in c.execute(
                "select params from cerebro.configs where workload_id = %s", [child]
            )
        ]
        ev = c.execute(
            "select actor, action, config_id from cerebro.events where action = 'drill_down'"
        ).fetchone()
    assert (name, parent) == ("dd_parent/drill-1", wid)
    assert len(params) == 3
    assert all(p["hidden"] == best[1]["hidden"] and p["batch_size"] == 64 for p in params)
    assert all(0.0005 <= p["learning_rate"] <= 0.05 for p in params)
    assert len({p["learning_rate"] for p in params}) == 3
    assert ev == ("human:postgres", "drill_down", best[0])
