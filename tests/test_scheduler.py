"""The MOP scheduler end to end: real server, real Keras, the daemon as a subprocess."""

from __future__ import annotations

import os
import random
import signal

import numpy as np
import psycopg
import pytest

from cerebro_udfs.roster import mlp
from helpers import (
    assert_exactly_once,
    final_states,
    launch,
    make_db,
    run_to_end,
    scheduler,
    wait_for,
)

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon


@pytest.fixture(scope="module")
def undisturbed(server_dsn):
    dsn = make_db(server_dsn, "cerebro_test_sched_a")
    launch(dsn, "grid")
    run_to_end(dsn)
    return dsn


def test_each_config_epoch_visits_each_partition_exactly_once(undisturbed):
    assert_exactly_once(undisturbed, epochs=2)
    with psycopg.connect(undisturbed, autocommit=True) as c:
        board = c.execute(
            "select config_id, rank, epochs, best_objective from cerebro.leaderboard order by rank"
        ).fetchall()
        assert len(board) == 4 and [r[1] for r in board] == [1, 2, 3, 4]
        assert all(r[3] is not None for r in board)
        assert sorted(r[3] for r in board) == [r[3] for r in board]
        # the two workers really trained at the same time
        overlap = c.execute("""select count(*) from cerebro.units a join cerebro.units b
            on a.worker <> b.worker and a.started_at < b.ended_at and b.started_at < a.ended_at
            where a.kind = 'train' and b.kind = 'train'""").fetchone()[0]
        assert overlap > 0


def test_mop_equals_plain_keras_in_the_same_order(undisturbed):
    """P3: one config's MOP weights equal sequential Keras on the same partitions/order."""
    import keras

    with psycopg.connect(undisturbed, autocommit=True) as c:
        cid, params, seed = c.execute(
            "select config_id, params, seed from cerebro.configs order by config_id limit 1"
        ).fetchone()
        order = c.execute(
            "select partition from cerebro.units where config_id = %s and "
            "kind = 'train' and outcome = 'ok' order by epoch, ended_at",
            [cid],
        ).fetchall()
        parts = {}
        for p in (0, 1):
            rows = c.execute(
                "select b.num_rows, b.x, b.y from cerebro.buffers b join "
                "cerebro.datasets d using (dataset_id) where d.name = 'tr' and "
                "b.__dist_key__ = %s order by b.buffer_id",
                [p],
            ).fetchall()
            parts[p] = (
                np.concatenate([np.frombuffer(r[1], "<f4").reshape(r[0], 2) for r in rows]),
                np.concatenate([np.frombuffer(r[2], "<i4") for r in rows]),
            )
    keras.utils.set_random_seed(seed)
    model = mlp.build(
        {
            **params,
            "dataset": {
                "feature_shape": [2],
                "task": "classification",
                "num_classes": 2,
                "classes": ["in", "out"],
            },
        }
    )
    model.optimizer.build(model.trainable_variables)
    for (p,) in order:
        model.fit(*parts[p], batch_size=params["batch_size"], epochs=1, shuffle=False, verbose=0)
    mop = final_states(undisturbed)[cid]
    diff = max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(mop, model.variables))
    assert diff <= 1e-5, f"max abs weight difference {diff}"


def test_scheduler_killed_repeatedly_finishes_with_the_same_weights(server_dsn, undisturbed):
    dsn = make_db(server_dsn, "cerebro_test_sched_b")
    launch(dsn, "grid")
    rng = random.Random(7)
    kills = 0
    for target in sorted(rng.sample(range(1, 22), 5)):  # kill after `target` units
        p = scheduler(dsn)
        wait_for(
            dsn,
            "select count(*) from cerebro.units where outcome = 'ok'",
            lambda n, t=target: n >= t,
        )
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
    assert kills == 5
    run_to_end(dsn)
    assert_exactly_once(dsn, epochs=2)
    a, b = final_states(undisturbed), final_states(dsn)
    assert a.keys() == b.keys()
    for cid in a:
        for x, y in zip(a[cid], b[cid]):
            np.testing.assert_array_equal(x, y)
    with psycopg.connect(dsn, autocommit=True) as c:
        lost = c.execute("select count(*) from cerebro.units where outcome = 'lost'").fetchone()[0]
    assert lost >= 1  # the kills really interrupted work in flight


FAILING = """
import keras

class Boom(keras.layers.Layer):
    def call(self, x, training=False):
        if training:
            raise RuntimeError("exploded on purpose")
        return x

def build(config):
    ds = config["dataset"]
    layers = [keras.Input(tuple(ds["feature_shape"])), keras.layers.Dense(4)]
    if config.get("explode"):
        layers.append(Boom())
    layers.append(keras.layers.Dense(ds["num_classes"], activation="softmax"))
    m = keras.Sequential(layers)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m
"""


def test_failing_config_and_two_workloads_at_once(server_dsn):
    dsn = make_db(server_dsn, "cerebro_test_sched_c")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select cerebro.register_model('boom', %s)", [FAILING])
    w1 = launch(
        dsn, "fails", space={"explode": {"choice": [False, True]}}, model="boom", params={}
    )
    w2 = launch(dsn, "other", space={"hidden": {"choice": [[4], [6]]}}, epochs=1)
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select workload_id, params, status, error from cerebro.configs order by config_id"
        ).fetchall()
        events = c.execute(
            "select action, actor from cerebro.events where action = 'failed'"
        ).fetchall()
        units = c.execute(
            "select count(distinct c.workload_id) from cerebro.units u "
            "join cerebro.configs c using (config_id)"
        ).fetchone()[0]
    failed = [r for r in rows if r[2] == "failed"]
    assert len(failed) == 1 and failed[0][1]["explode"] is True
    assert "exploded on purpose" in failed[0][3]
    assert [r[2] for r in rows if r is not failed[0]] == ["completed"] * 3
    assert {r[0] for r in rows} == {w1, w2} and units == 2
    assert events == [("failed", "system")]


def test_second_scheduler_stands_by_and_takes_over(server_dsn):
    dsn = make_db(server_dsn, "cerebro_test_sched_d")
    launch(dsn, "grid", epochs=1)
    first = scheduler(dsn)
    wait_for(
        dsn, "select count(*) from cerebro.schedulers where role = 'leader'", lambda n: n == 1
    )
    second = scheduler(dsn, "--once")
    wait_for(
        dsn, "select count(*) from cerebro.schedulers where role = 'standby'", lambda n: n == 1
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert_exactly_once(dsn, epochs=1)


def test_no_stuck_configs_lowered_max_epochs_and_a_missing_checkpoint(server_dsn):
    """Lowering max_epochs to the epochs done completes an active config at once (it never
    waits active with nothing to run); a config whose checkpoint is gone fails with a clear
    error instead of silently training on from a fresh model."""
    dsn = make_db(server_dsn, "cerebro_test_stuck")
    launch(dsn, "stuck", {"learning_rate": {"choice": [0.01, 0.02]}}, epochs=1)
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        a, b = (r[0] for r in c.execute("select config_id from cerebro.configs order by 1"))
        c.execute("update cerebro.configs set max_epochs = 3 where config_id in (%s, %s)", [a, b])
        assert c.execute(
            "select status from cerebro.configs where config_id = %s", [a]
        ).fetchone() == ("active",)
        c.execute("update cerebro.configs set max_epochs = 1 where config_id = %s", [a])
        assert c.execute(
            "select status, epoch from cerebro.configs where config_id = %s", [a]
        ).fetchone() == ("completed", 1)
        assert c.execute(
            "select action, detail->>'to' from cerebro.events where config_id = %s "
            "and action = 'completed' order by event_id desc limit 1",
            [a],
        ).fetchone() == ("completed", "completed")
        c.execute("delete from cerebro.checkpoints where config_id = %s and epoch = 1", [b])
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        status, epoch, error = c.execute(
            "select status, epoch, error from cerebro.configs where config_id = %s", [b]
        ).fetchone()
        assert (status, epoch) == ("failed", 1)
        assert error.startswith("the checkpoint of epoch 1 is missing, so epoch 2 cannot")
        assert c.execute(
            "select count(*) from cerebro.units where config_id = %s and epoch = 2 "
            "and outcome = 'ok'",
            [b],
        ).fetchone() == (0,)
