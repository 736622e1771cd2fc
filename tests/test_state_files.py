"""Sub-epoch states as files in the data directory (issue 15, state_files.py), end to end.

The daemon runs with CEREBRO_STATE_FILE_MIN=0 so the tests' small models hop as files, as a
ResNet50 does by default. Checked: the rows stay the truth (every states row names a file
that is there, whole, and no other file is left), checkpoints keep the bytes, the weights
equal those of a run that keeps states in the table, and a scheduler and a worker backend
killed while a state file is half written lose nothing and leave no half-read state.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from cerebro_udfs import state, state_files
from helpers import (
    assert_exactly_once,
    final_states,
    launch,
    make_db,
    scheduler,
    wait_for,
)

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon

FILES = {"CEREBRO_STATE_FILE_MIN": "0"}


def _data_dir(dsn: str) -> Path:
    with psycopg.connect(dsn, autocommit=True) as c:
        return Path(c.execute("show data_directory").fetchone()[0])


def _db_dir(dsn: str) -> Path:
    with psycopg.connect(dsn, autocommit=True) as c:
        oid = c.execute(
            "select oid from pg_database where datname = current_database()"
        ).fetchone()[0]
    return _data_dir(dsn) / state_files.DIRECTORY / str(oid)


def _files(dsn: str) -> set[str]:
    d = _db_dir(dsn)
    return {p.name for p in d.iterdir()} if d.exists() else set()


def _states(dsn: str) -> list[tuple[int, bytes]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return [
            (cid, bytes(s))
            for cid, s in c.execute(
                "select config_id, state from cerebro.states order by 1"
            ).fetchall()
        ]


def _run(server_dsn: str, name: str, env: dict[str, str]) -> str:
    dsn = make_db(server_dsn, name)
    launch(dsn, "grid")
    p = scheduler(dsn, "--once", env=env)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return dsn


@pytest.fixture(scope="module")
def in_files(server_dsn):
    return _run(server_dsn, "cerebro_test_files_a", FILES)


def test_states_hop_as_files_and_the_rows_stay_the_truth(in_files):
    assert_exactly_once(in_files, epochs=2)
    rows = _states(in_files)
    assert len(rows) == 4
    named = set()
    for _cid, ref in rows:
        assert state_files.is_ref(ref), "the daemon asked for files: states rows name them"
        file_id, info = state_files.parse_ref(ref)
        path = _db_dir(in_files) / (file_id.hex() + state_files.SUFFIX)
        assert path.stat().st_size == info["size"]
        named.add(path.name)
    # every replaced file was deleted once its unit committed: only the named ones are left
    assert _files(in_files) == named
    with psycopg.connect(in_files, autocommit=True) as c:
        info = c.execute(
            "select cerebro.state_info(state) from cerebro.states limit 1"
        ).fetchone()[0]
        assert set(info) >= {"file", "size", "db"}
        # checkpoints hold the bytes, never a file: they are logged and dumped
        kinds = c.execute(
            "select bool_and(cerebro._state_file(state) is null), "
            "bool_and((cerebro.state_info(state) ->> 'format')::int = 2), count(*) "
            "from cerebro.checkpoints"
        ).fetchone()
        assert kinds == (True, True, 8)
        # the last epoch's checkpoint is the state file's content, byte for byte
        cid, ref = rows[0]
        ckpt = c.execute(
            "select k.state from cerebro.checkpoints k join cerebro.configs c "
            "using (config_id) where k.config_id = %s and k.epoch = c.epoch",
            [cid],
        ).fetchone()[0]
        assert bytes(ckpt) == bytes(
            c.execute("select cerebro._state_value(%s)", [ref]).fetchone()[0]
        )
        # an epoch's first unit read the last epoch's state file, not the checkpoint: the
        # unit results say nothing of it, but the weights below would differ if it were wrong


def test_file_states_train_the_same_weights_as_table_states(server_dsn, in_files):
    in_table = _run(server_dsn, "cerebro_test_files_b", {"CEREBRO_STATE_FILES": "off"})
    assert all(not state_files.is_ref(s) for _, s in _states(in_table))
    assert _files(in_table) == set()
    a, b = final_states(in_files), final_states(in_table)
    assert a.keys() == b.keys() and len(a) == 4
    for cid in a:
        for x, y in zip(a[cid], b[cid], strict=True):
            np.testing.assert_array_equal(x, y)


def test_killed_mid_write_loses_nothing_and_leaves_no_half_file(server_dsn, in_files):
    """The scheduler (kill -9) and the worker backends writing state files (terminated) die
    while a file is half written, and a committed mid-epoch state's file is cut short; a new
    scheduler finishes the search exactly once with the undisturbed weights: the half file is
    collected, never read, and the short one counts as a lost state (its epoch restarts from
    the checkpoint) instead of being half read."""
    dsn = make_db(server_dsn, "cerebro_test_files_c")
    launch(dsn, "grid")
    pause = Path("/tmp") / f"cerebro-pause-{uuid.uuid4().hex}"  # the server's user stats it
    # worker j = partition j (CEREBRO_SCHEDULE=mop): a config waits between its partitions,
    # so when the writers are stopped some config rests mid-epoch with a committed file
    # (under pick_any a worker keeps its config, and the ones mid-epoch may all be in flight)
    env = {**FILES, "CEREBRO_TEST_PAUSE_STATE_WRITE": str(pause), "CEREBRO_SCHEDULE": "mop"}
    p = scheduler(dsn, env=env)
    try:
        wait_for(dsn, OK_TRAIN_UNITS, lambda n: n >= 3)
        pause.touch()  # from now on a backend writing a state file stops half-way
        wait_for(dsn, "select 1", lambda _: bool(_stray(dsn)), timeout=120)
        stray = _stray(dsn)  # half written, its writer waiting
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(
                "select pg_terminate_backend(backend_pid) from cerebro.units where outcome is null"
            )
            wait_for(c, IN_FLIGHT_BACKENDS, lambda n: n == 0)
            cid, ref = c.execute(
                "select s.config_id, s.state from cerebro.states s join cerebro.configs k "
                "using (config_id) where cardinality(k.partitions_done) > 0 "
                "and cerebro._state_file(s.state) is not null order by 1 limit 1"
            ).fetchone()
        path = _db_dir(dsn) / (state_files.parse_ref(ref)[0].hex() + state_files.SUFFIX)
        os.truncate(path, path.stat().st_size // 2)
    finally:
        pause.unlink(missing_ok=True)
    run_to_end_files(dsn)
    assert not (stray & _files(dsn)), "the half-written file is gone"
    assert _files(dsn) == _named(dsn)
    assert_exactly_once(dsn, epochs=2)
    a, b = final_states(in_files), final_states(dsn)
    for k in a:
        for x, y in zip(a[k], b[k], strict=True):
            np.testing.assert_array_equal(x, y)
    with psycopg.connect(dsn, autocommit=True) as c:
        lost = c.execute("select count(*) from cerebro.units where outcome = 'lost'").fetchone()
        restarted = c.execute(
            "select count(*) from cerebro.events where action = 'epoch_restarted' "
            "and config_id = %s",
            [cid],
        ).fetchone()
    assert lost[0] >= 1  # the units writing files really died
    assert restarted[0] == 1  # the short file was a lost state, not a half-read one


OK_TRAIN_UNITS = "select count(*) from cerebro.units where outcome = 'ok' and kind = 'train'"
IN_FLIGHT_BACKENDS = (
    "select count(*) from pg_stat_activity a join cerebro.units u on u.backend_pid = a.pid "
    "where u.outcome is null"
)


def _stray(dsn: str) -> set[str]:
    """State files no states row names (with no unit committing meanwhile: half written)."""
    return _files(dsn) - _named(dsn)


def _named(dsn: str) -> set[str]:
    return {
        state_files.parse_ref(s)[0].hex() + state_files.SUFFIX
        for _, s in _states(dsn)
        if state_files.is_ref(s)
    }


def run_to_end_files(dsn: str) -> str:
    p = scheduler(dsn, "--once", env=FILES)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return out


def test_a_missing_or_short_file_is_refused_and_an_epoch_start_falls_back(server_dsn, in_files):
    """The aggregate refuses a short or missing file; an epoch whose last state file is gone
    starts from its checkpoint (the same bytes), so the config trains on."""
    dsn = _run(server_dsn, "cerebro_test_files_d", FILES)
    cid, ref = _states(dsn)[0]
    path = _db_dir(dsn) / (state_files.parse_ref(ref)[0].hex() + state_files.SUFFIX)
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("select cerebro._state_present(%s)", [ref]).fetchone()[0]
        os.truncate(path, path.stat().st_size // 2)
        assert not c.execute("select cerebro._state_present(%s)", [ref]).fetchone()[0]
        with pytest.raises(psycopg.Error, match=r"has \d+ bytes, its reference says"):
            c.execute("select cerebro._state_value(%s)", [ref])
        path.unlink()
        assert not c.execute("select cerebro._state_present(%s)", [ref]).fetchone()[0]
        with pytest.raises(psycopg.Error, match="is missing"):
            c.execute("select cerebro._state_value(%s)", [ref])
        # collection removes nothing a row names
        assert c.execute("select cerebro._collect_state_files()").fetchone()[0] == 0
        assert len(_files(dsn)) == 3
        c.execute(
            "update cerebro.configs set max_epochs = 3, status = 'active' where config_id = %s",
            [cid],
        )
    run_to_end_files(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute(
            "select status, epoch from cerebro.configs where config_id = %s", [cid]
        ).fetchone() == ("completed", 3)
        assert (
            c.execute(
                "select count(*) from cerebro.units where config_id = %s and outcome <> 'ok'",
                [cid],
            ).fetchone()[0]
            == 0
        )
    assert _files(dsn) == _named(dsn)


def test_collection_keeps_named_and_young_files_and_removes_old_orphans(server_dsn, in_files):
    """What a crashed writer leaves (a file no row names) goes once it is older than every
    open transaction; a file a row names, or one younger than an open transaction (its
    writer may not have committed yet), stays."""
    d = _db_dir(in_files)
    named = _named(in_files)
    owner = d.stat()
    old, young = d / ("0" * 32 + state_files.SUFFIX), d / ("1" * 32 + state_files.SUFFIX)
    for f in (old, young):
        f.write_bytes(b"half a state")
        os.chown(f, owner.st_uid, owner.st_gid)
    os.utime(old, (1e9, 1e9))  # 2001: older than any transaction
    with psycopg.connect(in_files) as open_tx, psycopg.connect(in_files, autocommit=True) as c:
        open_tx.execute("select 1")  # a transaction open since before `young` was written
        os.utime(young, None)
        assert c.execute("select cerebro._collect_state_files()").fetchone()[0] == 1
        assert _files(in_files) == named | {young.name}
        open_tx.rollback()
        os.utime(young, (1e9, 1e9))
        assert c.execute("select cerebro._collect_state_files()").fetchone()[0] == 1
    assert _files(in_files) == named


def test_the_state_format_reads_old_states_and_checks_its_payload():
    """Format 2 (XXH3) is written; format 1 (CRC32, 0.2/0.3 checkpoints) is still read."""
    st = state.ModelState([("w", np.arange(6, dtype=np.float32).reshape(2, 3))], [], {"e": 1})
    blob = state.encode(st)
    assert state.read_header(blob)["format"] == 2
    bad = bytearray(blob)
    bad[-1] ^= 1
    with pytest.raises(state.StateError, match="checksum"):
        state.decode(bytes(bad))
    old = _format1(st)
    back = state.decode(old)
    np.testing.assert_array_equal(back.model[0][1], st.model[0][1])


def _format1(st: state.ModelState) -> bytes:
    import json
    import struct
    import zlib

    a = st.model[0][1]
    payload = a.tobytes()
    header = {
        "format": 1,
        "meta": st.meta,
        "arrays": [
            {
                "section": "model",
                "name": "w",
                "dtype": "<f4",
                "shape": [2, 3],
                "offset": 0,
                "size": len(payload),
            }
        ],
        "crc32": zlib.crc32(payload),
        "payload_size": len(payload),
    }
    h = json.dumps(header).encode()
    return b"CRBSTATE" + struct.pack("<I", len(h)) + h + payload
