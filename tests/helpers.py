"""Plain helpers shared by the test modules (and, for ``wait_for``, by bench/).

Fixtures live in conftest.py; everything here is an ordinary function that takes a DSN, so a
test module imports what it uses (``from helpers import make_db, run_to_end``) instead of
importing another test module. Nothing here starts a server: only the fixtures do.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent

# concurrent test runs on one server keep apart by giving each its own database suffix
DB_SUFFIX = os.environ.get("CEREBRO_TEST_DB_SUFFIX", "")

# the grid of the scheduler tests: 4 configs of the mlp
SPACE = {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.01, 0.003]}}


class WaitTimeout(AssertionError, TimeoutError):
    """``wait_for`` gave up: a test failure for pytest, a TimeoutError for the benchmarks."""


def wait_for(
    db: str | psycopg.Connection,
    query: str,
    predicate: Callable[[Any], bool],
    timeout: float = 120.0,
    *,
    params: Sequence[Any] | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll a query until its value satisfies predicate (state-based, not time-based).

    ``db`` is a DSN (a new autocommit connection is used and closed) or an open connection.
    Returns the first value that satisfies ``predicate``; raises WaitTimeout after ``timeout``
    seconds with the last value seen.
    """
    deadline = time.monotonic() + timeout
    with _connection(db) as c:
        while True:
            value = c.execute(query, params).fetchone()[0]
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise WaitTimeout(f"timed out waiting on {query!r}: last value {value!r}")
            time.sleep(interval)


def _connection(db: str | psycopg.Connection) -> contextlib.AbstractContextManager:
    if isinstance(db, psycopg.Connection):
        return contextlib.nullcontext(db)
    return psycopg.connect(db, autocommit=True)


def fetch_all(dsn: str, query: str, args: Sequence[Any] | None = None) -> list[tuple]:
    """All rows of one query on a new autocommit connection."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(query, args).fetchall()


# (only when needed: concurrent ALTER ROLEs of one role fail with "tuple concurrently updated")
ALLOW_SCHEDULER_LOGIN = (
    "do $$ begin if not (select rolcanlogin from pg_roles where rolname = 'cerebro_scheduler') "
    "then alter role cerebro_scheduler login; end if; end $$"
)


def fresh_database(server_dsn: str, name: str) -> str:
    """(Re)create database ``name`` with the extension; returns its DSN."""
    name += DB_SUFFIX
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create extension cerebro cascade")
        c.execute(ALLOW_SCHEDULER_LOGIN)
    return dsn


def scheduler_dsn(dsn: str) -> str:
    """The daemon's DSN for database ``dsn``: it logs in as cerebro_scheduler, never as a
    superuser, so every test that runs it also checks that role's grants."""
    return psycopg.conninfo.make_conninfo(dsn, user="cerebro_scheduler")


def wait_through_restarts(
    dsn: str, query: str, predicate: Callable[[Any], bool], timeout: float = 300, **kw: Any
) -> Any:
    """``wait_for`` while faults are injected: the server may be resetting or restarting,
    so a refused or broken connection means "not yet", until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return wait_for(dsn, query, predicate, max(deadline - time.monotonic(), 1), **kw)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the server is restarting: retry the connection


def fresh_conn(dsn: str) -> psycopg.Connection:
    """A new backend: empty GD, so nothing is served from a cache."""
    return psycopg.connect(dsn, autocommit=True)


def create_source(c: psycopg.Connection) -> None:
    """Table ``src``: 1,200 rows (id, a, b, lbl 'in'/'out' of a circle), the same every time."""
    c.execute("select setseed(0.3)")
    c.execute(
        "create table src as select i as id, a, b, "
        "case when a * a + b * b < 0.5 then 'in' else 'out' end as lbl "
        "from (select i, random() * 2 - 1 as a, random() * 2 - 1 as b "
        "from generate_series(1, 1200) i) s order by i"
    )


def make_db(server_dsn: str, name: str) -> str:
    """A fresh database with a learnable 1,200-row dataset 'tr' and validation set 'va'."""
    dsn = fresh_database(server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as c:
        create_source(c)
        c.execute(
            "select cerebro.load_dataset('tr', 'src', array['a', 'b'], 'lbl', "
            "num_partitions => 2, seed => 1)"
        )
        c.execute("create view va_src as select * from src where id % 4 = 0")
        c.execute(
            "select cerebro.load_dataset('va', 'va_src', like_dataset => 'tr', "
            "num_partitions => 2)"
        )
    return dsn


def launch(
    dsn: str,
    name: str,
    space: dict = SPACE,
    epochs: int = 2,
    model: str = "mlp",
    params: dict | None = None,
) -> int:
    """A grid workload on make_db's 'tr'/'va' (seed 11); returns its workload_id."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(
            "select cerebro.launch(%s, %s, 'tr', 'va', 'grid', %s, "
            "max_epochs => %s, seed => 11, params => %s)",
            [name, model, json.dumps(space), epochs, json.dumps(params or {"batch_size": 32})],
        ).fetchone()[0]


def scheduler(dsn: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The scheduler daemon as a subprocess (stdout and stderr merged into a pipe);
    ``env`` adds to this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", scheduler_dsn(dsn), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def wait_all_completed(dsn: str, timeout: float = 300) -> None:
    """Until every config of the database is completed (state-based)."""
    wait_for(
        dsn,
        "select count(*) from cerebro.configs where status <> 'completed'",
        lambda n: n == 0,
        timeout=timeout,
    )


def run_to_end(dsn: str, timeout: float = 300) -> str:
    """Run ``scheduler --once`` until nothing is left to do; returns its output."""
    p = scheduler(dsn, "--once")
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out
    return out


def assert_exactly_once(dsn: str, epochs: int, partitions: int = 2) -> None:
    """Every (config, epoch) visited each train and valid partition exactly once; one metrics
    row per epoch; every config completed. Clones only train the epochs after their start."""
    with psycopg.connect(dsn, autocommit=True) as c:
        trained = c.execute(
            "select coalesce(sum(epoch - coalesce(clone_epoch, 0)), 0) from cerebro.configs"
        ).fetchone()[0]
        dup = c.execute(
            "select config_id, epoch, partition, kind, count(*) from cerebro.units "
            "where outcome = 'ok' group by 1, 2, 3, 4 having count(*) <> 1"
        ).fetchall()
        assert dup == []
        per = c.execute(
            "select config_id, epoch, kind, array_agg(partition order by partition) "
            "from cerebro.units where outcome = 'ok' group by 1, 2, 3"
        ).fetchall()
        assert len(per) == trained * 2
        assert all(parts == list(range(partitions)) for *_, parts in per)
        metrics = c.execute(
            "select count(*), count(distinct (config_id, epoch)) from cerebro.metrics"
        ).fetchone()
        assert metrics == (trained, trained)
        assert (
            c.execute(
                "select count(*) from cerebro.configs c join cerebro.workloads w "
                "using (workload_id) where c.status <> 'completed' or c.epoch <> "
                "coalesce(c.max_epochs, w.max_epochs)"
            ).fetchone()[0]
            == 0
        )
        assert (
            c.execute(
                "select count(*) from cerebro.configs where max_epochs is null and epoch <> %s",
                [epochs],
            ).fetchone()[0]
            == 0
        )


def final_states(dsn: str) -> dict[int, list[Any]]:
    """Each config's model weights at its last epoch, decoded from its checkpoint."""
    from cerebro_udfs import state

    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select k.config_id, k.state from cerebro.checkpoints k join "
            "cerebro.configs c using (config_id) where k.epoch = c.epoch "
            "order by 1"
        ).fetchall()
    return {cid: [a for _, a in state.decode(blob).model] for cid, blob in rows}


@contextlib.contextmanager
def local_nodes(coordinator: str, n: int) -> Iterator[tuple[Path, list[Any]]]:
    """``n`` node servers started the way ``cerebro up --nodes n`` starts them (free ports),
    registered on ``coordinator``; yields (their CEREBRO_HOME, the NodeServers) with
    PGPASSFILE pointing at its pgpass file, and stops and removes them afterwards."""
    import shutil
    import tempfile

    from cerebro.cluster import Cluster
    from cerebro.nodes import down_nodes, up_nodes

    # not under pytest's tmp_path: every pytest session on this machine resets
    # /tmp/pytest-of-<user> to 0700, which would lock the node servers' OS user out
    home = Path(tempfile.mkdtemp(prefix="cerebro-nodes-"))
    home.chmod(0o711)
    saved = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(home / "pgpass")  # what `cerebro` sets from CEREBRO_HOME
    os_user = Cluster.default().os_user
    try:
        yield home, up_nodes(home, n, coordinator, os_user, base_port=0)
    finally:
        down_nodes(home, os_user)
        shutil.rmtree(home, ignore_errors=True)
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
