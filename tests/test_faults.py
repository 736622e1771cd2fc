"""Always on: a search keeps going through every fault, with nobody restarting anything.

The daemon runs the way ``cerebro up`` runs it: under the supervisor (``cerebro supervise``),
logged in as cerebro_scheduler. While a grid of 4 configs x 4 epochs x 2 partitions trains,
one fault after another hits work in flight: a worker backend terminated, the leader's and
the listener's backends terminated, a worker backend killed with SIGKILL (the postmaster then
resets every backend), an immediate-mode restart of PostgreSQL by pg_ctl with an empty
environment, and SIGKILL of the daemon itself. The workload must complete exactly once with
the weights of an undisturbed run, and the daemon process must have been restarted only for
the fault that killed it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from cerebro.cluster import USER_CONNECTIONS, Cluster, size_connections
from cerebro.scheduler import LOCK_KEY
from cerebro.supervisor import read_state
from helpers import (
    ROOT,
    assert_exactly_once,
    final_states,
    fresh_database,
    launch,
    make_db,
    run_to_end,
    scheduler,
    scheduler_dsn,
    wait_all_completed,
    wait_for,
    wait_through_restarts,
)

pytestmark = pytest.mark.slow

EPOCHS = 4
SUPERVISE = [sys.executable, "-m", "cerebro.cli", "supervise"]  # as cerebro up starts it
RUNNING_UNIT = (
    "select (select backend_pid from cerebro.units where ended_at is null and kind = 'train' "
    "order by unit_id limit 1)"
)


@pytest.fixture
def supervised(server_dsn: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database with the grid launched, and the supervised daemon scheduling it."""
    dsn = make_db(server_dsn, "cerebro_test_faults")
    launch(dsn, "faults", epochs=EPOCHS)
    state = tmp_path / "scheduler.json"
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [*SUPERVISE, "--dsn", scheduler_dsn(dsn), "--state", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        yield dsn, state
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        print((tmp_path / "daemon.log").read_text()[-4000:])


def _now(dsn: str) -> dt.datetime:
    return wait_through_restarts(dsn, "select clock_timestamp()", lambda t: t is not None)


def _one_pid(dsn: str, query: str) -> int:
    """The pid a query names, once there is one (state-based wait)."""
    return int(wait_through_restarts(dsn, query, lambda pid: pid is not None))


def _terminate(dsn: str, query: str) -> str:
    pid = _one_pid(dsn, query)
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("select pg_terminate_backend(%s)", [pid]).fetchone()[0]
    return f"pid {pid}"


def _backend(dsn: str, app: str) -> str:
    return (
        "select (select pid from pg_stat_activity where datname = current_database() "
        f"and application_name = '{app}' and usename = 'cerebro_scheduler' limit 1)"
    )


def _kill_backend(dsn: str) -> str:
    pid = _one_pid(dsn, RUNNING_UNIT)
    os.kill(pid, signal.SIGKILL)
    return f"pid {pid}"


def _restart_server(dsn: str) -> str:
    """pg_ctl restart -m immediate as the server's OS user, with PATH as its whole
    environment: no PYTHONPATH, nothing cerebro up would have set."""
    _one_pid(dsn, RUNNING_UNIT)
    cluster = Cluster.default()
    cluster._as_server_user(
        [
            str(cluster.bindir / "pg_ctl"),
            "restart",
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
            "-D",
            str(cluster.data_dir),
            "-l",
            str(cluster.log_file),
        ],
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    cluster.wait_ready()
    return "pg_ctl restart -m immediate"


def _kill_daemon(state: Path) -> Callable[[str], str]:
    def kill(dsn: str) -> str:
        _one_pid(dsn, RUNNING_UNIT)
        pid = read_state(state)["pid"]
        os.kill(pid, signal.SIGKILL)
        return f"pid {pid}"

    return kill


def test_the_search_survives_every_fault_and_finishes_exactly_once(
    server_dsn: str, supervised: tuple[str, Path]
) -> None:
    dsn, state = supervised
    embedded = not os.environ.get("CEREBRO_TEST_DSN")
    faults: list[tuple[str, Callable[[str], str]]] = [
        ("kill -9 the daemon", _kill_daemon(state)),
        ("pg_terminate_backend(worker)", lambda d: _terminate(d, RUNNING_UNIT)),
        (
            "pg_terminate_backend(leader)",
            lambda d: _terminate(d, _backend(d, "cerebro scheduler")),
        ),
        (
            "pg_terminate_backend(listener)",
            lambda d: _terminate(d, _backend(d, "cerebro listener")),
        ),
        ("kill -9 worker backend", _kill_backend),
        ("immediate restart of PostgreSQL", _restart_server),
    ]
    if not embedded:  # the server is not ours to restart
        faults = [f for f in faults if f[1] is not _restart_server]
    table = []
    for name, inject in faults:
        active = wait_through_restarts(
            dsn,
            "select count(*) from cerebro.configs where status = 'active'",
            lambda n: n is not None,
        )
        assert active > 0, f"the workload finished before the fault {name!r}"
        how = inject(dsn)
        since = _now(dsn)
        # recovered: a unit started after the fault has committed
        ended = wait_through_restarts(
            dsn,
            "select min(ended_at) from cerebro.units where outcome = 'ok' and started_at > %s",
            lambda t: t is not None,
            timeout=300,
            params=[since],
        )
        table.append((name, how, (ended - since).total_seconds()))
    wait_through_restarts(
        dsn,
        "select count(*) from cerebro.configs where status <> 'completed'",
        lambda n: n == 0,
        timeout=600,
    )
    print("\nfault | injected | seconds until a new unit committed")
    for row in table:
        print("{} | {} | {:.1f}".format(*row))

    # the daemon process was restarted for the one fault that killed it, and only for it
    assert read_state(state)["restarts"] == 1
    status = subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "status", "--dsn", dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    print(status)
    assert "leader:" in status and "heartbeat" in status, status
    assert "last error" in status  # what it recovered from: the server restart, last
    per_min = float(status.split(" units/min")[0].rsplit(" ", 1)[1])
    assert per_min > 0
    assert_exactly_once(dsn, epochs=EPOCHS)
    with psycopg.connect(dsn, autocommit=True) as c:
        per_epoch = c.execute(
            "select count(*), count(distinct (config_id, epoch)) from cerebro.metrics"
        ).fetchone()
        lost = c.execute("select count(*) from cerebro.units where outcome = 'lost'").fetchone()
    assert per_epoch == (4 * EPOCHS, 4 * EPOCHS)
    assert lost[0] >= 3  # the faults really interrupted work in flight

    reference = make_db(server_dsn, "cerebro_test_faults_ref")
    launch(reference, "faults", epochs=EPOCHS)
    run_to_end(reference)
    a, b = final_states(reference), final_states(dsn)
    assert a.keys() and len(a) == len(b) == 4
    for x, y in zip(a.values(), b.values()):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_a_user_holding_the_scheduler_lock_cannot_park_the_scheduler(server_dsn: str) -> None:
    """Any role may take an advisory lock; a plain user who takes the scheduler's key before
    the daemon starts is ended, and the search runs (it would wait as standby for ever)."""
    dsn = make_db(server_dsn, "cerebro_test_thief")
    launch(dsn, "thief", epochs=1)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "do $$ begin create role mallory login; "
            "exception when duplicate_object then null; end $$"
        )
        c.execute("grant cerebro_user to mallory")
    mallory = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user="mallory"), autocommit=True)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("select * from cerebro._evict_lock_thieves()")
    mallory.execute("select pg_advisory_lock(%s)", [LOCK_KEY])
    out = run_to_end(dsn, timeout=300)
    assert "ended session" in out and "of role mallory" in out, out
    assert_exactly_once(dsn, epochs=1)
    with pytest.raises(psycopg.OperationalError):  # her session was ended
        mallory.execute("select 1")
    mallory.close()
    with psycopg.connect(dsn, autocommit=True) as c:  # a clean exit leaves no stale row
        assert c.execute("select count(*) from cerebro.schedulers").fetchone()[0] == 0


def test_cerebro_up_sizes_max_connections_for_the_largest_dataset(server_dsn: str) -> None:
    """The daemon needs a connection per partition plus two: max_connections must fit the
    largest dataset a user may load (the limit max_partitions) with room for people."""
    dsn = fresh_database(server_dsn, "cerebro_test_sizing")
    with psycopg.connect(dsn, autocommit=True) as c:
        current = int(c.execute("show max_connections").fetchone()[0])
        reserved = int(c.execute("show superuser_reserved_connections").fetchone()[0])
        limit = c.execute("select cerebro._limit('max_partitions')::int").fetchone()[0]
        if not os.environ.get("CEREBRO_TEST_DSN"):
            # cerebro up (the session fixture) already sized the embedded server
            assert current - reserved >= limit + 2 + USER_CONNECTIONS
            assert size_connections(c) is None
        c.execute("update cerebro.limits set value = %s where name = 'max_partitions'", [5000])
        try:
            assert size_connections(c) == 5000 + 2 + USER_CONNECTIONS + reserved
            pending = c.execute(
                "select setting from pg_file_settings where name = 'max_connections' "
                "and sourcefile like '%%postgresql.auto.conf'"
            ).fetchone()
            assert pending == (str(5000 + 2 + USER_CONNECTIONS + reserved),)
        finally:  # leave the server's configuration as it was
            c.execute(f"alter system set max_connections = {current:d}")


@pytest.fixture
def tiny_tablespace(server_dsn: str) -> Iterator[tuple[Path, str]]:
    """A tablespace on a 1 MB tmpfs of its own (``_fill`` fills it up). Needs root (mount)."""
    if os.geteuid() != 0 or os.environ.get("CEREBRO_TEST_DSN"):
        pytest.skip("mounting a small filesystem for the server needs root and a local server")
    # under the cluster's home, which the server's OS user can reach (tmp_path may not be)
    mnt = Path(tempfile.mkdtemp(prefix="tiny-", dir=Cluster.default().home))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], check=True
    )
    os.chown(mnt, *_server_ids())
    name = "cerebro_test_tiny" + os.environ.get("CEREBRO_TEST_DB_SUFFIX", "")
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f"drop tablespace if exists {name}")
        c.execute(f"create tablespace {name} location '{mnt}'")
    try:
        yield mnt, name
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as c:
            c.execute(
                "drop database if exists cerebro_test_diskfull"
                + os.environ.get("CEREBRO_TEST_DB_SUFFIX", "")
                + " with (force)"
            )
            c.execute(f"drop tablespace if exists {name}")
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()


def _fill(mnt: Path) -> Path:
    """Fill the filesystem to the last byte with a file; deleting it gives the space back."""
    filler = mnt / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def _server_ids() -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam(Cluster.default().os_user)
    return pw.pw_uid, pw.pw_gid


def test_a_full_disk_defers_units_and_fails_nothing(
    server_dsn: str, tiny_tablespace: tuple[Path, str]
) -> None:
    """The sub-epoch states live on a full filesystem: every unit fails with "No space left
    on device" and is deferred, not failed; once space returns the search finishes exactly
    once."""
    mnt, space = tiny_tablespace
    dsn = make_db(server_dsn, "cerebro_test_diskfull")
    launch(dsn, "diskfull", epochs=1)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"alter table cerebro.states set tablespace {space}")
    filler = _fill(mnt)
    p = scheduler(dsn)
    try:
        deferred = wait_for(
            dsn,
            "select count(*) from cerebro.units where outcome = 'cancelled' "
            "and error like '%%No space left on device%%retried when space returns%%'",
            lambda n: n >= 3,
        )
        with psycopg.connect(dsn, autocommit=True) as c:
            failed = c.execute(
                "select count(*) from cerebro.configs where status = 'failed'"
            ).fetchone()[0]
            done = c.execute("select count(*) from cerebro.metrics").fetchone()[0]
        assert (failed, done) == (0, 0)
        filler.unlink()  # space returns
        wait_all_completed(dsn, timeout=300)
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=120)
    assert deferred >= 3
    assert "deferred" in out and "No space left on device" in out, out
    assert_exactly_once(dsn, epochs=1)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("alter table cerebro.states set tablespace pg_default")


def test_a_forgotten_open_transaction_does_not_stall_the_search(server_dsn: str) -> None:
    """A person leaves `BEGIN; UPDATE cerebro.configs ...` open in psql, holding config 1's
    row lock. Its units wait at most the daemon's lock_timeout and are deferred (never failed);
    the other configs train meanwhile; after the COMMIT config 1 catches up."""
    dsn = make_db(server_dsn, "cerebro_test_open_txn")
    launch(dsn, "open-txn", epochs=1)
    person = psycopg.connect(dsn)  # not autocommit: the transaction stays open
    (first,) = person.execute("select min(config_id) from cerebro.configs").fetchone()
    person.execute("update cerebro.configs set priority = 5 where config_id = %s", [first])
    person.commit()  # the highest priority: a free worker tries config 1 first (pick_any)
    person.execute("update cerebro.configs set priority = 1 where config_id = %s", [first])
    p = scheduler(dsn, env={"CEREBRO_LOCK_TIMEOUT_S": "1"})
    try:
        wait_for(  # every other config finishes while the lock is held
            dsn,
            "select count(*) from cerebro.configs where status = 'completed' and config_id <> %s",
            lambda n: n == 3,
            params=[first],
        )
        with psycopg.connect(dsn, autocommit=True) as c:
            status, epochs = c.execute(
                "select status, epoch from cerebro.configs where config_id = %s", [first]
            ).fetchone()
        assert (status, epochs) == ("active", 0)
        person.commit()
        wait_for(
            dsn,
            "select status from cerebro.configs where config_id = %s",
            lambda s: s == "completed",
            params=[first],
        )
    finally:
        person.close()
        p.terminate()
        out, _ = p.communicate(timeout=120)
    # its units were not started: each waited 1 s for the lock, then was deferred
    assert "unit not started: canceling statement due to lock timeout" in out, out
    assert "another session holds a lock on the config; retried" in out
    assert_exactly_once(dsn, epochs=1)


def test_too_few_connections_defer_units_with_a_clear_message(server_dsn: str) -> None:
    """The server refuses the daemon's second worker connection (the role's CONNECTION
    LIMIT stands in for max_connections): its units are deferred, the reason is in
    cerebro.schedulers.last_error with what to raise, and once connections are available
    again the search finishes exactly once."""
    dsn = make_db(server_dsn, "cerebro_test_conn_limit")
    launch(dsn, "limit", epochs=1)
    p = None
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        # leader + listener + one worker: partition 1's worker cannot connect (on top of
        # what the role already uses, e.g. the daemon `cerebro up` started for database
        # cerebro)
        (used,) = admin.execute(
            "select count(*) from pg_stat_activity where usename = 'cerebro_scheduler'"
        ).fetchone()
        admin.execute(f"alter role cerebro_scheduler connection limit {used + 3:d}")
        try:
            p = scheduler(dsn)
            error = wait_for(
                dsn,
                "select string_agg(last_error, ' ') from cerebro.schedulers",
                lambda e: e is not None and "too many connections" in e,
            )
            assert "raise the server's max_connections" in error, error
            with psycopg.connect(dsn, autocommit=True) as c:  # nothing failed meanwhile
                assert c.execute(
                    "select count(*) from cerebro.configs where status = 'failed'"
                ).fetchone() == (0,)
        finally:
            admin.execute("alter role cerebro_scheduler connection limit -1")
    try:
        wait_all_completed(dsn, timeout=300)
    finally:
        if p is not None:
            p.terminate()
            p.communicate(timeout=120)
    assert_exactly_once(dsn, epochs=1)
