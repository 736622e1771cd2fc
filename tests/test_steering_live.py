"""Steering a running search: effects checked from cerebro.units, plus a concurrent storm."""

from __future__ import annotations

import json
import os
import random
import signal
import threading

import psycopg
import pytest

from helpers import assert_exactly_once, make_db, scheduler, wait_for
from helpers import fetch_all as _q

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon

SPACE = {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.01, 0.003]}}

SLOW = """
import time
import keras

class Slow(keras.layers.Layer):
    def call(self, x):
        time.sleep(0.05)          # eager mode: runs every batch
        return x

def build(config):
    ds = config["dataset"]
    m = keras.Sequential([keras.Input(tuple(ds["feature_shape"])), Slow(),
                          keras.layers.Dense(ds["num_classes"], activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    return m
"""


@pytest.fixture()
def live(server_dsn, request):
    dsn = make_db(server_dsn, f"cerebro_test_live_{request.node.name[:20].lower()}")
    procs = []

    def start():
        p = scheduler(dsn)
        procs.append(p)
        return p

    yield dsn, start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_stop_resume_add_and_clone_while_running(live):
    dsn, start = live
    _q(
        dsn,
        "select cerebro.launch('live', 'mlp', 'tr', 'va', 'grid', %s, max_epochs => 3, "
        "seed => 5, params => '{\"batch_size\": 16}')",
        [json.dumps(SPACE)],
    )
    x = _q(dsn, "select min(config_id) from cerebro.configs")[0][0]
    sched = start()
    # stop x in the middle of an epoch (one training partition done)
    wait_for(
        dsn,
        f"select cardinality(partitions_done) from cerebro.configs where config_id = {x}",
        lambda n: n == 1,
    )
    with psycopg.connect(dsn, autocommit=True) as c:
        done_at_stop = c.execute(
            "update cerebro.configs set status = 'stopped' where "
            "config_id = %s returning epoch, partitions_done",
            [x],
        ).fetchone()
    stop_at = _q(
        dsn, "select max(at) from cerebro.events where config_id = %s and action = 'stop'", [x]
    )[0][0]
    # add a config and (once one has a checkpoint) clone it, while the rest trains
    y = _q(
        dsn,
        "insert into cerebro.configs (workload_id, params) select workload_id, "
        '\'{"hidden": [12], "learning_rate": 0.005}\' from cerebro.configs '
        "where config_id = %s returning config_id",
        [x],
    )[0][0]
    z_parent = wait_for(
        dsn,
        f"select min(config_id) from cerebro.checkpoints where config_id <> {x}",
        lambda v: v is not None,
    )
    z = _q(dsn, "select cerebro.clone(%s, '{\"learning_rate\": 0.001}')", [z_parent])[0][0]
    wait_for(
        dsn,
        "select count(*) from cerebro.configs where status = 'active'",
        lambda n: n == 0,
        timeout=300,
    )
    # nothing of x started after its stop committed, and x kept its partial epoch
    assert (
        _q(
            dsn,
            "select count(*) from cerebro.units where config_id = %s and started_at > %s",
            [x, stop_at],
        )[0][0]
        == 0
    )
    # (a unit already in flight when the stop committed may finish: the stop takes effect
    # at the sub-epoch boundary)
    epoch, done, status = _q(
        dsn, "select epoch, partitions_done, status from cerebro.configs where config_id = %s", [x]
    )[0]
    ok_parts = [
        r[0]
        for r in _q(
            dsn,
            "select partition from cerebro.units where config_id = "
            "%s and kind = 'train' and outcome = 'ok' and epoch = %s "
            "order by ended_at",
            [x, epoch + 1],
        )
    ]
    assert status == "stopped" and epoch == done_at_stop[0]
    assert done == ok_parts and done[: len(done_at_stop[1])] == done_at_stop[1]
    _q(dsn, "update cerebro.configs set status = 'active' where config_id = %s returning 1", [x])
    wait_for(
        dsn,
        f"select status from cerebro.configs where config_id = {x}",
        lambda s: s == "completed",
        timeout=300,
    )
    os.kill(sched.pid, signal.SIGTERM)
    assert sched.wait(timeout=60) == 0  # clean shutdown
    assert_exactly_once(dsn, epochs=3)
    first_epoch_of_clone = _q(
        dsn, "select min(epoch) from cerebro.units where config_id = %s", [z]
    )[0][0]
    clone_epoch = _q(dsn, "select clone_epoch from cerebro.configs where config_id = %s", [z])[0][
        0
    ]
    assert clone_epoch >= 1 and first_epoch_of_clone == clone_epoch + 1
    assert (
        _q(dsn, "select status from cerebro.configs where config_id = %s", [y])[0][0]
        == "completed"
    )
    actions = {
        r[0] for r in _q(dsn, "select action from cerebro.events where config_id = %s", [x])
    }
    assert {"add", "stop", "resume", "completed"} <= actions


def test_immediate_stop_cancels_the_subepoch_in_flight(live):
    dsn, start = live
    _q(dsn, "select cerebro.register_model('slow', %s)", [SLOW])
    _q(
        dsn,
        "select cerebro.launch('slow', 'slow', 'tr', 'va', 'grid', '{\"batch_size\": "
        '{"choice": [4]}}\', max_epochs => 1)',
    )
    cid = _q(dsn, "select config_id from cerebro.configs")[0][0]
    start()
    unit = wait_for(
        dsn,
        "select max(unit_id) from cerebro.units where ended_at is null and kind = 'train'",
        lambda u: u is not None,
    )
    before = _q(dsn, "select partitions_done from cerebro.configs where config_id = %s", [cid])[0][
        0
    ]
    # a plain user who may steer it (not a superuser: the verb itself cancels the scheduler's
    # backend)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "do $$ begin if not exists (select 1 from pg_roles where rolname = 'dora') then "
            "create role dora login; end if; end $$"
        )
        c.execute("grant cerebro_user to dora")
        c.execute("select cerebro.share('slow', 'dora', 'steer')")
    dora = psycopg.conninfo.make_conninfo(dsn, user="dora")
    assert _q(dora, "select cerebro.stop(%s, immediate => true)", [cid])[0][0] is True
    outcome = wait_for(
        dsn,
        f"select outcome from cerebro.units where unit_id = {unit}",
        lambda o: o is not None,
        timeout=60,
    )
    assert outcome == "cancelled"
    # each sub-epoch here needs ~150 batches x 50 ms = 7.5 s; cancelled well before the end
    took = _q(
        dsn,
        "select extract(epoch from ended_at - started_at) from cerebro.units where unit_id = %s",
        [unit],
    )[0][0]
    assert took < 7.5
    assert _q(
        dsn, "select status, partitions_done from cerebro.configs where config_id = %s", [cid]
    )[0] == ("stopped", before)


def test_steering_storm(live):
    """500 random steering statements from 4 connections while the scheduler runs."""
    dsn, start = live
    wid = _q(
        dsn,
        "select cerebro.launch('storm', 'mlp', 'tr', 'va', 'grid', %s, "
        "max_epochs => 2, seed => 9)",
        [json.dumps(SPACE)],
    )[0][0]
    start()
    accepted: dict[str, int] = {}
    unexpected: list[str] = []
    sent = [0]
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(dsn, autocommit=True) as c:
            for _ in range(125):
                ids = [r[0] for r in c.execute("select config_id from cerebro.configs")]
                cid = rng.choice(ids)
                kind = rng.choice(
                    ["stop", "resume", "priority", "max_epochs", "add", "bad_transition"]
                )
                if kind == "add" and len(ids) >= 12:
                    kind = "priority"
                with lock:
                    sent[0] += 1
                try:
                    if kind == "stop":
                        n = c.execute(
                            "update cerebro.configs set status = 'stopped' where "
                            "config_id = %s and status = 'active'",
                            [cid],
                        ).rowcount
                    elif kind == "resume":
                        n = c.execute(
                            "update cerebro.configs set status = 'active' where "
                            "config_id = %s and status in ('stopped', 'failed')",
                            [cid],
                        ).rowcount
                    elif kind == "priority":
                        n = c.execute(
                            "update cerebro.configs set priority = %s where config_id = %s",
                            [rng.randint(-5, 5), cid],
                        ).rowcount
                        n = n if n else 0
                    elif kind == "max_epochs":
                        n = c.execute(
                            "update cerebro.configs set max_epochs = %s where "
                            "config_id = %s and coalesce(max_epochs, 2) < 3",
                            [3, cid],
                        ).rowcount
                    elif kind == "add":
                        n = c.execute(
                            "insert into cerebro.configs (workload_id, params) values (%s, %s)",
                            [wid, json.dumps({"hidden": [rng.choice([4, 8])]})],
                        ).rowcount
                    else:
                        c.execute(
                            "update cerebro.configs set status = 'completed' where config_id = %s",
                            [cid],
                        )
                        n = 1  # must not get here
                        with lock:
                            unexpected.append("completed accepted from a human")
                except psycopg.errors.DeadlockDetected as e:
                    with lock:
                        unexpected.append(f"deadlock: {e}")
                    continue
                except psycopg.Error as e:
                    msg = e.diag.message_primary or ""
                    if not msg.startswith("cerebro: "):
                        with lock:
                            unexpected.append(msg)
                    continue
                with lock:
                    accepted[kind] = accepted.get(kind, 0) + n

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    # finish the workload: resume whatever the storm left stopped
    _q(
        dsn,
        "update cerebro.configs set status = 'active' where status in ('stopped', "
        "'failed') returning 1",
    )
    wait_for(
        dsn,
        "select count(*) from cerebro.configs where status <> 'completed'",
        lambda n: n == 0,
        timeout=600,
    )
    bad = _q(
        dsn,
        "select count(*) from cerebro.configs c join cerebro.workloads w "
        "using (workload_id) where c.epoch <> coalesce(c.max_epochs, w.max_epochs)",
    )
    assert bad[0][0] == 0
    dup = _q(
        dsn,
        "select count(*) from (select 1 from cerebro.units where outcome = 'ok' "
        "group by config_id, epoch, partition, kind having count(*) > 1) d",
    )
    assert dup[0][0] == 0
    events = dict(
        _q(
            dsn,
            "select action, count(*) from cerebro.events where actor like "
            "'human:%%' group by action",
        )
    )
    assert events.get("stop", 0) == accepted.get("stop", 0)
    assert events.get("priority", 0) <= accepted.get("priority", 0)  # same-value updates
    assert events.get("max_epochs", 0) == accepted.get("max_epochs", 0)
    assert events.get("add", 0) == accepted.get("add", 0)
    # resumes: the storm's accepted ones plus the final resume statement's
    assert events.get("resume", 0) >= accepted.get("resume", 0)
    assert sent[0] == 500 and sum(accepted.values()) >= 100
