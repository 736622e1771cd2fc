"""Backup: a pg_dump of a database whose workload is training, restored with pg_restore into a
new cluster, trains on exactly where the dump left off (README, "Backup: pg_dump and restore").

The dumped database lives on the test server; the new cluster is a second embedded one made
for the test (its own directory and socket) and removed at the end, also when the test fails.
The dump is taken while the daemon is frozen (SIGSTOP) in the middle of its units, so the
snapshot holds what a dump of a live server holds: open units, open transactions, configs in
the middle of an epoch. Then the original runs on to the end, and so does the restored copy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from cerebro.cluster import Cluster
from cerebro_udfs import state
from helpers import (
    DB_SUFFIX,
    ROOT,
    assert_exactly_once,
    fetch_all,
    make_db,
    run_to_end,
    scheduler,
    wait_for,
)

pytestmark = pytest.mark.slow  # trains through the scheduler daemon, twice

EPOCHS = 3
SPACE = {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.01]}}  # 2 configs
ALICE, BOB, EVE = (f"dump_{who}{DB_SUFFIX}".lower() for who in ("alice", "bob", "eve"))
OS_USER = Cluster.default().os_user  # the test server's, so the new cluster's too
RESTORE_PORT = 54339  # the new cluster listens on its own socket directory anyway
RESTORED = "restored"  # in the new cluster: a database prepared by `cerebro install`
RESTORED_EMPTY = "restored_empty"  # and an empty one: pg_restore creates the extension
REPLICA = "-c session_replication_role=replica"
TINY = """
import keras
def build(config):
    ds = config["dataset"]
    m = keras.Sequential([keras.Input(tuple(ds["feature_shape"])),
                          keras.layers.Dense(ds["num_classes"], activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m
"""
# every config has committed an epoch and one is in the middle of the next
MID_EPOCH = (
    "select coalesce(bool_and(epoch >= 1) and bool_or(partitions_done <> '{}'), false) "
    "from cerebro.configs"
)
# what changes whenever anything commits: configs' progress, units started and ended
STILL = (
    "select string_agg(config_id || ':' || epoch || ':' || partitions_done::text, ',' "
    "order by config_id) || "
    "(select '/' || count(*) || '/' || count(ended_at) from cerebro.units) from cerebro.configs"
)
# units that ended so: (unit, config, epoch, partition, kind)
UNITS = "select unit_id, config_id, epoch, partition, kind from cerebro.units where {} order by 1"
IN_FLIGHT = UNITS.format("error = 'in flight when the database was dumped'")
# what was dumped, compared row by row (timestamps included) before and after training on
ROWS = {
    "metrics": "select config_id, epoch, train_loss, valid_loss, train_metrics::text, "
    "valid_metrics::text, created_at from cerebro.metrics",
    "checkpoints": "select config_id, epoch, md5(state), created_at from cerebro.checkpoints",
    "units": "select unit_id, config_id, epoch, partition, kind, started_at, ended_at, "
    "result::text from cerebro.units where outcome = 'ok'",
    "events": "select event_id, at, actor, action, config_id, detail::text from cerebro.events",
}
# what must be equal in the dumped and the restored database
SAME = {
    "models": "select model_id, name, kind, md5(coalesce(source, '')), owner from cerebro.models",
    "limits": "select name, value from cerebro.limits",
    "owners": "select 'dataset', name, owner from cerebro.datasets union all "
    "select 'workload', name, owner from cerebro.workloads",
    "shares": "select workload_id, grantee, level, granted_by from cerebro.shares",
    "rls": "select relname, relrowsecurity from pg_class "
    "where relnamespace = 'cerebro'::regnamespace and relkind = 'r'",
    "policies": "select tablename, policyname, cmd, qual from pg_policies "
    "where schemaname = 'cerebro'",
}
SECURED = {  # the tables with row-level security (README, "Security model")
    *("datasets", "buffers", "workloads", "configs", "metrics", "checkpoints", "states"),
    *("state_chunks", "units", "events", "shares", "weights"),
}


def as_role(dsn: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def rows(dsn: str, queries: dict[str, str]) -> dict[str, set[tuple]]:
    return {k: set(fetch_all(dsn, q)) for k, q in queries.items()}


@pytest.fixture()
def new_cluster() -> Iterator[Cluster]:
    """A second embedded cluster, stopped and removed at the end whatever happened. Not under
    pytest's tmp_path: another pytest session resets that tree to 0700, which locks the
    server's OS user out of it."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="cerebro-restore-")), RESTORE_PORT, OS_USER)
    try:
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.home, ignore_errors=True)


def pg(cluster: Cluster, program: str, *args: str, check: bool = True) -> Any:
    """A PostgreSQL client program of the server's version, run as the server's OS user
    (through runuser when we are root), as the cluster runs its own."""
    return cluster._as_server_user([str(cluster.bindir / program), *args], check=check)


def world(server_dsn: str) -> str:
    """alice's datasets and 2-config workload (shared with bob for reading), a raised cap and
    a custom model registered by the superuser."""
    dsn = make_db(server_dsn, "cerebro_test_dump")
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in (ALICE, BOB, EVE):
            if not c.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
                c.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
            c.execute(sql.SQL("grant cerebro_user to {}").format(sql.Identifier(role)))
        c.execute(sql.SQL("grant select on src, va_src to {}").format(sql.Identifier(ALICE)))
        c.execute("update cerebro.limits set value = 4321 where name = 'max_configs'")
        c.execute("select cerebro.register_model('tiny', source => %s)", [TINY])
    with psycopg.connect(as_role(dsn, ALICE), autocommit=True) as c:
        c.execute(
            "select cerebro.load_dataset('a_tr', 'src', array['a', 'b'], 'lbl', "
            "num_partitions => 2, seed => 1)"
        )
        c.execute(
            "select cerebro.load_dataset('a_va', 'va_src', like_dataset => 'a_tr', "
            "num_partitions => 2)"
        )
        c.execute(
            "select cerebro.launch('dumped', 'mlp', 'a_tr', 'a_va', 'grid', %s, "
            "max_epochs => %s, seed => 11, params => '{\"batch_size\": 32}')",
            [json.dumps(SPACE), EPOCHS],
        )
        c.execute("select cerebro.share('dumped', %s, 'read')", [BOB])
    return dsn


def stop(p: subprocess.Popen) -> None:
    """End the daemon (gracefully: SIGTERM), whatever state the test left it in."""
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.terminate()
    try:
        p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()


def dump_while_training(dsn: str, cluster: Cluster, out: Path) -> dict[str, Path]:
    """Train until every config has committed an epoch and one is in the middle of the next,
    freeze the daemon there, dump the database twice (with and without the unlogged states)
    and the cluster's roles, then let the original train on to the end."""
    out.mkdir()
    if os.geteuid() == 0:
        shutil.chown(out, user=cluster.os_user)
    files = {k: out / k for k in ("cerebro.dump", "nostates.dump", "roles.sql")}
    p = scheduler(dsn)
    try:
        while True:
            wait_for(dsn, MID_EPOCH, bool)
            os.kill(p.pid, signal.SIGSTOP)
            # frozen mid-flight: units in progress, transactions open; a COMMIT the daemon
            # sent just before may still land, so the dump counts only if nothing moved
            before = fetch_all(dsn, f"select ({MID_EPOCH}), ({STILL})")[0]
            pg(cluster, "pg_dump", "-Fc", "-d", dsn, "-f", str(files["cerebro.dump"]))
            nostates = ("--no-unlogged-table-data", "-f", str(files["nostates.dump"]))
            pg(cluster, "pg_dump", "-Fc", "-d", dsn, *nostates)
            if before[0] and fetch_all(dsn, STILL)[0][0] == before[1]:
                break
            os.kill(p.pid, signal.SIGCONT)
        pg(cluster, "pg_dumpall", "--roles-only", "-d", dsn, "-f", str(files["roles.sql"]))
        os.kill(p.pid, signal.SIGCONT)
        wait_for(
            dsn,
            "select count(*) from cerebro.configs where status <> 'completed'",
            lambda n: n == 0,
            timeout=300,
        )
    finally:
        stop(p)
    return files


def restore(cluster: Cluster, files: dict[str, Path]) -> tuple[str, str]:
    """The README's recipe: roles first (what pg_dumpall --roles-only wrote; `postgres`
    exists already, psql says so and goes on), a database prepared by `cerebro install`,
    pg_restore as replica in one transaction. And the dump without states into an empty
    database (pg_restore creates the extension; cerebro_python.path is there already)."""
    admin = cluster.conninfo("postgres")
    pg(cluster, "psql", "-X", "-q", "-d", admin, "-f", str(files["roles.sql"]))
    with psycopg.connect(admin, autocommit=True) as c:
        for db in (RESTORED, RESTORED_EMPTY):
            c.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
    dsn, empty = cluster.conninfo(RESTORED), cluster.conninfo(RESTORED_EMPTY)
    subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "install", "--dsn", dsn],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    for target, dump in ((dsn, "cerebro.dump"), (empty, "nostates.dump")):
        replica = psycopg.conninfo.make_conninfo(target, options=REPLICA)
        pg(cluster, "pg_restore", "--single-transaction", "-d", replica, str(files[dump]))
    return dsn, empty


def assert_restored_as_dumped(dsn: str, restored: str, empty: str) -> dict[str, set[tuple]]:
    """The restored rows are the dumped ones: the epochs committed before the dump, the units,
    events, owners, shares, the raised cap, the custom model and the roster's ids; row-level
    security is on. Returns what was dumped."""
    dumped = rows(restored, ROWS)
    assert dumped == rows(empty, ROWS)
    original = rows(dsn, ROWS)  # trained on since: the dumped rows are still there, unchanged
    for k in ROWS:
        assert dumped[k] <= original[k], k
    configs = fetch_all(restored, "select config_id, epoch from cerebro.configs order by 1")
    assert len(configs) == 2 and all(1 <= e < EPOCHS for _, e in configs), configs
    assert {(c, e) for c, e, *_ in dumped["metrics"]} == {
        (c, e) for c, last in configs for e in range(1, last + 1)
    }
    # a config in the middle of an epoch, with the state of its last sub-epoch
    assert (
        fetch_all(
            restored,
            "select count(*) from cerebro.configs c join cerebro.states s using (config_id) "
            "where c.partitions_done <> '{}' and s.epoch = c.epoch + 1 "
            "and s.partitions_done = c.partitions_done",
        )[0][0]
        >= 1
    )
    assert fetch_all(empty, "select count(*) from cerebro.states") == [(0,)]
    # units in flight at the dump never commit here: the restore booked them lost (in the
    # original they went on to finish)
    assert fetch_all(restored, UNITS.format("ended_at is null")) == []
    in_flight = fetch_all(restored, IN_FLIGHT)
    assert in_flight == fetch_all(empty, IN_FLIGHT)
    assert set(in_flight) <= set(fetch_all(dsn, UNITS.format("outcome = 'ok'")))
    same = rows(dsn, SAME)
    assert rows(restored, SAME) == same == rows(empty, SAME)
    assert ("max_configs", 4321.0) in same["limits"]
    assert {r[1] for r in same["models"]} >= {"mlp", "resnet50", "tiny"}
    assert {("a_tr", ALICE), ("a_va", ALICE), ("dumped", ALICE)} <= {r[1:] for r in same["owners"]}
    assert {t for t, on in same["rls"] if on} >= SECURED
    assert fetch_all(restored, "select count(*) from cerebro.schedulers") == [(0,)]
    return dumped


def assert_access_survived(restored: str) -> None:
    """alice sees her work, bob the workload she shared with him, eve nothing of it."""
    seen = (
        "select (select count(*) from cerebro.workloads), "
        "(select count(*) from cerebro.configs), (select count(*) from cerebro.metrics)"
    )
    alice = fetch_all(as_role(restored, ALICE), seen)[0]
    assert alice[:2] == (1, 2) and alice[2] >= 2
    assert fetch_all(as_role(restored, BOB), seen) == [alice]
    assert fetch_all(as_role(restored, EVE), seen) == [(0, 0, 0)]


def final_weights(dsn: str) -> dict[int, list[np.ndarray]]:
    """Every model and optimizer variable of each config's last checkpoint."""
    out = {}
    q = "select config_id, state from cerebro.checkpoints where epoch = %s"
    for cid, blob in fetch_all(dsn, q, [EPOCHS]):
        s = state.decode(blob)
        out[cid] = [a for _, a in s.model + s.optimizer]
    return out


def assert_trained_on(dsn: str, db: str, dumped: dict[str, set[tuple]]) -> int:
    """Train the restored copy to the end: every config completes all its epochs, one
    metrics row each, no committed epoch runs again, ids go on after the dumped ones, and
    the final weights are the original's, which never stopped. Returns how many epochs
    started over from their checkpoint."""
    run_to_end(db)
    assert_exactly_once(db, epochs=EPOCHS)
    after = rows(db, ROWS)
    for k in ("metrics", "checkpoints", "events"):
        assert dumped[k] <= after[k], k
    restarted = fetch_all(
        db,
        "select config_id, (detail->>'epoch')::int from cerebro.events "
        "where action = 'epoch_restarted'",
    )
    # the ok units of the epochs that did not start over are the dumped ones
    assert {u for u in dumped["units"] if u[1:3] not in restarted} <= after["units"]
    new_units = {u for u, *_ in after["units"] - dumped["units"]}
    assert min(new_units) > max(u for u, *_ in dumped["units"])  # the sequences came along
    a, b = final_weights(dsn), final_weights(db)
    assert a.keys() == b.keys() and len(a) == 2
    for cid in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[cid], b[cid], strict=True)), cid
    return len(restarted)


def test_a_dump_restored_into_a_new_cluster_trains_on_where_it_left_off(
    server_dsn: str, new_cluster: Cluster
) -> None:
    dsn = world(server_dsn)
    files = dump_while_training(dsn, new_cluster, new_cluster.home / "dump")
    restored, empty = restore(new_cluster, files)
    dumped = assert_restored_as_dumped(dsn, restored, empty)
    assert_access_survived(restored)
    mid_epoch = fetch_all(
        restored, "select count(*) from cerebro.configs where partitions_done <> '{}'"
    )[0][0]
    # with the sub-epoch states, every epoch goes on from the dumped state of its last
    # sub-epoch; without them, each epoch in progress starts over from its checkpoint
    assert assert_trained_on(dsn, restored, dumped) == 0
    assert assert_trained_on(dsn, empty, dumped) == mid_epoch >= 1


def test_every_catalog_table_of_user_data_is_dumped(dsn: str) -> None:
    """pg_dump skips an extension's tables unless they are marked: every table of schema
    cerebro holds user data and must be (only the schedulers' runtime rows are not)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        tables = {
            r[0]
            for r in c.execute(
                "select relname from pg_class where relnamespace = 'cerebro'::regnamespace "
                "and relkind in ('r', 'p')"
            )
        }
        marked = {
            r[0]
            for r in c.execute(
                "select c.relname from pg_extension e, unnest(e.extconfig) t(oid) "
                "join pg_class c on c.oid = t.oid where e.extname = 'cerebro' "
                "and c.relkind in ('r', 'p')"
            )
        }
    assert len(tables) >= 15
    assert tables - marked == {"schedulers"}
