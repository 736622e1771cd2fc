"""The extension as a whole: versions agree, the script is built from sql/, drop is clean."""

import re
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

import cerebro
import cerebro_udfs
from cerebro import build
from cerebro.cluster import boot_session

ROOT = Path(__file__).resolve().parent.parent

CATALOG = {
    "models",
    "datasets",
    "buffers",
    "workloads",
    "configs",
    "metrics",
    "checkpoints",
    "states",
    "units",
    "events",
}


def test_one_version_everywhere():
    pyproject = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert (
        pyproject.group(1)
        == cerebro.__version__
        == cerebro_udfs.__version__
        == build.control_version()
    )


def test_install_script_is_built_from_sql_sources():
    committed = build.install_script_path().read_text()
    assert committed == build.render(), "run `make sql` and commit extension/"


def test_upgrade_script_is_built_from_sql_sources():
    path = build.upgrade_script_path()
    assert path is not None and path.name == "cerebro--0.3.0--0.4.0.sql"
    assert path.read_text() == build.render_upgrade(), "run `make sql` and commit extension/"
    for released in (
        "cerebro--0.1.0.sql",
        "cerebro--0.2.0.sql",
        "cerebro--0.3.0.sql",
        "cerebro--0.1.0--0.2.0.sql",
        "cerebro--0.2.0--0.3.0.sql",
    ):
        assert (ROOT / "extension" / released).exists(), "released scripts are kept"


def test_released_migrations_are_never_edited():
    assert build.edited_releases() == []


def test_upgrade_script_is_a_delta():
    """Only this release's migrations and the idempotent files that changed since the last
    release (plus grants) are in the upgrade script, not a copy of every file."""
    parts = build.sections(build.upgrade_script_path().read_text())
    previous = build.previous_release()
    assert previous is not None
    shipped = build.sections(build.install_script_path(previous).read_text())
    current = build.sections(build.install_script_path().read_text())
    for key, text in current.items():
        if key.startswith("incremental/"):
            assert (key in parts) == (key not in shipped), key
        elif "grants" not in key:
            assert (key in parts) == (shipped.get(key) != text), key
    assert len(parts) < len(current)


_SHAPE = {
    "functions": "select p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '"
    " || pg_get_function_result(p.oid) || ' ' || md5(p.prosrc) from pg_proc p "
    "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'cerebro'",
    "columns": "select table_name || '.' || column_name || ' ' || ordinal_position || ' ' || "
    "data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') "
    "from information_schema.columns where table_schema = 'cerebro'",
    "constraints": "select conrelid::regclass || ' ' || pg_get_constraintdef(c.oid) "
    "from pg_constraint c join pg_namespace n on n.oid = c.connamespace "
    "where n.nspname = 'cerebro'",
    "views": "select viewname || ' ' || md5(definition) from pg_views "
    "where schemaname = 'cerebro'",
    "triggers": "select tgrelid::regclass || ' ' || tgname from pg_trigger t "
    "join pg_class c on c.oid = t.tgrelid join pg_namespace n on "
    "n.oid = c.relnamespace where n.nspname = 'cerebro' and not tgisinternal",
    "roster": "select name || ' ' || param_schema::text from cerebro.models where kind = 'roster'",
    "members": "select classid::regclass::text || ' ' || count(*) from pg_depend "
    "where refobjid = (select oid from pg_extension where extname = 'cerebro') "
    "and deptype = 'e' group by classid",
}


def _shape(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as c:
        return {k: sorted(r[0] for r in c.execute(q)) for k, q in _SHAPE.items()}


def test_upgrade_from_0_1_0_keeps_data_and_matches_a_fresh_install(server_dsn):
    """ALTER EXTENSION ... UPDATE on a 0.1.0 database with data in it (0.1.0 -> 0.2.0 -> the
    current release) gives exactly the catalog of a fresh install (functions, columns,
    constraints, views, triggers, roster, extension members), and the 0.1.0 dataset is still
    usable."""
    from conftest import fresh_database

    new = fresh_database(server_dsn, "cerebro_upgrade_new")
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute("drop database if exists cerebro_upgrade_old with (force)")
        admin.execute("create database cerebro_upgrade_old")
    old = psycopg.conninfo.make_conninfo(server_dsn, dbname="cerebro_upgrade_old")
    with psycopg.connect(old, autocommit=True) as c:
        # 0.1.0's functions import cerebro's code without reading cerebro_python.path, as
        # every release before 0.4.0: cerebro up / install put it on sys.path first
        c.execute("create extension plpython3u")
        boot_session(c)
        c.execute("create extension cerebro version '0.1.0' cascade")
        # The Python on the server is the current version's, so the 0.1.0 data is written
        # with plain SQL, as 0.1.0's load_dataset stored it.
        x = np.arange(60, dtype="<f4") % 3
        y = (np.arange(60) % 2).astype("<i4")
        c.execute(
            "insert into cerebro.datasets (name, source, features, label, task, classes, "
            "feature_shape, normalization, statistics, num_rows, num_partitions, "
            "buffer_rows, rows_per_partition, seed) values ('d', 't', '[\"a\"]', 'y', "
            "'classification', '[0, 1]', '{1}', '{\"method\": \"none\"}', '{}', 60, 2, "
            "30, '{30, 30}', 0)"
        )
        for p in (0, 1):
            c.execute(
                "insert into cerebro.buffers (dataset_id, __dist_key__, buffer_id, "
                "num_rows, x, y) select dataset_id, %s, 0, 30, %s, %s "
                "from cerebro.datasets",
                (p, x[p * 30 : (p + 1) * 30].tobytes(), y[p * 30 : (p + 1) * 30].tobytes()),
            )
        c.execute("alter extension cerebro update to '0.2.0'")
        assert (
            c.execute("select extversion from pg_extension where extname = 'cerebro'").fetchone()[
                0
            ]
            == "0.2.0"
        )
        c.execute("alter extension cerebro update")  # 0.2.0 -> the current release
        assert (
            c.execute("select extversion from pg_extension where extname = 'cerebro'").fetchone()[
                0
            ]
            == cerebro.__version__
        )
        assert c.execute(
            "select num_rows, encoding->>'kind' from cerebro.datasets"
        ).fetchone() == (60, "numeric")
        out = c.execute("select loss from cerebro.run_subepoch('mlp', 'd', 0)").fetchone()
        assert out[0] > 0
    a, b = _shape(old), _shape(new)
    for k in _SHAPE:
        assert a[k] == b[k], k
    assert len(a["functions"]) > 30 and len(a["roster"]) >= 1


def test_catalog_has_constraints(conn):
    tables = {
        r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'cerebro'")
    }
    assert CATALOG <= tables
    fks = conn.execute(
        "select count(*) from pg_constraint c join pg_namespace n on "
        "n.oid = c.connamespace where n.nspname = 'cerebro' and c.contype = 'f'"
    ).fetchone()[0]
    assert fks >= 12
    # constraints really refuse bad rows
    for stmt in (
        "insert into cerebro.metrics (config_id, epoch) values (-1, 1)",  # fk
        "insert into cerebro.units (config_id, epoch, partition, kind) "
        "values (-1, 1, 0, 'bogus')",  # check
        "insert into cerebro.datasets (name, source, features, label, task, "
        "feature_shape, normalization, statistics, num_rows, num_partitions, "
        "buffer_rows, rows_per_partition, seed) values ('x', 's', '[]', 'l', "
        "'regression', '{1}', '{}', '{}', 0, 1, 1, '{0}', 0)",
    ):  # rows > 0
        try:
            conn.execute(stmt)
            raise AssertionError(f"accepted: {stmt}")
        except psycopg.errors.IntegrityError:
            pass


def test_drop_extension_removes_everything(server_dsn):
    db = "cerebro_test_drop"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
    try:
        dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=db)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("create extension cerebro cascade")
            c.execute(
                "create table t as select i::float8 as a, i % 2 as l from generate_series(1, 20) i"
            )
            c.execute("select cerebro.load_dataset('d', 't', array['a'], 'l')")
            c.execute("drop extension cerebro")
            left = c.execute(
                "select count(*) from pg_namespace where nspname = 'cerebro'"
            ).fetchone()[0]
            objs = c.execute(
                "select count(*) from pg_proc p join pg_namespace n on "
                "n.oid = p.pronamespace where n.nspname = 'cerebro'"
            ).fetchone()[0]
            assert (left, objs) == (0, 0)
            c.execute("create extension cerebro")  # and it comes back cleanly
            assert (
                c.execute("select count(*) from cerebro.models where kind = 'roster'").fetchone()[
                    0
                ]
                >= 1
            )
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
            )


def test_name_rules_are_the_catalog_constraints(conn):
    """The name patterns Python checks first (for a clear message) are exactly the catalog's
    check constraints: one rule, written twice only because the frozen migration has it."""
    from cerebro_udfs import names

    defs = {
        r[0]: r[1]
        for r in conn.execute(
            "select conrelid::regclass::text, pg_get_constraintdef(oid) from pg_constraint "
            "where contype = 'c' and conrelid in ('cerebro.models'::regclass, "
            "'cerebro.datasets'::regclass) and pg_get_constraintdef(oid) like '%name ~%'"
        )
    }
    assert f"'{names.MODEL_NAME.pattern}'" in defs["cerebro.models"]
    assert f"'{names.DATASET_NAME.pattern}'" in defs["cerebro.datasets"]
