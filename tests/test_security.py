"""Safe to share: hostile and cross-tenant statements against a real server, as real roles.

alice and bob are plain ``cerebro_user`` logins, ``bi`` is a ``cerebro_reader`` (a BI tool),
``carol`` a ``cerebro_admin``; the scheduler runs as ``cerebro_scheduler``. Every hostile
statement is asserted to be refused with its exact message (or to touch 0 rows under
row-level security), to leave the catalog unchanged, and — for attempts to run code — to
create no file on the server.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from helpers import fresh_database, run_to_end

ROLES = {
    "alice": "cerebro_user",
    "bob": "cerebro_user",
    "bi": "cerebro_reader",
    "carol": "cerebro_admin",
}
TABLES = [
    *("models", "datasets", "buffers", "workloads", "configs", "metrics", "checkpoints"),
    *("states", "state_chunks", "units", "events", "shares", "limits", "weights"),
]
PWNED = Path("/tmp") / f"cerebro-pwned-{uuid.uuid4().hex}"
SPEC = json.dumps(
    {
        "kind": "custom",
        "name": "x",
        "entry_point": "build",
        "source": f"open({str(PWNED)!r}, 'w').write('owned')\ndef build(c): pass",
    }
)


def as_role(dsn: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def snapshot(dsn: str) -> dict[str, str]:
    """A digest of every catalog table (as the superuser, who sees every row)."""
    out = {}
    with psycopg.connect(dsn, autocommit=True) as c:
        for t in TABLES:
            row = c.execute(
                sql.SQL(
                    "select md5(coalesce(string_agg(md5(t::text), ',' order by md5(t::text)),"
                    " '')) from cerebro.{} t"
                ).format(sql.Identifier(t))
            ).fetchone()
            assert row is not None
            out[t] = row[0]
    return out


def run(dsn: str, role: str, statement: str, args: Any = None) -> list[tuple]:
    with psycopg.connect(as_role(dsn, role), autocommit=True) as c:
        c.execute("set search_path = public")
        cur = c.execute(statement, args)
        return cur.fetchall() if cur.description else [(cur.rowcount,)]


@pytest.fixture(scope="module")
def world(server_dsn):
    """alice's trained workload 'a1' on her own data; bob's own workload 'b1'."""
    dsn = fresh_database(server_dsn, "cerebro_test_security")
    with psycopg.connect(dsn, autocommit=True) as c:
        for role, group in ROLES.items():
            c.execute(
                "do $$ begin if not exists (select 1 from pg_roles where rolname = "
                f"'{role}') then create role {role} login; end if; end $$"
            )
            c.execute(
                sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(role))
            )
        for owner in ("alice", "bob"):
            c.execute(sql.SQL("create schema {0} authorization {0}").format(sql.Identifier(owner)))
            c.execute("select setseed(0.2)")
            c.execute(
                sql.SQL(
                    "create table {}.t as select i as id, random() * 2 - 1 as a, "
                    "random() * 2 - 1 as b, (i % 2) as y from generate_series(1, 600) i"
                ).format(sql.Identifier(owner))
            )
            c.execute(sql.SQL("alter table {0}.t owner to {0}").format(sql.Identifier(owner)))
    for owner, wname in (("alice", "a1"), ("bob", "b1")):
        run(
            dsn,
            owner,
            f"select cerebro.load_dataset('{owner}_train', '{owner}.t', array['a', 'b'], 'y', "
            "num_partitions => 2)",
        )
        run(
            dsn,
            owner,
            f"select cerebro.launch('{wname}', 'mlp', '{owner}_train', search => 'grid', "
            """space => '{"learning_rate": {"choice": [0.01, 0.02]}}', max_epochs => 1, """
            "objective => 'train_loss')",
        )
    run_to_end(dsn)
    ids = {}
    for wname in ("a1", "b1"):
        rows = run(
            dsn,
            "carol",
            "select c.config_id from cerebro.configs c join cerebro.workloads w "
            "using (workload_id) where w.name = %s order by 1",
            [wname],
        )
        ids[wname] = [r[0] for r in rows]
    ids["a1_wid"] = run(dsn, "carol", "select workload_id from cerebro.workloads where name='a1'")[
        0
    ][0]
    return dsn, ids


def test_the_scheduler_trained_everything_without_superuser(world):
    dsn, _ = world
    rows = run(
        dsn,
        "carol",
        "select count(*), count(*) filter (where status = 'completed') from cerebro.configs",
    )
    assert rows == [(4, 4)]
    assert run(dsn, "carol", "select count(*) from cerebro.checkpoints where epoch = 1") == [(4,)]
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "select rolsuper, rolbypassrls from pg_roles where rolname = 'cerebro_scheduler'"
        ).fetchone()
    assert row == (False, True)


# (role, statement, expected): expected is an error message prefix, or an int = rows seen or
# changed (0 under row-level security)
A1 = "(select workload_id from cerebro.workloads where name = 'a1')"
HOSTILE: list[tuple[str, str, str | int]] = [
    # -- code execution through the aggregates and internal helpers
    (
        "bob",
        f"select cerebro.train_subepoch(null, $s${SPEC}$s$::jsonb, '{{}}'::jsonb) within group "
        "(order by 1, '\\x00'::bytea, '\\x00'::bytea, 1) from (values (1)) v",
        "permission denied for aggregate train_subepoch",
    ),
    (
        "bob",
        f"select cerebro.evaluate_partition(null, $s${SPEC}$s$::jsonb, '{{}}'::jsonb) "
        "within group (order by 1, '\\x00'::bytea, '\\x00'::bytea, 1) from (values (1)) v",
        "permission denied for aggregate evaluate_partition",
    ),
    (
        "bob",
        "select cerebro._collect(1, 0, '\\x00', '\\x00', 1)",
        "permission denied for function _collect",
    ),
    (
        "bob",
        f"select cerebro._train_final(1, null, $s${SPEC}$s$::jsonb, '{{}}'::jsonb)",
        "permission denied for function _train_final",
    ),
    (
        "bob",
        f"select cerebro._eval_final(1, null, $s${SPEC}$s$::jsonb, '{{}}'::jsonb)",
        "permission denied for function _eval_final",
    ),
    (
        "bob",
        "select cerebro._stash_chunk('\\x00', 0, '\\x00', 1)",
        "permission denied for function _stash_chunk",
    ),
    (
        "bob",
        "select * from cerebro._unstash_chunks('\\x00')",
        "permission denied for function _unstash_chunks",
    ),
    ("bob", "select cerebro._stash_state('\\x00')", "permission denied for function _stash_state"),
    (
        "bob",
        "select cerebro.register_model('evil', $py$import os\ndef build(c): pass$py$)",
        "permission denied for function register_model",
    ),
    ("bob", "select cerebro.model_spec('mlp')", "permission denied for function model_spec"),
    (
        "bob",
        "select cerebro.run_subepoch('mlp', 'alice_train', 0)",
        "permission denied for function run_subepoch",
    ),
    (
        "bob",
        "select cerebro.run_evaluation('mlp', 'alice_train', '\\x00')",
        "permission denied for function run_evaluation",
    ),
    (
        "bob",
        "select cerebro.subepoch_config('mlp', 'alice_train')",
        "permission denied for function subepoch_config",
    ),
    ("bob", f"select cerebro.automl_step({A1})", "permission denied for function automl_step"),
    ("bob", "select cerebro._on_epoch(1, 1)", "permission denied for function _on_epoch"),
    ("bob", "select cerebro.cache_info()", "permission denied for function cache_info"),
    (
        "bob",
        "select cerebro._drop_unreferenced_chunks()",
        "permission denied for function _drop_unreferenced_chunks",
    ),
    (
        "bob",
        "update cerebro.workloads set search_state = '\\x80049500'::bytea where name = 'b1'",
        "cerebro: you may change a workload's status and priority, not search_state",
    ),
    # -- forging the actor and the audit trail
    (
        "alice",
        "set cerebro.actor = 'system'; update cerebro.configs set epoch = 99 "
        f"where workload_id = {A1}",
        "cerebro: you may change a config's status, max_epochs and priority, not epoch",
    ),
    (
        "alice",
        "set cerebro.actor = 'system'; update cerebro.configs set status = 'failed' "
        f"where workload_id = {A1}",
        "cerebro: config",  # ... cannot go from completed to failed
    ),
    (
        "alice",
        "insert into cerebro.events (actor, action) values ('human:bob', 'stop')",
        "permission denied for table events",
    ),
    ("alice", "update cerebro.events set actor = 'system'", "permission denied for table events"),
    ("alice", "delete from cerebro.events", "permission denied for table events"),
    ("alice", "truncate cerebro.events", "permission denied for table events"),
    # -- reading another user's work
    (
        "bob",
        "select count(*) from cerebro.buffers where dataset_id not in (select dataset_id "
        "from cerebro.datasets where owner = 'bob')",
        0,
    ),
    ("bob", "select count(*) from cerebro.datasets where name = 'alice_train'", 0),
    ("bob", f"select count(*) from cerebro.workloads where workload_id = {A1}", 0),
    (
        "bob",
        "select count(*) from cerebro.configs c join cerebro.workloads w using "
        "(workload_id) where w.owner = 'alice'",
        0,
    ),
    (
        "bob",
        "select count(*) from cerebro.checkpoints k where not exists (select 1 from "
        "cerebro.configs c join cerebro.workloads w using (workload_id) where c.config_id = "
        "k.config_id and w.owner = 'bob')",
        0,
    ),
    (
        "bob",
        "select count(*) from cerebro.metrics m where m.config_id not in (select "
        "config_id from cerebro.configs)",
        0,
    ),
    ("bob", "select count(*) from cerebro.events where actor = 'human:alice'", 0),
    (
        "bob",
        "select count(*) from cerebro.units u where u.config_id not in (select config_id "
        "from cerebro.configs)",
        0,
    ),
    ("bob", "select * from cerebro.states", "permission denied for table states"),
    ("bob", "select count(*) from cerebro.state_chunks", 0),
    ("bob", "select count(*) from cerebro.leaderboard where workload = 'a1'", 0),
    ("bob", "select count(*) from cerebro.learning_curves where workload = 'a1'", 0),
    ("bob", "select count(*) from cerebro.progress where workload = 'a1'", 0),
    ("bob", "select count(*) from cerebro.dataset_partitions where dataset = 'alice_train'", 0),
    (
        "bob",
        f"select count(*) from cerebro.history((select min(config_id) from cerebro.configs "
        f"where workload_id = {A1}))",
        0,
    ),
    ("bob", "select count(*) from cerebro.shares", 0),
    # -- changing another user's work
    ("bob", "update cerebro.configs set status = 'stopped' where workload_id = {a1}", "UPDATE-0"),
    ("bob", "update cerebro.workloads set priority = 5 where name = 'a1'", "UPDATE-0"),
    (
        "bob",
        "update cerebro.datasets set features = '[\"(select 1)\"]'",
        "permission denied for table datasets",
    ),
    ("bob", "delete from cerebro.datasets where name = 'alice_train'", "DELETE-0"),
    ("bob", "delete from cerebro.buffers", "permission denied for table buffers"),
    (
        "bob",
        "insert into cerebro.configs (workload_id, params) values ({a1}, '{}')",
        "cerebro: workload {a1} does not exist",
    ),
    (
        "bob",
        "insert into cerebro.buffers select 1, 0, 99, 1, '\\x00', '\\x00'",
        "new row violates row-level security policy",
    ),
    (
        "bob",
        "insert into cerebro.workloads (name, model_id, train_dataset) values ('x', 1, 1)",
        "permission denied for table workloads",
    ),
    (
        "bob",
        "insert into cerebro.models (name, kind, entry_point, source) values "
        "('evil', 'custom', 'build', 'import os')",
        "permission denied for table models",
    ),
    (
        "bob",
        "insert into cerebro.shares values (1, 'bob', 'steer')",
        "permission denied for table shares",
    ),
    ("bob", "update cerebro.limits set value = 1e9", "permission denied for table limits"),
    (
        "bob",
        "insert into cerebro.checkpoints select config_id, 0, state from cerebro.checkpoints",
        "permission denied for table checkpoints",
    ),
    ("bob", "select cerebro.clone({a1_0})", "cerebro: config {a1_0} does not exist"),
    (
        "bob",
        "select cerebro.stop({a1_0}, immediate => true)",
        "cerebro: config {a1_0} does not exist",
    ),
    ("bob", "select cerebro.resume({a1_0})", "cerebro: config {a1_0} does not exist"),
    ("bob", "select cerebro.drop_workload('a1')", "cerebro: workload 'a1' does not exist"),
    (
        "bob",
        "select cerebro.drop_dataset('alice_train')",
        "cerebro: dataset 'alice_train' does not exist",
    ),
    (
        "bob",
        "select cerebro.evaluate({a1_0}, 'bob_train')",
        "cerebro: config {a1_0} does not exist",
    ),
    (
        "bob",
        "select cerebro.predict({a1_0}, 'bob.t', 'bob.out')",
        "cerebro: config {a1_0} does not exist",
    ),
    ("bob", "select cerebro.export_model({a1_0})", "cerebro: config {a1_0} does not exist"),
    (
        "bob",
        "select cerebro.launch('b2', 'mlp', 'alice_train', objective => 'train_loss', "
        """space => '{"learning_rate": {"choice": [0.1]}}')""",
        "cerebro: training dataset 'alice_train' does not exist",
    ),
    (
        "bob",
        "select cerebro.load_dataset('b2', 'alice.t', array['a'], 'y')",
        "permission denied for schema alice",
    ),
    (
        "bob",
        "select cerebro.load_dataset('b2', 'bob.t', like_dataset => 'alice_train')",
        "cerebro: like_dataset 'alice_train' does not exist",
    ),
    (
        "bob",
        """select cerebro.drill_down({a1}, '{"learning_rate": {"choice": [0.5]}}')""",
        "cerebro: workload {a1} does not exist",
    ),
    (
        "bob",
        "select cerebro.share('a1', 'bob', 'steer')",
        "cerebro: workload 'a1' does not exist or is not yours to share",
    ),
    ("bob", "select cerebro.import_petastorm('p', 'file:///etc')", "cerebro: "),
    # -- columns a user may not change on their own rows
    (
        "alice",
        "update cerebro.configs set params = '{}' where config_id = {a1_0}",
        "cerebro: config {a1_0} params cannot change once added",
    ),
    (
        "alice",
        "update cerebro.configs set parent_config = {a1_1} where config_id = {a1_0}",
        "cerebro: you may change a config's status, max_epochs and priority, not parent_config",
    ),
    (
        "alice",
        "update cerebro.configs set clone_epoch = 1 where config_id = {a1_0}",
        "cerebro: you may change a config's status, max_epochs and priority, not clone_epoch",
    ),
    (
        "alice",
        "update cerebro.configs set source = 'clone' where config_id = {a1_0}",
        "cerebro: you may change a config's status, max_epochs and priority, not source",
    ),
    (
        "alice",
        "update cerebro.configs set seed = 7 where config_id = {a1_0}",
        "cerebro: you may change a config's status, max_epochs and priority, not seed",
    ),
    (
        "alice",
        "update cerebro.configs set error = 'x', lost_units = 3 where config_id = {a1_0}",
        "cerebro: you may change a config's status, max_epochs and priority, not error, "
        "lost_units",
    ),
    (
        "alice",
        "update cerebro.workloads set owner = 'bob' where name = 'a1'",
        "cerebro: the owner of a workloads row cannot change",
    ),
    (
        "alice",
        """update cerebro.workloads set options = '{"eta": 1}' where name = 'a1'""",
        "cerebro: you may change a workload's status and priority, not options",
    ),
    (
        "alice",
        "update cerebro.workloads set search = 'hyperopt' where name = 'a1'",
        "cerebro: you may change a workload's status and priority, not search",
    ),
    (
        "alice",
        "update cerebro.workloads set max_epochs = 50, seed = 3 where name = 'a1'",
        "cerebro: you may change a workload's status and priority, not max_epochs, seed",
    ),
    (
        "alice",
        "insert into cerebro.configs (workload_id, params, epoch) values ({a1}, '{}', 3)",
        "cerebro: a new config may set only workload_id, params, max_epochs and priority, "
        "not epoch",
    ),
    (
        "alice",
        "insert into cerebro.configs (workload_id, params, parent_config, source) values "
        "({a1}, '{}', {a1_0}, 'clone')",
        "cerebro: a new config may set only workload_id, params, max_epochs and priority, not "
        "parent_config, source",
    ),
    (
        "alice",
        "update cerebro.configs set priority = 1000000000 where config_id = {a1_0}",
        "cerebro: priority 1000000000 is over the limit max_priority = 1000000",
    ),
    (
        "alice",
        "update cerebro.configs set max_epochs = 1000000 where config_id = {a1_0}",
        "cerebro: max_epochs 1000000 is over the limit max_epochs = 100000",
    ),
    (
        "alice",
        "update cerebro.workloads set priority = -2000000 where name = 'a1'",
        "cerebro: priority 2000000 is over the limit max_priority = 1000000",
    ),
    ("alice", "update cerebro.datasets set owner = 'bob'", "permission denied for table datasets"),
    # -- server files and SQL through features
    (
        "alice",
        "select cerebro.launch('a2', 'mlp', 'alice_train', objective => 'train_loss', "
        """space => '{"learning_rate": {"choice": [0.1]}}', """
        """params => '{"weights": "/etc/hostname"}')""",
        "cerebro: weights paths are files on the server: using one needs the "
        "pg_read_server_files role",
    ),
    (
        "alice",
        "select cerebro.launch('a2', 'mlp', 'alice_train', objective => 'train_loss', "
        """space => '{"learning_rate": {"choice": [0.1]}}', """
        """params => '{"weights": "/no/such/file.keras"}')""",
        "cerebro: weights paths are files on the server: using one needs the "
        "pg_read_server_files role",
    ),
    (
        "alice",
        "insert into cerebro.configs (workload_id, params) values "
        """({a1}, '{"weights": "/etc/passwd"}')""",
        "cerebro: weights paths are files on the server: using one needs the "
        "pg_read_server_files role",
    ),
    (
        "alice",
        """select cerebro.clone({a1_0}, '{"weights": "/etc/passwd"}', fresh => true)""",
        "cerebro: weights paths are files on the server: using one needs the "
        "pg_read_server_files role",
    ),
    (
        "alice",
        "select cerebro.load_dataset('a3', 'alice.t', "
        "array['a -- */ + (select count(*) from pg_authid) /*'], 'y')",
        "cerebro: feature 'a -- */ + (select count(*) from pg_authid) /*' contains '--'",
    ),
    (
        "alice",
        "select cerebro.load_dataset('a3', 'alice.t', array['(select count(*) from pg_authid)'],"
        " 'y')",
        "cerebro: feature '(select count(*) from pg_authid)' uses",
    ),
    (
        "alice",
        "select cerebro.launch('a2', 'mlp', 'alice_train', objective => 'train_loss', "
        """space => '{"hidden": {"choice": [[100000]]}}')""",
        "cerebro: ",
    ),
    (
        "alice",
        "select cerebro.load_dataset('a3', 'alice.t', array['a'], 'y', num_partitions => 5000)",
        "cerebro: num_partitions 5000 is over the limit max_partitions = 256",
    ),
    # -- the reader: the views and nothing else
    ("bi", "select count(*) from cerebro.configs", "permission denied for table configs"),
    ("bi", "select count(*) from cerebro.buffers", "permission denied for table buffers"),
    ("bi", "select count(*) from cerebro.datasets", "permission denied for table datasets"),
    ("bi", "select count(*) from cerebro.checkpoints", "permission denied for table checkpoints"),
    ("bi", "update cerebro.configs set status = 'stopped'", "permission denied for table configs"),
    ("bi", "select cerebro.stop({a1_0})", "permission denied for function stop"),
    (
        "bi",
        "select cerebro.launch('x', 'mlp', 'alice_train')",
        "permission denied for function launch",
    ),
    ("bi", "select cerebro.export_model({a1_0})", "permission denied for function export_model"),
]


def _expand(text: str, ids: dict) -> str:
    for k, v in (("{a1_0}", ids["a1"][0]), ("{a1_1}", ids["a1"][1]), ("{a1}", ids["a1_wid"])):
        text = text.replace(k, str(v))
    return text


@pytest.mark.parametrize(
    "role,statement,expected", HOSTILE, ids=[f"{i:02d}-{h[0]}" for i, h in enumerate(HOSTILE)]
)
def test_hostile_statement(world, role, statement, expected):
    dsn, ids = world
    statement = _expand(statement, ids)
    before = snapshot(dsn)
    if isinstance(expected, int):
        assert run(dsn, role, statement) == [(expected,)]
    elif expected.startswith(("UPDATE-", "DELETE-")):
        want = expected.split("-")[1]
        assert run(dsn, role, statement) == [(int(want),)]
    else:
        with pytest.raises(psycopg.Error) as e:
            run(dsn, role, statement)
        assert str(e.value).startswith(_expand(expected, ids)), str(e.value)
    assert snapshot(dsn) == before
    assert not PWNED.exists()


def test_there_are_at_least_sixty_hostile_statements():
    assert len(HOSTILE) >= 60


def test_nothing_is_executable_by_public_and_every_function_pins_search_path(world):
    dsn, _ = world
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select p.oid::regprocedure::text, p.proacl is null or exists (select 1 from "
            "aclexplode(p.proacl) a where a.grantee = 0), coalesce(array_to_string(p.proconfig, "
            "';'), '') from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'cerebro'"
        ).fetchall()
    assert len(rows) > 40
    public = [r[0] for r in rows if r[1]]
    assert public == []
    unpinned = [r[0] for r in rows if "search_path=pg_catalog, pg_temp" not in r[2]]
    # aggregates have no settings of their own; their support functions are pinned
    assert [
        u
        for u in unpinned
        if not u.startswith(("cerebro.train_subepoch", "cerebro.evaluate_partition"))
    ] == []


def test_shadowing_functions_in_the_callers_path_change_nothing(world):
    """bob puts his own pg_has_role/current_setting/quote_literal first in his search_path:
    the pinned functions never call them."""
    dsn, ids = world
    with psycopg.connect(as_role(dsn, "bob"), autocommit=True) as c:
        for f in (
            "pg_has_role(name, text, text)",
            "pg_has_role(name, oid, text)",
            "quote_literal(text)",
            "quote_ident(text)",
            "pg_notify(text, text)",
        ):
            ret = (
                "void"
                if f.startswith("pg_notify")
                else ("text" if f.startswith("quote") else "boolean")
            )
            body = (
                "select null"
                if ret == "void"
                else ("select 'x'" if ret == "text" else "select true")
            )
            if ret == "void":
                body = "select"
            c.execute(
                f"create or replace function bob.{f} returns {ret} language sql as $$ {body} $$"
            )
        c.execute(
            "create or replace function bob.current_setting(text, boolean) returns text "
            "language sql as $$ select 'system' $$"
        )
        c.execute("set search_path = bob, pg_catalog")
        c.execute("set cerebro.actor = 'system'")
        assert c.execute(
            "select count(*) from cerebro.leaderboard where workload = 'a1'"
        ).fetchone() == (0,)
        assert c.execute("select count(*) from cerebro.configs").fetchone() == (2,)
        with pytest.raises(psycopg.Error, match="is not yours to share"):
            c.execute("select cerebro.share('a1', 'bob', 'steer')")
        with pytest.raises(psycopg.Error, match=f"config {ids['a1'][0]} does not exist"):
            c.execute("select cerebro.stop(%s)", [ids["a1"][0]])
        assert c.execute("select cerebro.actor()").fetchone() == ("human:bob",)


def test_code_in_a_config_never_ran():
    assert not PWNED.exists()


# -- what people may do -----------------------------------------------------------------------


def last_event(dsn: str, config_id: int) -> tuple:
    rows = run(
        dsn,
        "carol",
        "select actor, action from cerebro.events where config_id = %s order by event_id desc "
        "limit 1",
        [config_id],
    )
    return rows[0]


def test_alice_steers_clones_evaluates_predicts_and_exports_her_own_work(world):
    dsn, ids = world
    a0 = ids["a1"][0]
    with psycopg.connect(as_role(dsn, "alice"), autocommit=True) as c:
        c.execute("set cerebro.actor = 'system'")  # changes nothing: she is human:alice
        (clone,) = c.execute(
            """select cerebro.clone(%s, '{"learning_rate": 0.005}', max_epochs => 2)""", [a0]
        ).fetchone()
        assert c.execute(
            "select epoch, source, parent_config, status from cerebro.configs "
            "where config_id = %s",
            [clone],
        ).fetchone() == (1, "clone", a0, "active")
        assert c.execute(
            "select count(*) from cerebro.checkpoints where config_id = %s", [clone]
        ).fetchone() == (1,)
        assert last_event(dsn, clone) == ("human:alice", "clone")
        assert c.execute("select cerebro.stop(%s, immediate => true)", [clone]).fetchone() == (
            True,
        )
        assert last_event(dsn, clone) == ("human:alice", "stop")
        assert c.execute("select cerebro.resume(%s)", [clone]).fetchone() == (True,)
        assert last_event(dsn, clone) == ("human:alice", "resume")
        c.execute("update cerebro.configs set status = 'stopped' where config_id = %s", [clone])
        assert last_event(dsn, clone) == ("human:alice", "stop")
        (added,) = c.execute(
            "insert into cerebro.configs (workload_id, params, priority) values "
            """(%s, '{"learning_rate": 0.03}', 2) returning config_id""",
            [ids["a1_wid"]],
        ).fetchone()
        assert last_event(dsn, added) == ("human:alice", "add")
        c.execute("update cerebro.configs set status = 'stopped' where config_id = %s", [added])
        (result,) = c.execute("select cerebro.evaluate(%s, 'alice_train')", [a0]).fetchone()
        assert result["rows"] == 600 and result["loss"] > 0
        assert c.execute(
            "select cerebro.predict(%s, 'alice.t', 'alice.scores', key => 'id')", [a0]
        ).fetchone() == (600,)
        assert c.execute("select count(*) from alice.scores").fetchone() == (600,)
        (blob,) = c.execute("select cerebro.export_model(%s)", [a0]).fetchone()
        assert bytes(blob[:2]) == b"PK"  # a .keras file is a zip archive
        assert (
            c.execute("select count(*) from cerebro.history(%s)", [clone]).fetchone()[0] >= 4
        )  # its own events and its parent's


def test_sharing_a_workload_for_reading_then_steering(world):
    dsn, ids = world
    a1 = ids["a1"][1]
    assert run(dsn, "alice", "select cerebro.share('a1', 'bob', 'read')") == [(True,)]
    assert run(dsn, "bob", "select count(*) from cerebro.configs where config_id = %s", [a1]) == [
        (1,)
    ]
    assert run(dsn, "bob", "select count(*) from cerebro.metrics where config_id = %s", [a1]) == [
        (1,)
    ]
    assert run(
        dsn, "bob", "update cerebro.configs set priority = 3 where config_id = %s", [a1]
    ) == [(0,)]
    with pytest.raises(psycopg.Error, match=f"cerebro: config {a1} does not exist"):
        run(dsn, "bob", "select cerebro.clone(%s)", [a1])
    assert run(dsn, "alice", "select cerebro.share('a1', 'bob', 'steer')") == [(True,)]
    assert run(
        dsn, "bob", "update cerebro.configs set priority = 3 where config_id = %s", [a1]
    ) == [(1,)]
    assert last_event(dsn, a1) == ("human:bob", "priority")
    assert run(dsn, "alice", "select cerebro.share('a1', 'bob', 'none')") == [(True,)]
    assert run(dsn, "bob", "select count(*) from cerebro.configs where config_id = %s", [a1]) == [
        (0,)
    ]
    # bob cannot pass on what was shared with him, nor drop it
    with pytest.raises(psycopg.Error, match="is not yours to share"):
        run(dsn, "bob", "select cerebro.share('a1', 'bi', 'read')")


def test_the_reader_sees_every_workload_through_the_views(world):
    dsn, _ = world
    rows = run(
        dsn, "bi", "select workload, count(*) from cerebro.leaderboard group by 1 order by 1"
    )
    assert [r[0] for r in rows] == ["a1", "b1"] and all(r[1] >= 2 for r in rows)
    (n,) = run(dsn, "bi", "select count(*) from cerebro.learning_curves where workload = 'b1'")[0]
    assert n >= 2
    assert run(dsn, "bi", "select count(*) from cerebro.progress") == [(2,)]


def test_an_admin_sees_and_steers_everything_and_raises_caps(world):
    dsn, ids = world
    b0 = ids["b1"][0]
    assert run(dsn, "carol", "select count(distinct workload_id) from cerebro.configs") == [(2,)]
    assert run(
        dsn, "carol", "update cerebro.configs set priority = 1 where config_id = %s", [b0]
    ) == [(1,)]
    assert last_event(dsn, b0) == ("human:carol", "priority")
    assert run(
        dsn, "carol", "update cerebro.limits set value = 2000 where name = 'max_configs'"
    ) == [(1,)]
    run(dsn, "carol", "update cerebro.limits set value = 1000 where name = 'max_configs'")
    with pytest.raises(psycopg.Error, match="params cannot change"):
        run(dsn, "carol", "update cerebro.configs set params = '{}' where config_id = %s", [b0])


def test_uploaded_weights_need_no_file_access_and_are_the_uploaders_only(world):
    dsn, ids = world
    with psycopg.connect(as_role(dsn, "alice"), autocommit=True) as c:
        (blob,) = c.execute("select cerebro.export_model(%s)", [ids["a1"][0]]).fetchone()
        (path,) = c.execute("select cerebro.upload_weights('a1-best', %s)", [blob]).fetchone()
        assert path.startswith("cerebro_weights/") and path.endswith(".keras")
        c.execute(
            "select cerebro.launch('a_up', 'mlp', 'alice_train', objective => 'train_loss', "
            """space => '{"learning_rate": {"choice": [0.01]}}', max_epochs => 1, """
            "params => jsonb_build_object('weights', %s::text))",
            [path],
        )
        with pytest.raises(psycopg.Error, match=r"must be the bytes of a \.keras file"):
            c.execute("select cerebro.upload_weights('junk', '\\x00010203')")
    run_to_end(dsn)
    assert run(
        dsn, "alice", "select status, epochs from cerebro.leaderboard where workload = 'a_up'"
    ) == [("completed", 1)]
    before = snapshot(dsn)
    for statement in (
        "select cerebro.launch('b_up', 'mlp', 'bob_train', objective => 'train_loss', "
        """space => '{"learning_rate": {"choice": [0.01]}}', """
        "params => jsonb_build_object('weights', %s::text))",
        "insert into cerebro.configs (workload_id, params) select workload_id, "
        "jsonb_build_object('weights', %s::text) from cerebro.workloads where name = 'b1'",
    ):
        with pytest.raises(psycopg.Error) as e:
            run(dsn, "bob", statement, [path])
        assert str(e.value).startswith(
            "cerebro: weights paths are files on the server: using one needs the "
            "pg_read_server_files role"
        ), str(e.value)
    assert run(dsn, "bob", "select count(*) from cerebro.weights") == [(0,)]
    with pytest.raises(psycopg.Error, match="weights 'a1-best' do not exist"):
        run(dsn, "bob", "select cerebro.drop_weights('a1-best')")
    assert snapshot(dsn) == before
    assert run(dsn, "alice", "select cerebro.drop_workload('a_up')") == [(True,)]
    assert run(dsn, "alice", "select cerebro.drop_weights('a1-best')") == [(True,)]
    assert run(dsn, "carol", "select count(*) from cerebro.weights") == [(0,)]


def test_owners_drop_their_own_work_last(world):
    dsn, ids = world
    with pytest.raises(psycopg.Error, match="cerebro: workload 'b1' does not exist"):
        run(dsn, "alice", "select cerebro.drop_workload('b1')")
    assert run(dsn, "alice", "select cerebro.drop_workload('a1')") == [(True,)]
    assert run(dsn, "alice", "select cerebro.drop_dataset('alice_train')") == [(True,)]
    assert run(
        dsn,
        "carol",
        "select count(*) from cerebro.configs where workload_id = %s",
        [ids["a1_wid"]],
    ) == [(0,)]
    assert run(dsn, "carol", "select count(*) from cerebro.workloads") == [(1,)]


def test_a_forged_dataset_row_cannot_splice_sql(world):
    """alice may write her own dataset rows (load_dataset runs as her), but features read back
    from the catalog are validated again before they become SQL."""
    dsn, _ = world
    with psycopg.connect(as_role(dsn, "alice"), autocommit=True) as c:
        c.execute(
            "insert into cerebro.datasets (name, source, features, label, task, classes, "
            "feature_shape, normalization, statistics, num_rows, num_partitions, buffer_rows, "
            "rows_per_partition, seed, owner) values ('forged', 'alice.t', "
            """'["(select count(*) from pg_authid)"]', 'y', 'classification', '[0, 1]', """
            """'{1}', '{"method": "none"}', '{}', 1, 1, 1, '{1}', 0, 'bob')"""
        )
        # the owner is whoever inserted it, not what the statement said
        assert c.execute(
            "select owner from cerebro.datasets where name = 'forged'"
        ).fetchone() == ("alice",)
        before = snapshot(dsn)
        with pytest.raises(psycopg.Error) as e:
            c.execute("select cerebro.load_dataset('a4', 'alice.t', like_dataset => 'forged')")
        assert str(e.value).startswith(
            "cerebro: feature '(select count(*) from pg_authid)' uses"
        ), str(e.value)
        assert snapshot(dsn) == before
        assert c.execute("select cerebro.drop_dataset('forged')").fetchone() == (True,)
