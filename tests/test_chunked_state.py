"""States larger than one PostgreSQL value travel as chunks (cerebro.state_chunks).

A BERT-base state with Adam (~1.3 GB) cannot be one bytea. The scheduler is told to chunk
every state above a few bytes, so small MLP states take the same path a 1.3 GB state takes:
the results must equal an inline run bit for bit, survive SIGKILLs, leave no orphan chunks,
and work with evaluate, export and clone.
"""

from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import psycopg
import pytest

from cerebro_udfs import chunks, state
from helpers import launch, make_db, run_to_end, scheduler, wait_for

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon


def _blob(c: psycopg.Connection, ref: bytes) -> bytes:
    if not chunks.is_ref(ref):
        return ref
    blob_id, info = chunks.parse_ref(ref)
    parts = c.execute(
        "select data from cerebro.state_chunks where blob = %s order by seq", [blob_id]
    ).fetchall()
    assert len(parts) == info["chunks"]
    return b"".join(p[0] for p in parts)


def _final(dsn: str) -> dict[int, list[np.ndarray]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "select k.config_id, k.state from cerebro.checkpoints k join "
            "cerebro.configs c using (config_id) where k.epoch = c.epoch "
            "order by 1"
        ).fetchall()
        return {cid: [a for _, a in state.decode(_blob(c, ref)).model] for cid, ref in rows}


@pytest.fixture(scope="module")
def runs(server_dsn):
    inline = make_db(server_dsn, "cerebro_chunks_inline")
    launch(inline, "grid")
    run_to_end(inline)

    chunked = make_db(server_dsn, "cerebro_chunks_chunked")
    launch(chunked, "grid")
    old = {k: os.environ.get(k) for k in ("CEREBRO_STATE_INLINE_MAX", "CEREBRO_STATE_CHUNK_BYTES")}
    os.environ["CEREBRO_STATE_INLINE_MAX"] = "100"
    os.environ["CEREBRO_STATE_CHUNK_BYTES"] = "700"
    try:
        for target in sorted(random.Random(3).sample(range(1, 20), 2)):
            p = scheduler(chunked)
            wait_for(
                chunked,
                "select count(*) from cerebro.units where outcome = 'ok'",
                lambda n, t=target: n >= t,
            )
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        run_to_end(chunked)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return inline, chunked


def test_chunked_states_equal_inline_states_bit_for_bit_despite_kills(runs):
    inline, chunked = runs
    a, b = _final(inline), _final(chunked)
    assert a.keys() == b.keys() and len(a) == 4
    for cid in a:
        for x, y in zip(a[cid], b[cid]):
            np.testing.assert_array_equal(x, y)
    with psycopg.connect(chunked, autocommit=True) as c:
        infos = [
            r[0] for r in c.execute("select cerebro.state_info(state) from cerebro.checkpoints")
        ]
        assert infos and all(i["chunked"] and i["chunks"] >= 2 for i in infos)
        assert c.execute("select count(*) from cerebro.state_chunks").fetchone()[0] >= sum(
            i["chunks"] for i in infos
        )
        # every chunk row is referenced by a state or a checkpoint: nothing to collect
        assert c.execute("select cerebro._drop_unreferenced_chunks()").fetchone()[0] == 0
    with psycopg.connect(inline, autocommit=True) as c:
        assert c.execute("select count(*) from cerebro.state_chunks").fetchone()[0] == 0


def test_evaluate_export_and_clone_read_chunked_checkpoints(runs, tmp_path):
    import keras

    _, dsn = runs
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute("select config_id from cerebro.leaderboard where rank = 1").fetchone()[0]
        want = c.execute(
            "select valid_loss from cerebro.metrics where config_id = %s and epoch = 2", [cid]
        ).fetchone()[0]
        got = c.execute("select cerebro.evaluate(%s, 'va')", [cid]).fetchone()[0]
        assert got["loss"] == pytest.approx(want, rel=1e-4)
        blob = c.execute("select cerebro.export_model(%s)", [cid]).fetchone()[0]
        ref = c.execute(
            "select state from cerebro.checkpoints where config_id = %s and epoch = 2", [cid]
        ).fetchone()[0]
        weights = [a for _, a in state.decode(_blob(c, ref)).model]
        clone = c.execute(
            "select cerebro.clone(%s, %s)", [cid, json.dumps({"learning_rate": 0.001})]
        ).fetchone()[0]
        shared = c.execute(
            "select count(*) from cerebro.checkpoints where state = %s", [ref]
        ).fetchone()[0]
        assert shared == 2  # the clone shares the parent's blob (immutable)
        c.execute("select cerebro.drop_workload('grid')")
        assert c.execute("select count(*) from cerebro.state_chunks").fetchone()[0] == 0
        assert clone > cid
    (tmp_path / "m.keras").write_bytes(blob)
    model = keras.models.load_model(tmp_path / "m.keras")
    for x, y in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(x, y)
