"""Fixtures: a real PostgreSQL with plpython3u and the cerebro extension.

The server comes from CEREBRO_TEST_DSN when set (any server with the extension files and
the project's Python on its PYTHONPATH); otherwise the embedded default is started. Each test
session gets a fresh database so tests never see leftovers.

Markers: every test whose fixtures reach ``server_dsn`` (directly or through ``dsn``, ``conn``,
``blobs_table`` or a module's own database fixture) is marked ``server`` at collection, so
``pytest -m "not server"`` runs the pure tests and never starts or touches a server (a pure
test that opens a connection anyway fails, see ``_pure_tests_stay_off_the_server``).
``slow`` marks the tests that train real models end to end for many seconds
(``pytest -m "not slow"`` is the quick loop). Shared plain functions are in helpers.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers import fresh_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "udfs"))  # pure in-database modules, tested alone too

TEST_DB = "cerebro_test"
SERVER_FIXTURE = "server_dsn"  # the root of every fixture that needs PostgreSQL


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``server`` every test whose fixture closure includes ``server_dsn``."""
    for item in items:
        if SERVER_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _pure_tests_stay_off_the_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test not marked ``server`` may not open a connection: it would need a server that
    ``-m "not server"`` promises not to need. Request ``server_dsn`` (or ``dsn``/``conn``)."""
    if request.node.get_closest_marker("server") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            f"{request.node.nodeid} is not marked 'server' but connects to PostgreSQL: "
            "take the server_dsn, dsn or conn fixture"
        )

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", refuse)


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
