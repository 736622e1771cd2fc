"""The Greenplum 7 / Apache Cloudberry path: cerebro_udfs/engine.py, sql/idempotent/012-engine.sql.

Neither engine can be installed here, so this file tests what can be tested without one:
- engine detection on real ``version()`` strings (sources cited next to each);
- the statements the MPP path issues, byte for byte against tests/golden/engine/*.sql;
  regenerate them after an intended change with
  ``CEREBRO_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_engine.py`` and review the diff;
- every generated statement parses as PostgreSQL, carries its key and dataset as literals and
  no ``$n`` parameter, and uses nothing newer than PostgreSQL 12 that we can spot;
- on the real (PostgreSQL) server: the PostgreSQL variant of the generated sub-epoch and
  evaluation statements runs (a real Keras sub-epoch), and 012-engine.sql's DO block takes the
  right branch for each real version string.
Nothing here ran on a Greenplum or Cloudberry server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
import pytest
import sqlglot

from cerebro.scheduler import statements as S
from cerebro_udfs import engine as E
from cerebro_udfs.models import training_config
from helpers import ROOT, launch, make_db

GOLDEN = Path(__file__).parent / "golden" / "engine"
UPDATE = os.environ.get("CEREBRO_UPDATE_GOLDEN") == "1"

# Real version() strings, verbatim.
# Greenplum 7.0.0: `select version()` in a GP 7 docker walkthrough (find_string id 20093824716).
GP7 = (
    "PostgreSQL 12.12 (Greenplum Database 7.0.0 build "
    "commit:0a7a3566873325aca1789ae6f818c80f17a9402d)"
    " on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18), 64-bit "
    "compiled on Sep 20 2023 23:21:05 Bhuvnesh C."
)
# Greenplum 7.4.0: a gpstate log, "coordinator Greenplum Version" (find_string id 12931406098).
GP74 = (
    "PostgreSQL 12.12 (Greenplum Database 7.4.0 build "
    "commit:27de6dc6d00607a5630a41fd2c0ad489f40e2ad4)"
    " on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-22), 64-bit "
    "compiled on Jan 31 2025 03:17:23 Bhuvnesh C."
)
# Greenplum 6.21 and Cloudberry 1.2.0: version samples in the comment of a gpbackup fork's
# dbconn/version.go (InitializeVersion; find_string id 39096719972).
GP6 = (
    "PostgreSQL 9.4.26 (Greenplum Database 6.21.0 build "
    "commit:d0087e3b24c54d203ca8bb315559205f13cd6393"
    " Open Source) on x86_64-unknown-linux-gnu, compiled by gcc (GCC) 6.4.0, 64-bit compiled on "
    "Jun 10 2022 01:57:17"
)
CB12 = (
    "PostgreSQL 14.4 (Cloudberry Database 1.2.0 build "
    "commit:5b5ae3f8aa638786f01bbd08307b6474a1ba1997)"
    " on x86_64-pc-linux-gnu, compiled by gcc (GCC) 10.2.1 20210130 (Red Hat 10.2.1-11), 64-bit "
    "compiled on Feb 16 2023 23:44:39"
)
# Cloudberry 1.6.0: a version-parsing test table in a Go backup tool (find_string id 55023458625).
CB16 = (
    "PostgreSQL 14.4 (Cloudberry Database 1.6.0 build dev) on x86_64-pc-linux-gnu, "
    "compiled by gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, 64-bit "
    "compiled on Sep 13 2024 07:33:38"
)
# Apache Cloudberry 2.0.0: pigsty's kernel-fork docs, version string table (find_string id
# 53160975850); apache/cloudberry's regression test gp_metadata.sql expects the same shape,
# '^PostgreSQL 1x.y (Apache Cloudberry x.y.z...'.
CB20 = (
    "PostgreSQL 14.4 (Apache Cloudberry 2.0.0-incubating build 1) on aarch64-unknown-linux-gnu, "
    "compiled by gcc (GCC) 11.5.0 20240719 (Red Hat 11.5.0-11), 64-bit"
)
PG15 = "PostgreSQL 15.10 (Debian 15.10-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc"
# not a real string: a Cloudberry build that also names Greenplum must still be Cloudberry
CB_SAYS_GREENPLUM = "PostgreSQL 14.4 (Apache Cloudberry 2.1.0 build 1) (Greenplum Database 7.0.0)"

DETECTED = {
    GP7: ("greenplum", 7, 0, 12),
    GP74: ("greenplum", 7, 4, 12),
    CB12: ("cloudberry", 1, 2, 14),
    CB16: ("cloudberry", 1, 6, 14),
    CB20: ("cloudberry", 2, 0, 14),
    CB_SAYS_GREENPLUM: ("cloudberry", 2, 1, 14),
    PG15: ("postgres", 15, 10, 15),
}

# the fixed case of the golden files: dataset 3, partition 1 of 2, a 4-segment probe
PROBE = [(0, 2), (1, 0), (2, 5), (3, 1)]
SPEC = {"name": "mlp", "kind": "builtin"}
CFG = {"params": {"hidden": [8], "learning_rate": 0.01}, "seed": 11, "epoch": 2, "partition": 1}


@pytest.mark.parametrize("version", sorted(DETECTED), ids=lambda v: v.split(" on ")[0][:48])
def test_detects_the_engine_from_real_version_strings(version):
    e = E.detect(version)
    assert (e.name, e.major, e.minor, e.pg_major) == DETECTED[version]
    assert e.mpp == (e.name != "postgres")


def test_greenplum_6_and_non_postgres_are_refused_with_a_clear_error():
    with pytest.raises(
        E.UnsupportedEngine, match=r"Greenplum 6\.21 is not supported.*Greenplum 7"
    ):
        E.detect(GP6)
    with pytest.raises(E.UnsupportedEngine, match="not a PostgreSQL-based server"):
        E.detect("8.0.30-Vitess")


def _statements(engine: E.EngineName) -> dict[str, str]:
    """Every statement the path issues for the fixed case, by name."""
    keys = E.partition_keys(PROBE if engine in E.MPP else [], 2)
    key = keys[1]
    out = {f"ddl {i}": s for i, s in enumerate(E.distribution_ddl(engine))}
    if engine in E.MPP:
        out |= {f"probe {i}": s for i, s in enumerate(E.probe_keys_sql(4))}
    common = {"dataset_id": 3, "key": key, "spec": SPEC, "cfg": CFG}
    train = {"config_id": 7, "epoch": 2, "new_done": [0, 1]}
    out["subepoch from checkpoint"] = E.subepoch_sql(
        engine, state=E.state_from_checkpoint(7, 2), **common, **train
    )
    out["subepoch from states"] = E.subepoch_sql(
        engine, state=E.state_from_states(7, 2, [0]), **common, **train
    )
    out["evaluation"] = E.evaluation_sql(engine, state=E.state_from_states(7, 3, [0, 1]), **common)
    return out


def _render(statements: dict[str, str]) -> str:
    return "".join(f"-- {name}\n{s.rstrip()};\n\n" for name, s in statements.items())


@pytest.mark.parametrize("engine", E.ENGINES)
def test_generated_sql_equals_the_golden_file(engine):
    path = GOLDEN / f"{engine}.sql"
    text = _render(_statements(engine))
    if UPDATE:
        path.write_text(text)
    assert path.read_text() == text, f"regenerate with CEREBRO_UPDATE_GOLDEN=1 and review {path}"


def test_mpp_statements_pin_the_segment_key_as_a_literal():
    # partition 1 -> the probe's key of segment 1, which is 0 (PostgreSQL: the partition, 1)
    assert E.partition_keys(PROBE, 2) == [2, 0]
    for engine in E.MPP:
        st = _statements(engine)
        for name in ("subepoch from checkpoint", "subepoch from states", "evaluation"):
            s = st[name]
            assert "where dataset_id = 3 and __dist_key__ = 0 group by __dist_key__" in s, name
            assert not re.search(r"\$\d|%s|%\(", s), name
        assert st["ddl 0"] == "alter table cerebro.buffers set distributed by (__dist_key__)"
    pg = _statements("postgres")
    assert "__dist_key__ = 1)" in pg["subepoch from states"]
    assert "group by" not in pg["subepoch from states"] and not E.distribution_ddl("postgres")


def test_more_partitions_than_segments_is_refused():
    with pytest.raises(E.UnsupportedEngine, match="5 partitions need 5 segments"):
        E.partition_keys(PROBE, 5)


# constructs newer than PostgreSQL 12 (Greenplum 7's base) that sqlglot or a regex can spot
_NEWER_THAN_PG12 = {
    "MERGE (PG 15)": re.compile(r"^\s*merge\b", re.I | re.M),
    "WITH TIES (PG 13)": re.compile(r"\bwith\s+ties\b", re.I),
    "NULLS NOT DISTINCT (PG 15)": re.compile(r"\bnulls\s+not\s+distinct\b", re.I),
    "SEARCH/CYCLE (PG 14)": re.compile(r"\b(search\s+(depth|breadth)|cycle\s+\w+\s+set)\b", re.I),
    "multirange (PG 14)": re.compile(r"multirange", re.I),
    "JSON_TABLE/IS JSON (PG 16-17)": re.compile(r"\b(json_table|is\s+json)\b", re.I),
}


@pytest.mark.parametrize("engine", E.ENGINES)
def test_every_generated_statement_parses_and_stays_within_pg12(engine):
    for name, s in _statements(engine).items():
        if "distributed" in s:  # Greenplum DDL, not PostgreSQL grammar: checked by shape
            assert re.fullmatch(
                r"(create temp table \w+ \(k int\) |alter table [\w.]+ set )"
                r"distributed (by \(\w+\)|replicated)",
                s,
            ), s
            continue
        tree = sqlglot.parse_one(s, dialect="postgres")
        assert tree is not None and not list(tree.find_all(sqlglot.exp.Placeholder)), name
        for construct, pattern in _NEWER_THAN_PG12.items():
            assert not pattern.search(s), f"{name} uses {construct}"


@pytest.mark.parametrize("engine", E.ENGINES)
def test_each_engines_variant_matches_what_the_scheduler_issues(engine):
    # the generated statements are what the scheduler issues there (statements.train and
    # .evaluate with the engine's grouping and the partition's key), parameters as literals
    st = _statements(engine)
    key = E.partition_keys(PROBE if engine in E.MPP else [], 2)[1]
    mpp = engine in E.MPP
    _same(st["subepoch from states"], S.train(S.STATE_FROM_STATES, 3, key, mpp=mpp))
    _same(st["evaluation"], S.evaluate(S.STATE_FROM_STATES, 3, key, mpp=mpp), epoch=3, done="0,1")


def _same(ours: str, statement: Any, epoch: int = 2, done: str = "0") -> None:
    theirs = statement.as_string(None)
    placeholders = {
        "%(config_id)s": "7",
        "%(epoch)s": str(epoch),
        "%(done)s::int[]": "'{" + done + "}'::int[]",
        "%(new_done)s::int[]": "'{0,1}'::int[]",
        "%(spec)s": E.jsonb_literal(SPEC),
        "%(cfg)s": E.jsonb_literal(CFG),
    }
    for p, lit in placeholders.items():
        theirs = theirs.replace(p, lit)
    norm = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731
    assert norm(ours) == norm(theirs)


# -- on the real PostgreSQL server -------------------------------------------------------------


@pytest.fixture(scope="module")
def db(server_dsn):
    dsn = make_db(server_dsn, "cerebro_engine")
    launch(dsn, "eng", space={"hidden": {"choice": [[8]]}}, epochs=1)
    return dsn


def test_generated_postgres_subepoch_and_evaluation_run_on_the_server(db):
    with psycopg.connect(db, autocommit=True) as c:
        config_id, params, seed = c.execute(
            "select config_id, params, seed from cerebro.configs order by config_id limit 1"
        ).fetchone()
        spec = c.execute("select cerebro.model_spec('mlp')").fetchone()[0]

        def cfg(name: str, partition: int) -> dict:
            cur = c.cursor(row_factory=psycopg.rows.dict_row)
            ds = cur.execute(S.DATASET, [_dataset_id(c, name)]).fetchone()
            return training_config(ds, params, seed, partition, 1, config_id)

        tr, va = _dataset_id(c, "tr"), _dataset_id(c, "va")
        keys = E.partition_keys([], 2)
        train = E.subepoch_sql(
            "postgres",
            dataset_id=tr,
            key=keys[1],
            state=E.state_from_checkpoint(config_id, 1),
            spec=spec,
            cfg=cfg("tr", 1),
            config_id=config_id,
            epoch=1,
            new_done=[1],
        )
        loss, _metrics, rows, _s, chunked = c.execute(train.encode()).fetchone()
        expected = c.execute(
            "select sum(num_rows) from cerebro.buffers where dataset_id = %s and __dist_key__ = 1",
            [tr],
        ).fetchone()[0]
        assert rows == expected > 0 and loss > 0 and chunked is False
        assert c.execute(
            "select partitions_done from cerebro.states where config_id = %s", [config_id]
        ).fetchone() == ([1],)
        evaluate = E.evaluation_sql(
            "postgres",
            dataset_id=va,
            key=keys[0],
            state=E.state_from_states(config_id, 1, [1]),
            spec=spec,
            cfg=cfg("va", 0),
        )
        vloss, _m, vrows, _s = c.execute(evaluate.encode()).fetchone()
        assert vrows > 0 and vloss > 0


def _dataset_id(c: psycopg.Connection, name: str) -> int:
    return c.execute("select dataset_id from cerebro.datasets where name = %s", [name]).fetchone()[
        0
    ]


@pytest.mark.parametrize(
    "version,branch",
    [
        (GP7, "distribute"),
        (GP74, "distribute"),
        (CB12, "distribute"),
        (CB20, "distribute"),
        (CB_SAYS_GREENPLUM, "distribute"),
        (GP6, "refuse"),
        (PG15, "nothing"),
    ],
    ids=["gp7.0", "gp7.4", "cb1.2", "cb2.0", "cb+gp", "gp6", "pg15"],
)
def test_the_install_block_takes_the_engines_branch(conn, version, branch):
    """012-engine.sql's DO block, with version() replaced by a real string and its DDL by a
    notice (the DDL is Greenplum grammar): the branch it takes agrees with engine.detect."""
    block = (ROOT / "sql/idempotent/012-engine.sql").read_text()
    assert block.count("version()") == 4
    block = block.replace("version()", E.literal(version)).replace(
        "execute 'alter table cerebro.buffers set distributed by (__dist_key__)'",
        "raise notice 'distribute'",
    )
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    if branch == "refuse":
        with pytest.raises(psycopg.errors.RaiseException, match="needs Greenplum 7"):
            conn.execute(block)
        return
    conn.execute(block)
    assert notices == (["distribute"] if branch == "distribute" else [])
    assert E.detect(version).mpp == (branch == "distribute")


# a custom model whose build() reaches for the database when asked: on a segment that fails
TOUCHER = """
import keras

def build(config):
    ds = config["dataset"]
    m = keras.Sequential([keras.Input(tuple(ds["feature_shape"])),
                          keras.layers.Dense(ds["num_classes"], activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    if config.get("touch_db"):
        import plpy
        plpy.execute("select 1")
    return m
"""


def test_generated_statements_are_segment_safe(db):
    """The segment-safety guard (cerebro_udfs/guard.py) covers both statements of the path:
    a model that reads the database inside the generated sub-epoch or evaluation fails there
    exactly as it would on a Greenplum segment; without the read, the same statements run."""
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(
            "select cerebro.register_model('toucher', %s, param_schema => %s)",
            [TOUCHER, '{"touch_db": {"default": false}}'],
        )
        spec = c.execute("select cerebro.model_spec('toucher')").fetchone()[0]
        cur = c.cursor(row_factory=psycopg.rows.dict_row)
        tr = _dataset_id(c, "tr")
        ds = cur.execute(S.DATASET, [tr]).fetchone()
        config_id = c.execute("select min(config_id) from cerebro.configs").fetchone()[0]

        def statements(touch: bool) -> tuple[str, str]:
            cfg = training_config(ds, {"touch_db": touch}, 5, 0, 1, config_id)
            common = {"dataset_id": tr, "key": 0, "spec": spec, "cfg": cfg}
            train = E.subepoch_sql(
                "postgres",
                state="null::bytea",
                config_id=config_id,
                epoch=1,
                new_done=[0],
                **common,
            )
            ev = E.evaluation_sql(
                "postgres", state=E.state_from_states(config_id, 1, [0]), **common
            )
            return train, ev

        train, ev = statements(False)
        assert c.execute(train.encode()).fetchone()[2] > 0
        assert c.execute(ev.encode()).fetchone()[2] > 0
        for statement in statements(True):
            with pytest.raises(psycopg.Error) as e:
                c.execute(statement.encode())
            assert "not allowed in the training and evaluation path" in str(e.value)


@pytest.mark.slow
def test_partitions_stored_under_segment_keys_train_on_the_right_rows(server_dsn):
    """What load_dataset writes on Greenplum/Cloudberry (partition p under the p-th
    segment's key, datasets.dist_keys), made by hand on PostgreSQL: the scheduler reads each
    partition under its key, and dataset_partitions still shows partition numbers."""
    from helpers import fetch_all, run_to_end

    dsn = make_db(server_dsn, "cerebro_engine_keys")
    keys = [100, 107]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update cerebro.buffers set __dist_key__ = __dist_key__ * 7 + 100")
        c.execute("update cerebro.datasets set dist_keys = %s", [keys])
    parts = fetch_all(
        dsn, "select dataset, partition, rows from cerebro.dataset_partitions order by 1, 2"
    )
    assert [(d, p) for d, p, _ in parts] == [("tr", 0), ("tr", 1), ("va", 0), ("va", 1)]
    launch(dsn, "keys", space={"hidden": {"choice": [[8]]}}, epochs=1)
    run_to_end(dsn)
    units = fetch_all(
        dsn,
        "select u.kind, u.partition, (u.result->>'rows')::bigint from cerebro.units u "
        "where u.outcome = 'ok' order by 1, 2",
    )
    expected = {(d, p): r for d, p, r in parts}
    assert [(k, p) for k, p, _ in units] == [
        ("train", 0),
        ("train", 1),
        ("valid", 0),
        ("valid", 1),
    ]
    for kind, p, rows in units:
        assert rows == expected[("tr" if kind == "train" else "va", p)]
    assert fetch_all(dsn, "select status from cerebro.configs") == [("completed",)]
