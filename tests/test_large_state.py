"""A full-size ResNet50 with Adam: a ~283 MB state hops between partitions and checkpoints.

Tiny 32x32 images keep the compute small; the state is what a real ResNet50 run moves
(25.6M weights + two Adam moments + batch-norm statistics).
"""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest

from cerebro_udfs import state
from helpers import fresh_database, run_to_end

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon


def test_resnet50_state_of_300_mb_hops_and_checkpoints(server_dsn):
    dsn = fresh_database(server_dsn, "cerebro_large_state")
    rng = np.random.default_rng(4)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table shots (id int primary key, x real[], y int)")
        for i in range(16):
            c.execute(
                "insert into shots values (%s, %s, %s)",
                (i, rng.random((32, 32, 3)).astype(np.float32).tolist(), i % 2),
            )
        c.execute(
            "select cerebro.load_dataset('shots', 'shots', array['x'], 'y', num_partitions => 2)"
        )
        c.execute(
            "select cerebro.launch('big', 'resnet50', 'shots', null, 'grid', "
            '\'{"learning_rate": {"choice": [0.001]}}\', max_epochs => 1, '
            "objective => 'train_loss', params => '{\"batch_size\": 4}')"
        )
    run_to_end(dsn, timeout=900)
    with psycopg.connect(dsn, autocommit=True) as c:
        cid, status, epoch = c.execute(
            "select config_id, status, epoch from cerebro.configs"
        ).fetchone()
        assert (status, epoch) == ("completed", 1)
        units = c.execute(
            "select partition, outcome from cerebro.units where config_id = %s order by unit_id",
            [cid],
        ).fetchall()
        assert sorted(units) == [(0, "ok"), (1, "ok")]  # it hopped: two partitions
        (size,) = c.execute(
            "select octet_length(state) from cerebro.checkpoints "
            "where config_id = %s and epoch = 1",
            [cid],
        ).fetchone()
        assert 280e6 < size < 300e6, size  # 23.6M weights x 3 x 4 bytes
        same = c.execute(
            "select k.state = cerebro._state_value(s.state) and "
            "cerebro._state_file(s.state) is not null from cerebro.checkpoints k join "
            "cerebro.states s using (config_id) where config_id = %s",
            [cid],
        ).fetchone()[0]
        ckpt = c.execute(
            "select state from cerebro.checkpoints where config_id = %s", [cid], binary=True
        ).fetchone()[0]  # hex text would be 566 MB
        info = c.execute(
            "select cerebro.state_info(state) from cerebro.checkpoints where config_id = %s", [cid]
        ).fetchone()[0]
    assert same  # the checkpoint holds the bytes of the last sub-epoch's state file
    st = state.decode(ckpt)  # CRC verified
    assert st.meta["partitions_done"] == [p for p, _ in units]
    weights = sum(a.size for _, a in st.model)
    moments = sum(a.size for _, a in st.optimizer)
    assert weights == 23_591_810  # ResNet50 with a 2-class head
    assert moments == 2 * 23_538_690 + 2  # Adam's m and v (trainable) + counters
    assert info["meta"]["epoch"] == 1 and json.dumps(info)
    it = next(a for n, a in st.optimizer if n.endswith("iteration"))
    assert int(it) == 4  # 2 batches on each partition, one optimizer
