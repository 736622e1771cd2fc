"""The extension as a whole: versions agree, the script is built from sql/, drop is clean."""

import re
from pathlib import Path

import cerebro
import cerebro_udfs
import psycopg
from cerebro import build
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent

CATALOG = {"models", "datasets", "buffers", "workloads", "configs", "metrics", "checkpoints",
           "states", "units", "events"}


def test_one_version_everywhere():
    pyproject = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert pyproject.group(1) == cerebro.__version__ == cerebro_udfs.__version__ \
        == build.control_version()


def test_install_script_is_built_from_sql_sources():
    committed = build.install_script_path().read_text()
    assert committed == build.render(), "run `make sql` and commit extension/"


def test_catalog_has_constraints(conn):
    tables = {r[0] for r in conn.execute(
        "select tablename from pg_tables where schemaname = 'cerebro'")}
    assert CATALOG <= tables
    fks = conn.execute("select count(*) from pg_constraint c join pg_namespace n on "
                       "n.oid = c.connamespace where n.nspname = 'cerebro' and c.contype = 'f'"
                       ).fetchone()[0]
    assert fks >= 12
    # constraints really refuse bad rows
    for stmt in ("insert into cerebro.metrics (config_id, epoch) values (-1, 1)",      # fk
                 "insert into cerebro.units (config_id, epoch, partition, kind) "
                 "values (-1, 1, 0, 'bogus')",                                         # check
                 "insert into cerebro.datasets (name, source, features, label, task, "
                 "feature_shape, normalization, statistics, num_rows, num_partitions, "
                 "buffer_rows, rows_per_partition, seed) values ('x', 's', '[]', 'l', "
                 "'regression', '{1}', '{}', '{}', 0, 1, 1, '{0}', 0)"):              # rows > 0
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
            c.execute("create table t as select i::float8 as a, i % 2 as l "
                      "from generate_series(1, 20) i")
            c.execute("select cerebro.load_dataset('d', 't', array['a'], 'l')")
            c.execute("drop extension cerebro")
            left = c.execute(
                "select count(*) from pg_namespace where nspname = 'cerebro'").fetchone()[0]
            objs = c.execute("select count(*) from pg_proc p join pg_namespace n on "
                             "n.oid = p.pronamespace where n.nspname = 'cerebro'").fetchone()[0]
            assert (left, objs) == (0, 0)
            c.execute("create extension cerebro")          # and it comes back cleanly
            assert c.execute("select count(*) from cerebro.models where kind = 'roster'"
                             ).fetchone()[0] >= 1
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(db)))
