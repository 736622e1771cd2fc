"""Training across servers (issue 14): a coordinator and two node servers, one partition each.

The module starts two node servers the way ``cerebro up --nodes 2`` does (real PostgreSQL
servers on 127.0.0.1 with scram passwords), registers them on a fresh coordinator database
of the shared server, and loads the data with ``nodes => array['local', 'node1', 'node2']``:
partition 0 stays on the coordinator, 1 and 2 are shipped to the nodes by the scheduler. The
scheduler daemon runs as a subprocess, as it does in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from cerebro.status import database_lines
from cerebro_udfs.roster import mlp
from helpers import (
    SPACE,
    assert_exactly_once,
    create_source,
    fetch_all,
    final_states,
    fresh_database,
    local_nodes,
    run_to_end,
    scheduler,
    wait_for,
)

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon

PLACES = ["local", "node1", "node2"]
SMALL = {"learning_rate": {"choice": [0.01, 0.003]}, "hidden": {"choice": [[16]]}}


class Deployment:
    def __init__(self, dsn: str, servers: list[Any]) -> None:
        self.dsn = dsn
        self.servers = {s.name: s for s in servers}

    def node_dsn(self, name: str) -> str:
        return self.servers[name].tcp_conninfo()

    def launch(self, name: str, epochs: int = 2, space: dict | None = None, data: str = "") -> int:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            return c.execute(
                "select cerebro.launch(%s, 'mlp', %s, %s, 'grid', %s, max_epochs => %s, "
                "seed => 11, params => '{\"batch_size\": 32}')",
                [name, "tr" + data, "va" + data, json.dumps(space or SPACE), epochs],
            ).fetchone()[0]


@pytest.fixture(scope="module")
def deployment(server_dsn: str) -> Iterator[Deployment]:
    dsn = fresh_database(server_dsn, "cerebro_test_multinode")
    with local_nodes(dsn, 2) as (_, servers):
        with psycopg.connect(dsn, autocommit=True) as c:
            create_source(c)
            c.execute(
                "select cerebro.load_dataset('tr', 'src', array['a', 'b'], 'lbl', seed => 1, "
                "nodes => %s)",
                [PLACES],
            )
            c.execute("create view va_src as select * from src where id % 4 = 0")
            c.execute("select cerebro.load_dataset('va', 'va_src', like_dataset => 'tr')")
            # the same data on the coordinator and node2 only (the node failure test)
            c.execute(
                "select cerebro.load_dataset('tr2', 'src', array['a', 'b'], 'lbl', seed => 1, "
                "nodes => array['local', 'node2'])"
            )
            c.execute("select cerebro.load_dataset('va2', 'va_src', like_dataset => 'tr2')")
        yield Deployment(dsn, servers)


@pytest.fixture(scope="module")
def undisturbed(deployment: Deployment) -> Deployment:
    deployment.launch("grid")
    run_to_end(deployment.dsn)
    return deployment


def test_each_partition_lives_on_its_own_server(undisturbed: Deployment) -> None:
    d = undisturbed
    rows = fetch_all(
        d.dsn,
        "select dataset, partition, node, placed, rows from cerebro.dataset_partitions "
        "order by 1, 2",
    )
    beside = ["local", "node2"]  # tr2 and va2
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (ds, j, places[j], True)
        for ds, places in (("tr", PLACES), ("tr2", beside), ("va", PLACES), ("va2", beside))
        for j in range(len(places))
    ]
    assert sum(r[4] for r in rows if r[0] == "tr") == 1200
    # the coordinator kept only partition 0; each node holds exactly its own partition
    here = fetch_all(d.dsn, "select distinct __dist_key__ from cerebro.buffers")
    assert here == [(0,)]
    for j, name in ((1, "node1"), (2, "node2")):
        there = fetch_all(
            d.node_dsn(name),
            "select d.name, b.__dist_key__, sum(b.num_rows) from cerebro.buffers b "
            "join cerebro.datasets d using (dataset_id) group by 1, 2 order by 1",
        )
        mine = [("tr", j), ("tr2", 1), ("va", j), ("va2", 1)] if j == 2 else [("tr", j), ("va", j)]
        assert [(n, k) for n, k, _ in there] == mine
        assert there[0][2] == next(r[4] for r in rows if r[0] == "tr" and r[1] == j)


def test_grid_trains_to_completion_exactly_once_across_servers(undisturbed: Deployment) -> None:
    d = undisturbed
    assert_exactly_once(d.dsn, epochs=2, partitions=3)
    units = fetch_all(
        d.dsn,
        "select partition, result->>'node', (result->>'hop_in_bytes')::bigint "
        "from cerebro.units where outcome = 'ok' and kind = 'train'",
    )
    assert {(p, n) for p, n, _ in units} == {(0, None), (1, "node1"), (2, "node2")}
    # states really travelled to the nodes (checkpoint or another server's state)
    assert any(b and b > 1000 for p, _, b in units if p > 0)
    # and back: a unit on the coordinator after one on a node fetched its state from there
    assert any(b and b > 1000 for p, _, b in units if p == 0)
    board = fetch_all(d.dsn, "select best_objective from cerebro.leaderboard")
    assert len(board) == 4 and all(b is not None for (b,) in board)
    # nothing but caches left on the nodes: no state copy of a finished config stays behind
    for name in ("node1", "node2"):
        assert fetch_all(d.node_dsn(name), "select count(*) from cerebro.hop_states") == [(0,)]


def _partition(dsn: str, p: int) -> tuple[np.ndarray, np.ndarray]:
    rows = fetch_all(
        dsn,
        "select b.num_rows, b.x, b.y from cerebro.buffers b join cerebro.datasets d "
        "using (dataset_id) where d.name = 'tr' and b.__dist_key__ = %s order by b.buffer_id",
        [p],
    )
    assert rows
    return (
        np.concatenate([np.frombuffer(r[1], "<f4").reshape(r[0], 2) for r in rows]),
        np.concatenate([np.frombuffer(r[2], "<i4") for r in rows]),
    )


def test_mop_across_servers_equals_plain_keras_in_the_same_order(undisturbed: Deployment) -> None:
    """P3 across servers: the weights of a config whose state hopped coordinator -> node1
    -> node2 (in its order) equal one Keras process on the same partitions in that order."""
    import keras

    d = undisturbed
    cid, params, seed = fetch_all(
        d.dsn, "select config_id, params, seed from cerebro.configs order by config_id limit 1"
    )[0]
    order = fetch_all(
        d.dsn,
        "select partition from cerebro.units where config_id = %s and kind = 'train' and "
        "outcome = 'ok' order by epoch, ended_at",
        [cid],
    )
    parts = {0: _partition(d.dsn, 0)}
    parts.update({j: _partition(d.node_dsn(f"node{j}"), j) for j in (1, 2)})
    keras.utils.set_random_seed(seed)
    dataset = {"feature_shape": [2], "task": "classification", "num_classes": 2,
               "classes": ["in", "out"]}  # fmt: skip
    model = mlp.build({**params, "dataset": dataset})
    model.optimizer.build(model.trainable_variables)
    for (p,) in order:
        model.fit(*parts[p], batch_size=params["batch_size"], epochs=1, shuffle=False, verbose=0)
    mop = final_states(d.dsn)[cid]
    diff = max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(mop, model.variables))
    assert diff <= 1e-5, f"max abs weight difference {diff}"


def _assert_workload_exactly_once(dsn: str, workload_id: int) -> None:
    """Each (config, epoch) of the workload visited each train and valid partition once,
    with one metrics row per epoch trained and every config completed."""
    dup = fetch_all(
        dsn,
        "select u.config_id, u.epoch, u.partition, u.kind from cerebro.units u join "
        "cerebro.configs c using (config_id) where c.workload_id = %s and u.outcome = 'ok' "
        "group by 1, 2, 3, 4 having count(*) <> 1",
        [workload_id],
    )
    assert dup == []
    per = fetch_all(
        dsn,
        "select u.config_id, u.epoch, u.kind, array_agg(u.partition order by u.partition) "
        "from cerebro.units u join cerebro.configs c using (config_id) "
        "where c.workload_id = %s and u.outcome = 'ok' group by 1, 2, 3",
        [workload_id],
    )
    trained, metrics, epochs, undone = fetch_all(
        dsn,
        "select sum(c.epoch - coalesce(c.clone_epoch, 0)), "
        "(select count(*) from cerebro.metrics m join cerebro.configs k using (config_id) "
        "  where k.workload_id = %(w)s), "
        "(select count(distinct (m.config_id, m.epoch)) from cerebro.metrics m "
        "  join cerebro.configs k using (config_id) where k.workload_id = %(w)s), "
        "count(*) filter (where c.status <> 'completed') "
        "from cerebro.configs c where c.workload_id = %(w)s",
        {"w": workload_id},
    )[0]
    assert undone == 0
    assert len(per) == trained * 2 and all(parts == [0, 1, 2] for *_, parts in per)
    assert metrics == epochs == trained


def _wait_completed(dsn: str, workload_id: int, timeout: float) -> None:
    wait_for(
        dsn,
        "select count(*) from cerebro.configs where workload_id = %s and status <> 'completed'",
        lambda n: n == 0,
        timeout=timeout,
        params=[workload_id],
    )


def test_node_stopped_mid_run_pauses_its_partition_and_the_run_completes(
    undisturbed: Deployment,
) -> None:
    """node1 is stopped while units run: what needs it waits (visible in progress and
    node_health), work on the other servers goes on (a workload whose data is on the
    coordinator and node2 trains to the end meanwhile), and after node1 comes back the
    workload completes with exactly-once epochs."""
    d = undisturbed
    wid = d.launch("failover", epochs=3)
    ok_on = (
        "select count(*) from cerebro.units u join cerebro.configs c using (config_id) "
        "where c.workload_id = %s and u.outcome = 'ok' and u.partition = any(%s)"
    )
    daemon = scheduler(d.dsn)
    node1 = d.servers["node1"]
    try:
        wait_for(d.dsn, ok_on, lambda n: n >= 2, timeout=300, params=[wid, [1]])
        node1.stop()
        waiting = wait_for(
            d.dsn,
            "select waiting_on from cerebro.progress where workload_id = %s",
            lambda w: w == ["node1"],
            params=[wid],
        )
        assert waiting == ["node1"]
        health = fetch_all(d.dsn, "select healthy, last_error from cerebro.node_health "
                           "where name = 'node1'")[0]  # fmt: skip
        assert health[0] is False and health[1]
        with psycopg.connect(d.dsn, autocommit=True) as c:
            lines = database_lines(c)
        assert any(line.startswith("node:      node1 (") and "DOWN" in line for line in lines)
        assert "waiting:   workload failover waits for node(s) node1" in "\n".join(lines)
        # the other servers go on while node1 is away
        side = d.launch("beside", epochs=1, space=SMALL, data="2")
        _wait_completed(d.dsn, side, timeout=300)
        assert not node1.is_running()
        assert fetch_all(
            d.dsn, "select waiting_on from cerebro.progress where workload_id = %s", [wid]
        ) == [(["node1"],)]
        node1.start()
        node1.wait_ready()
        _wait_completed(d.dsn, wid, timeout=600)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        if not node1.is_running():
            node1.start()
    _assert_workload_exactly_once(d.dsn, wid)
    # the only units that did not count waited for node1 (booked 'cancelled', never
    # counted against their config); no config failed, none was lost
    others = fetch_all(
        d.dsn,
        "select u.outcome, u.error from cerebro.units u join cerebro.configs c "
        "using (config_id) where c.workload_id = %s and u.outcome <> 'ok' and not "
        "(u.outcome = 'cancelled' and u.error like 'node node1 is unreachable%%')",
        [wid],
    )
    assert others == []
    failed = fetch_all(
        d.dsn, "select count(*) from cerebro.configs where workload_id = %s and "
        "status = 'failed'", [wid]
    )[0][0]  # fmt: skip
    assert failed == 0
    assert fetch_all(
        d.dsn, "select waiting_on, completed from cerebro.progress where workload_id = %s", [wid]
    ) == [(None, 4)]
    assert fetch_all(d.dsn, "select healthy from cerebro.node_health where name = 'node1'") == [
        (True,)
    ]


def test_steering_across_servers(undisturbed: Deployment) -> None:
    """stop, insert, resume and clone-with-weights behave as on one server."""
    d = undisturbed
    wid = d.launch("steered", epochs=1, space=SMALL)
    with psycopg.connect(d.dsn, autocommit=True) as c:
        a, b = (r[0] for r in c.execute(
            "select config_id from cerebro.configs where workload_id = %s order by 1", [wid]
        ))  # fmt: skip
        c.execute("update cerebro.configs set status = 'stopped' where config_id = %s", [a])
        added = c.execute(
            "insert into cerebro.configs (workload_id, params) values (%s, %s) "
            "returning config_id",
            [wid, json.dumps({"learning_rate": 0.001, "hidden": [16], "batch_size": 32})],
        ).fetchone()[0]
    run_to_end(d.dsn)
    status = dict(fetch_all(
        d.dsn, "select config_id, status from cerebro.configs where workload_id = %s", [wid]
    ))  # fmt: skip
    assert status == {a: "stopped", b: "completed", added: "completed"}
    assert fetch_all(d.dsn, "select count(*) from cerebro.units where config_id = %s", [a]) == [
        (0,)
    ]
    with psycopg.connect(d.dsn, autocommit=True) as c:
        c.execute("update cerebro.configs set status = 'active' where config_id = %s", [a])
        clone = c.execute(
            "select cerebro.clone(%s, '{\"learning_rate\": 0.0005}', max_epochs => 2)", [b]
        ).fetchone()[0]
    run_to_end(d.dsn)
    _assert_workload_exactly_once(d.dsn, wid)
    epochs = dict(fetch_all(
        d.dsn, "select config_id, epoch from cerebro.configs where workload_id = %s", [wid]
    ))  # fmt: skip
    assert epochs == {a: 1, b: 1, added: 1, clone: 2}
    # the clone continued from its parent's weights: its epoch-2 start state came from the
    # parent's checkpoint, and its curve goes on from the parent's loss
    first = fetch_all(
        d.dsn,
        "select (result->>'hop_in_bytes')::bigint, partition from cerebro.units "
        "where config_id = %s and kind = 'train' and outcome = 'ok' order by unit_id limit 1",
        [clone],
    )[0]
    assert first[1] == 0 or first[0] > 1000
    losses = fetch_all(
        d.dsn,
        "select config_id, train_loss from cerebro.metrics where config_id in (%s, %s) "
        "order by config_id, epoch",
        [b, clone],
    )
    assert [c for c, _ in losses] == [b, clone]


def test_a_dropped_dataset_leaves_the_nodes(undisturbed: Deployment) -> None:
    """Shipping happens when the scheduler runs; dropping the dataset on the coordinator
    removes it from its node at the scheduler's next housekeeping."""
    d = undisturbed
    on_node2 = "select count(*) from cerebro.datasets where name = 'gone'"
    with psycopg.connect(d.dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.load_dataset('gone', 'src', array['a', 'b'], 'lbl', "
            "nodes => array['node2'])"
        )
    assert fetch_all(d.dsn, "select node, placed from cerebro.dataset_partitions "
                     "where dataset = 'gone'") == [("node2", False)]  # fmt: skip
    run_to_end(d.dsn)
    assert fetch_all(d.dsn, "select node, placed from cerebro.dataset_partitions "
                     "where dataset = 'gone'") == [("node2", True)]  # fmt: skip
    assert fetch_all(d.node_dsn("node2"), on_node2) == [(1,)]
    with psycopg.connect(d.dsn, autocommit=True) as c:
        c.execute("select cerebro.drop_dataset('gone')")
    run_to_end(d.dsn)
    assert fetch_all(d.node_dsn("node2"), on_node2) == [(0,)]
    # the other datasets stay where they are
    assert fetch_all(d.node_dsn("node2"), "select count(*) from cerebro.datasets") == [(4,)]
