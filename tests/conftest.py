"""Fixtures: a real PostgreSQL with plpython3u and the cerebro extension.

The server comes from CEREBRO_TEST_DSN when set (any server with the extension files and
the project's Python on its PYTHONPATH); otherwise the embedded default is started. Each test
session gets a fresh database so tests never see leftovers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "udfs"))      # pure in-database modules, tested alone too

TEST_DB = "cerebro_test"


@pytest.fixture(scope="session")
def server_dsn() -> str:
    dsn = os.environ.get("CEREBRO_TEST_DSN")
    if dsn:
        return dsn
    from cerebro.cluster import Cluster

    cluster = Cluster.default()
    cluster.up()
    return cluster.conninfo("postgres")


@pytest.fixture(scope="session")
def dsn(server_dsn: str) -> Iterator[str]:
    yield fresh_database(server_dsn, TEST_DB)


@pytest.fixture()
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection (a backend that may already hold cached models)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


def fresh_database(server_dsn: str, name: str) -> str:
    """(Re)create database ``name`` with the extension; returns its DSN."""
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create extension cerebro cascade")
    return dsn


def fresh_conn(dsn: str) -> psycopg.Connection:
    """A new backend: empty GD, so nothing is served from a cache."""
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def blobs_table(dsn: str) -> str:
    """A circle-in-square classification table: learnable, seeded, 4000 rows."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select setseed(0.42)")
        c.execute("""
            create table public.blobs as
            select i as id, a, b, (i % 7) as c,
                   case when a * a + b * b < 0.5 then 'in' else 'out' end as lbl,
                   a * 3 - b as target
              from (select i, random() * 2 - 1 as a, random() * 2 - 1 as b
                      from generate_series(1, 4000) i) s order by i""")
    return "public.blobs"
