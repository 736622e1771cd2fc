"""Nothing grows without bound: retention of units and events, keep_checkpoints and
cerebro.prune_checkpoints, and the daemon's one entry point (``housekeep``).

One database: hk_alice (a plain ``cerebro_user``) trains three workloads on her own data with
every state chunked (so removing a checkpoint must remove its chunk rows too); hk_bob is
another plain user, hk_carol an admin. Housekeeping runs as the scheduler's login. Old rows
are made old by setting their timestamps back as the superuser; nothing waits on a clock.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cerebro.scheduler.housekeeping import KINDS, counts, housekeep
from helpers import fresh_database, run_to_end, scheduler_dsn, wait_for

ROLES = {"hk_alice": "cerebro_user", "hk_bob": "cerebro_user", "hk_carol": "cerebro_admin"}
GRID = {"learning_rate": {"choice": [0.01, 0.003]}}
PARAMS = {"hidden": [8], "batch_size": 32}


def as_role(dsn: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def run(dsn: str, role: str | None, statement: str, args: Any = None) -> list[tuple]:
    """One statement as ``role`` (None: the superuser), autocommit."""
    with psycopg.connect(dsn if role is None else as_role(dsn, role), autocommit=True) as c:
        cur = c.execute(statement, args)
        return cur.fetchall() if cur.description else [(cur.rowcount,)]


def one(dsn: str, role: str | None, statement: str, args: Any = None) -> Any:
    return run(dsn, role, statement, args)[0][0]


def housekeep_as_scheduler(dsn: str) -> dict[str, int]:
    with psycopg.connect(scheduler_dsn(dsn), autocommit=True) as c:
        return housekeep(c)


def launch(dsn: str, name: str, **kw: Any) -> int:
    args = {
        "space": json.dumps(GRID),
        "max_epochs": 4,
        "objective": "valid_loss",
        "options": "{}",
        **kw,
    }
    return one(
        dsn,
        "hk_alice",
        "select cerebro.launch(%(name)s, 'mlp', 'hk_tr', 'hk_va', 'grid', %(space)s, "
        "max_epochs => %(max_epochs)s, objective => %(objective)s, seed => 11, "
        "params => %(params)s, options => %(options)s)",
        {"name": name, "params": json.dumps(PARAMS), **args},
    )


def configs(dsn: str, workload: str) -> list[int]:
    return [
        r[0]
        for r in run(
            dsn,
            None,
            "select config_id from cerebro.configs c join cerebro.workloads w "
            "using (workload_id) where w.name = %s order by 1",
            [workload],
        )
    ]


def kept(dsn: str, config_id: int) -> set[int]:
    rows = run(
        dsn, None, "select epoch from cerebro.checkpoints where config_id = %s", [config_id]
    )
    return {r[0] for r in rows}


def expected_kept(dsn: str, config_id: int, keep: int) -> set[int]:
    """The rule, computed in Python from the metrics: the newest ``keep``, the latest and the
    best by the workload's objective (ties: the later epoch)."""
    objective, direction = run(
        dsn,
        None,
        "select w.objective, w.objective_direction from cerebro.configs c "
        "join cerebro.workloads w using (workload_id) where c.config_id = %s",
        [config_id],
    )[0]
    values = dict(
        run(
            dsn,
            None,
            "select m.epoch, cerebro.objective_value(m, %s) from cerebro.metrics m "
            "where m.config_id = %s",
            [objective, config_id],
        )
    )
    epochs = sorted(kept(dsn, config_id))
    sign = -1.0 if direction == "max" else 1.0
    scored = [(sign * values[e], -e) for e in epochs if values.get(e) is not None]
    best = {-min(scored)[1]} if scored else set()
    return set(epochs[-keep:]) | best


def blobs(dsn: str, config_id: int, epochs: set[int]) -> list[bytes]:
    rows = run(
        dsn,
        None,
        "select cerebro._chunk_blob(state) from cerebro.checkpoints "
        "where config_id = %s and epoch = any(%s)",
        [config_id, sorted(epochs)],
    )
    return [bytes(r[0]) for r in rows]


def chunk_rows(dsn: str, blob_ids: list[bytes]) -> int:
    return one(
        dsn, None, "select count(*) from cerebro.state_chunks where blob = any(%s)", [blob_ids]
    )


def orphan_chunks(dsn: str) -> int:
    return one(
        dsn,
        None,
        "select count(*) from cerebro.state_chunks s where not exists (select 1 from "
        "cerebro.checkpoints k where cerebro._chunk_blob(k.state) = s.blob) and not exists "
        "(select 1 from cerebro.states t where cerebro._chunk_blob(t.state) = s.blob)",
    )


@pytest.fixture(scope="module")
def world(server_dsn):
    """hk_alice's trained workloads: 'keep1' (keep_checkpoints 1), 'all' (no option), both 2
    configs x 4 epochs, and 'maxobj' (1 config x 3 epochs, objective valid_accuracy)."""
    dsn = fresh_database(server_dsn, "cerebro_test_housekeeping")
    with psycopg.connect(dsn, autocommit=True) as c:
        for role, group in ROLES.items():
            c.execute(
                "do $$ begin if not exists (select 1 from pg_roles where rolname = "
                f"'{role}') then create role {role} login; end if; end $$"
            )
            c.execute(
                sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(role))
            )
        c.execute("create schema hk_alice authorization hk_alice")
        c.execute("select setseed(0.3)")
        c.execute(
            "create table hk_alice.src as select i as id, a, b, "
            "case when a * a + b * b < 0.5 then 'in' else 'out' end as lbl "
            "from (select i, random() * 2 - 1 as a, random() * 2 - 1 as b "
            "from generate_series(1, 1200) i) s order by i"
        )
        c.execute("create view hk_alice.va_src as select * from hk_alice.src where id % 4 = 0")
        c.execute("alter table hk_alice.src owner to hk_alice")
        c.execute("alter view hk_alice.va_src owner to hk_alice")
    run(
        dsn,
        "hk_alice",
        "select cerebro.load_dataset('hk_tr', 'hk_alice.src', array['a', 'b'], 'lbl', "
        "num_partitions => 2, seed => 1)",
    )
    run(
        dsn,
        "hk_alice",
        "select cerebro.load_dataset('hk_va', 'hk_alice.va_src', like_dataset => 'hk_tr', "
        "num_partitions => 2)",
    )
    launch(dsn, "keep1", options='{"keep_checkpoints": 1}')
    launch(dsn, "all")
    launch(
        dsn,
        "maxobj",
        space=json.dumps({"learning_rate": {"choice": [0.01]}}),
        max_epochs=3,
        objective="valid_accuracy",
    )
    # every state is chunked: a removed checkpoint's chunk rows must go with it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEREBRO_STATE_INLINE_MAX", "100")
        mp.setenv("CEREBRO_STATE_CHUNK_BYTES", "700")
        # the tests below run housekeeping themselves, to see what each run removes
        mp.setenv("CEREBRO_HOUSEKEEPING_S", "0")
        run_to_end(dsn)
    return dsn


def test_counts_always_has_every_kind():
    assert counts('{"units": 3}') == {k: 3 if k == "units" else 0 for k in KINDS}
    assert counts({"checkpoints": 2, "events": None}) == {
        k: 2 if k == "checkpoints" else 0 for k in KINDS
    }


def test_keep_checkpoints_keeps_the_latest_and_the_best_and_removes_their_chunks(world):
    dsn = world
    ids = configs(dsn, "keep1")
    assert len(ids) == 2
    assert all(
        one(dsn, None, "select epoch from cerebro.configs where config_id = %s", [c]) == 4
        for c in ids
    )
    want = {c: expected_kept(dsn, c, 1) for c in ids}
    assert all(4 in w and 1 <= len(w) <= 2 for w in want.values())
    before = {c: kept(dsn, c) for c in ids}
    gone = {c: before[c] - want[c] for c in ids}
    gone_blobs = [b for c in ids for b in blobs(dsn, c, gone[c])]
    assert len(gone_blobs) == sum(len(g) for g in gone.values()) >= 4
    assert chunk_rows(dsn, gone_blobs) > 0  # chunked: the bytes live in state_chunks
    untouched = {c: kept(dsn, c) for c in configs(dsn, "all") + configs(dsn, "maxobj")}
    assert all(v == {1, 2, 3, 4} or v == {1, 2, 3} for v in untouched.values())

    removed = housekeep_as_scheduler(dsn)

    assert {c: kept(dsn, c) for c in ids} == want
    assert removed["checkpoints"] == sum(len(g) for g in gone.values())
    assert removed["checkpoint_bytes"] > 0 and removed["chunks"] > 0
    assert chunk_rows(dsn, gone_blobs) == 0
    assert orphan_chunks(dsn) == 0
    # workloads without the option keep everything
    assert {c: kept(dsn, c) for c in untouched} == untouched
    noted = run(
        dsn,
        None,
        "select config_id, epoch, keep from cerebro.pruned_checkpoints where config_id = any(%s)",
        [ids],
    )
    assert sorted(noted) == sorted((c, e, 1) for c in ids for e in gone[c])
    events = run(
        dsn,
        None,
        "select actor, detail->>'keep', (detail->>'checkpoints')::int from cerebro.events e "
        "join cerebro.workloads w using (workload_id) where w.name = 'keep1' "
        "and e.action = 'prune_checkpoints'",
    )
    assert events == [("system", "1", removed["checkpoints"])]
    # a second run finds nothing left to remove
    again = housekeep_as_scheduler(dsn)
    assert again["checkpoints"] == 0 and again["chunks"] == 0

    # a pruned epoch says so, for export, evaluate and predict; the kept ones still load
    cid = next(c for c in ids if gone[c])
    epoch = min(gone[cid])
    kept_list = ", ".join(map(str, sorted(want[cid])))
    message = (
        f"config {cid}: checkpoint of epoch {epoch} was pruned (keep_checkpoints = 1); "
        f"epochs kept: {kept_list}"
    )
    for statement in (
        "select cerebro.export_model(%s, epoch => %s)",
        "select cerebro.evaluate(%s, 'hk_va', epoch => %s)",
        "select cerebro.predict(%s, 'hk_alice.src', 'hk_alice.scores', key => 'id', epoch => %s)",
    ):
        with pytest.raises(psycopg.Error, match=re.escape(message)):
            run(dsn, "hk_alice", statement, [cid, epoch])
    for e in want[cid]:
        blob = one(dsn, "hk_alice", "select cerebro.export_model(%s, epoch => %s)", [cid, e])
        assert bytes(blob[:2]) == b"PK"
    # an epoch that never had a checkpoint still says that
    with pytest.raises(psycopg.Error, match=f"config {cid} has no checkpoint of epoch 9"):
        run(dsn, "hk_alice", "select cerebro.export_model(%s, epoch => 9)", [cid])


def test_plain_users_neither_run_housekeeping_nor_prune_others_work(world):
    dsn = world
    for role in ("hk_alice", "hk_bob"):
        with pytest.raises(psycopg.Error, match="permission denied for function _housekeeping"):
            run(dsn, role, "select cerebro._housekeeping()")
        for table in ("units", "events"):
            with pytest.raises(psycopg.Error, match=f"permission denied for table {table}"):
                run(dsn, role, f"delete from cerebro.{table}")
        with pytest.raises(psycopg.Error, match="permission denied for table limits"):
            run(
                dsn,
                role,
                "update cerebro.limits set value = 1 where name = 'units_retention_days'",
            )
    # the scheduler may housekeep, but not delete events itself
    with psycopg.connect(scheduler_dsn(dsn), autocommit=True) as c:
        with pytest.raises(psycopg.Error, match="permission denied for table events"):
            c.execute("delete from cerebro.events")
    before = {c: kept(dsn, c) for c in configs(dsn, "all")}
    refused = "workload 'all' does not exist or is not yours to prune"
    with pytest.raises(psycopg.Error, match=refused):
        run(dsn, "hk_bob", "select cerebro.prune_checkpoints('all', 1)")
    # not even when it is shared with him for steering
    assert one(dsn, "hk_alice", "select cerebro.share('all', 'hk_bob', 'steer')") is True
    try:
        with pytest.raises(psycopg.Error, match=refused):
            run(dsn, "hk_bob", "select cerebro.prune_checkpoints('all', 1)")
    finally:
        run(dsn, "hk_alice", "select cerebro.share('all', 'hk_bob', 'none')")
    with pytest.raises(psycopg.Error, match="workload 'nope' does not exist"):
        run(dsn, "hk_alice", "select cerebro.prune_checkpoints('nope', 1)")
    with pytest.raises(psycopg.Error, match="keep must be at least 1, got 0"):
        run(dsn, "hk_alice", "select cerebro.prune_checkpoints('all', 0)")
    assert {c: kept(dsn, c) for c in before} == before
    # hk_bob sees none of alice's pruned checkpoints; she sees hers
    assert one(dsn, "hk_bob", "select count(*) from cerebro.pruned_checkpoints") == 0
    assert one(dsn, "hk_alice", "select count(*) from cerebro.pruned_checkpoints") >= 4


def test_prune_checkpoints_keeps_the_newest_n_the_latest_and_the_best(world):
    dsn = world
    c0, c1 = configs(dsn, "all")
    # make epoch 1 of c0 its best by far: it must survive any keep
    run(
        dsn,
        None,
        "update cerebro.metrics set valid_loss = 1e-9 where config_id = %s and epoch = 1",
        [c0],
    )
    want = {c: expected_kept(dsn, c, 2) for c in (c0, c1)}
    assert want[c0] == {1, 3, 4}
    n = one(dsn, "hk_alice", "select cerebro.prune_checkpoints('all', 2)")
    assert n == 8 - sum(len(w) for w in want.values())
    assert {c: kept(dsn, c) for c in (c0, c1)} == want
    assert one(dsn, "hk_alice", "select cerebro.prune_checkpoints('all', 1)") >= 1
    assert kept(dsn, c0) == {1, 4}
    assert orphan_chunks(dsn) == 0
    assert run(
        dsn,
        None,
        "select actor, (detail->>'keep')::int from cerebro.events e join cerebro.workloads w "
        "using (workload_id) where w.name = 'all' and e.action = 'prune_checkpoints' "
        "order by event_id",
    ) == [("human:hk_alice", 2), ("human:hk_alice", 1)]
    # each pruned epoch names the keep it was pruned under
    for epoch, keep in ((2, 2), (3, 1)):
        with pytest.raises(
            psycopg.Error,
            match=rf"checkpoint of epoch {epoch} was pruned \(keep_checkpoints = {keep}\); "
            "epochs kept: 1, 4",
        ):
            run(dsn, "hk_alice", "select cerebro.export_model(%s, epoch => %s)", [c0, epoch])
    assert bytes(one(dsn, "hk_alice", "select cerebro.export_model(%s, 1)", [c0])[:2]) == b"PK"
    # an admin may prune anyone's work; nothing is left to prune here
    assert one(dsn, "hk_carol", "select cerebro.prune_checkpoints('all', 1)") == 0


def test_the_best_follows_the_objectives_direction(world):
    dsn = world
    (cid,) = configs(dsn, "maxobj")
    # valid_accuracy is maximised: epoch 1 is the best, epoch 2 the worst
    run(
        dsn,
        None,
        "update cerebro.metrics set valid_metrics = jsonb_set(valid_metrics, '{accuracy}', "
        "case epoch when 1 then '1.5' else '-1' end::jsonb) where config_id = %s "
        "and epoch in (1, 2)",
        [cid],
    )
    assert one(dsn, "hk_alice", "select cerebro.prune_checkpoints('maxobj', 1)") == 1
    assert kept(dsn, cid) == {1, 3}


def test_units_go_after_the_retention_once_their_epoch_is_committed(world):
    dsn = world
    c0 = configs(dsn, "all")[0]
    epoch = one(dsn, None, "select epoch from cerebro.configs where config_id = %s", [c0])
    assert epoch == 4

    def back(days: int, where: str, args: list[Any]) -> list[int]:
        rows = run(
            dsn,
            None,
            "update cerebro.units set ended_at = now() - make_interval(days => %s), "
            "started_at = now() - make_interval(days => %s) "
            f"where config_id = %s and {where} returning unit_id",
            [days, days + 1, c0, *args],
        )
        return sorted(r[0] for r in rows)

    old = back(40, "epoch = 1", [])
    recent = back(20, "epoch = 2", [])
    assert len(old) == len(recent) == 4  # two train and two validation partitions each
    # never removed: a unit that has not ended, and one of the epoch the config is in now
    open_unit, current = (
        one(
            dsn,
            None,
            "insert into cerebro.units (config_id, epoch, partition, kind, started_at, "
            "ended_at, outcome) values (%s, %s, 0, 'train', now() - interval '400 days', "
            "%s, %s) returning unit_id",
            [c0, e, ended, outcome],
        )
        for e, ended, outcome in ((1, None, None), (epoch + 1, "2000-01-01", "lost"))
    )
    try:
        assert housekeep_as_scheduler(dsn)["units"] == len(old)
        left = {r[0] for r in run(dsn, None, "select unit_id from cerebro.units")}
        assert not left & set(old)
        assert set(recent) | {open_unit, current} <= left
        # an admin shortens the retention: the 20-day-old ones go too
        run(
            dsn,
            "hk_carol",
            "update cerebro.limits set value = 10 where name = 'units_retention_days'",
        )
        assert housekeep_as_scheduler(dsn)["units"] == len(recent)
        # 0 keeps every unit, however old
        run(
            dsn,
            "hk_carol",
            "update cerebro.limits set value = 0 where name = 'units_retention_days'",
        )
        back(1000, "ended_at is not null", [])
        assert housekeep_as_scheduler(dsn)["units"] == 0
    finally:
        run(dsn, None, "update cerebro.limits set value = 30 where name = 'units_retention_days'")
        run(dsn, None, "delete from cerebro.units where unit_id in (%s, %s)", [open_unit, current])
    left = {r[0] for r in run(dsn, None, "select unit_id from cerebro.units")}
    assert {open_unit, current} & left == set()


def test_events_go_once_their_workload_is_idle_and_old(world):
    dsn = world
    launch(dsn, "pending")  # never trained: its configs stay active

    def events_of(workload: str) -> list[int]:
        rows = run(
            dsn,
            None,
            "select event_id from cerebro.events e join cerebro.workloads w "
            "using (workload_id) where w.name = %s order by event_id",
            [workload],
        )
        return [r[0] for r in rows]

    def age(ids: list[int], days: int) -> None:
        run(
            dsn,
            None,
            "update cerebro.events set at = now() - make_interval(days => %s) "
            "where event_id = any(%s)",
            [days, ids],
        )

    pending, done = events_of("pending"), events_of("maxobj")
    assert pending and len(done) >= 3
    age(pending, 400)
    age(done[:-1], 400)
    age(done[-1:], 100)  # one recent event: the workload is not idle yet
    assert housekeep_as_scheduler(dsn)["events"] == 0
    age(done[-1:], 366)
    assert housekeep_as_scheduler(dsn)["events"] == len(done)
    assert events_of("maxobj") == []
    assert events_of("pending") == pending  # an active config keeps its workload's events
    assert run(
        dsn,
        None,
        "select actor, workload_id, (detail->>'events')::int from cerebro.events "
        "where action = 'expire_events'",
    ) == [("system", None, len(done))]
    # the audit trail of workloads the user may not see is not hers to read either
    assert (
        one(dsn, "hk_alice", "select count(*) from cerebro.events where action = 'expire_events'")
        == 0
    )
    # events_retention_days = 0 keeps every event
    try:
        run(
            dsn,
            "hk_carol",
            "update cerebro.limits set value = 0 where name = 'events_retention_days'",
        )
        run(
            dsn,
            None,
            "update cerebro.events set at = now() - interval '5000 days' "
            "where action = 'expire_events'",
        )
        assert housekeep_as_scheduler(dsn)["events"] == 0
    finally:
        run(
            dsn, None, "update cerebro.limits set value = 365 where name = 'events_retention_days'"
        )


def test_keep_checkpoints_is_a_launch_option_of_every_search(world):
    dsn = world
    for bad in ("0", '"2"', "true", "1.5"):
        with pytest.raises(
            psycopg.Error, match="option keep_checkpoints must be a positive integer"
        ):
            launch(dsn, "bad", options=f'{{"keep_checkpoints": {bad}}}')
    with pytest.raises(psycopg.Error, match="search 'grid' takes no options but keep_checkpoints"):
        launch(dsn, "bad", options='{"keep_checkpoints": 2, "eta": 3}')
    wid = launch(dsn, "grid-keep2", options='{"keep_checkpoints": 2}')
    assert one(
        dsn, None, "select options from cerebro.workloads where workload_id = %s", [wid]
    ) == {"keep_checkpoints": 2}
    wid = one(
        dsn,
        "hk_alice",
        "select cerebro.launch('tpe-keep3', 'mlp', 'hk_tr', 'hk_va', 'hyperopt', %s, "
        "num_configs => 2, options => '{\"keep_checkpoints\": 3}')",
        [json.dumps({"learning_rate": {"loguniform": [0.001, 0.1]}})],
    )
    options = one(dsn, None, "select options from cerebro.workloads where workload_id = %s", [wid])
    assert options["keep_checkpoints"] == 3 and "parallelism" in options
    # a drill-down keeps as few checkpoints as its parent, unless told otherwise
    parent = one(dsn, None, "select workload_id from cerebro.workloads where name = 'keep1'")
    space = json.dumps({"learning_rate": {"choice": [0.02]}})
    for given, want in (("{}", 1), ('{"keep_checkpoints": 3}', 3)):
        child = one(
            dsn,
            "hk_alice",
            "select cerebro.drill_down(%s, %s, options => %s)",
            [parent, space, given],
        )
        assert one(
            dsn, None, "select options from cerebro.workloads where workload_id = %s", [child]
        ) == {"keep_checkpoints": want}


def test_the_daemon_applies_keep_checkpoints_by_itself(world):
    """Nobody calls anything: the running daemon's periodic housekeeping (every
    CEREBRO_HOUSEKEEPING_S) prunes a finished workload down to what keep_checkpoints keeps."""
    dsn = world
    wid = launch(
        dsn,
        "daemon-keep1",
        space=json.dumps({"learning_rate": {"choice": [0.02]}}),
        max_epochs=3,
        options='{"keep_checkpoints": 1}',
    )
    env = {**os.environ, "CEREBRO_HOUSEKEEPING_S": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", scheduler_dsn(dsn)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        (cid,) = configs(dsn, "daemon-keep1")
        wait_for(
            dsn,
            "select status from cerebro.configs where config_id = %s",
            lambda s: s == "completed",
            params=[cid],
        )
        # from the metrics alone (the checkpoints may be pruned already): latest and best
        losses = dict(
            run(
                dsn,
                None,
                "select epoch, valid_loss from cerebro.metrics where config_id = %s",
                [cid],
            )
        )
        best = min(losses, key=lambda e: (losses[e], -e))
        want = {3, best}
        wait_for(
            dsn,
            "select array_agg(epoch order by epoch) from cerebro.checkpoints where config_id = %s",
            lambda epochs: set(epochs) == want,
            params=[cid],
        )
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=120)
    assert "housekeeping removed" in out, out
    assert one(
        dsn, None, "select count(*) from cerebro.pruned_checkpoints where config_id = %s", [cid]
    ) == 3 - len(want)
    assert wid
