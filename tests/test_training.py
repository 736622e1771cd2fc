"""The in-database training step and evaluation, checked against plain Keras."""

import json

import numpy as np
import psycopg
import pytest

from cerebro_udfs import state
from cerebro_udfs.roster import mlp
from helpers import fresh_conn

PARAMS = {"hidden": [16, 16], "learning_rate": 0.01, "batch_size": 32, "dropout": 0.1}


@pytest.fixture(scope="module")
def ds(dsn, blobs_table):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.load_dataset('tr', %s, array['a', 'b'], 'lbl', "
            "num_partitions => 2, buffer_rows => 300, seed => 3)",
            [blobs_table],
        )
    return "tr"


def _partition(conn, name, part):
    rows = conn.execute(
        "select b.num_rows, b.x, b.y from cerebro.buffers b join cerebro.datasets d "
        "using (dataset_id) where d.name = %s and b.__dist_key__ = %s order by b.buffer_id",
        [name, part],
    ).fetchall()
    x = np.concatenate([np.frombuffer(r[1], "<f4").reshape(r[0], 2) for r in rows])
    y = np.concatenate([np.frombuffer(r[2], "<i4") for r in rows])
    return x, y


def _subepoch(conn, part, blob, params=PARAMS, seed=0):
    return conn.execute(
        "select state, loss, metrics, rows, seconds from cerebro.run_subepoch("
        "'mlp', 'tr', %s, %s, state => %s, seed => %s)",
        [part, json.dumps(params), blob, seed],
    ).fetchone()


def _plain_model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    m = mlp.build(
        {
            **PARAMS,
            "dataset": {
                "feature_shape": [2],
                "task": "classification",
                "num_classes": 2,
                "classes": ["in", "out"],
            },
        }
    )
    m.optimizer.build(m.trainable_variables)
    return m


def _weights(blob):
    st = state.decode(blob)
    return [a for _, a in st.model], [a for _, a in st.optimizer]


def test_subepochs_equal_plain_keras_and_resume_in_a_fresh_backend(conn, dsn, ds):
    s1 = _subepoch(conn, 0, None)
    s2 = _subepoch(conn, 1, s1[0])  # same backend: cached model reused
    with fresh_conn(dsn) as other:  # new backend: state only from bytea
        s2b = _subepoch(other, 1, s1[0])
    w2, o2 = _weights(s2[0])
    w2b, o2b = _weights(s2b[0])
    for a, b in zip(w2 + o2, w2b + o2b):
        np.testing.assert_array_equal(a, b)

    # plain Keras on the same partitions in the same order gives the same weights
    x0, y0 = _partition(conn, "tr", 0)
    x1, y1 = _partition(conn, "tr", 1)
    m = _plain_model()
    m.fit(x0, y0, batch_size=32, epochs=1, shuffle=False, verbose=0)
    m.fit(x1, y1, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, v in zip(w2, m.variables):
        np.testing.assert_allclose(a, v.numpy(), atol=1e-5)
    # Adam's iteration counter and moments survived the hop
    iters = dict(state.decode(s2[0]).optimizer)["adam/iteration"]
    assert int(iters) == int(np.ceil(len(y0) / 32)) + int(np.ceil(len(y1) / 32))
    for a, v in zip(o2, m.optimizer.variables):
        np.testing.assert_allclose(a, v.numpy(), atol=1e-5)
    meta = state.decode(s2[0]).meta
    assert meta["partitions_done"] == [0, 1]
    assert s1[3] == len(y0) and s2[3] == len(y1)


def test_a_subepoch_lowers_the_loss(conn, ds):
    init = state.capture(_plain_model(seed=4), {}).to_bytes()
    before = conn.execute(
        "select loss, rows from cerebro.run_evaluation('mlp', 'tr', %s, %s)",
        [init, json.dumps(PARAMS)],
    ).fetchone()
    assert before[1] == 4000
    s = _subepoch(conn, 0, init)
    s = _subepoch(conn, 1, s[0])
    after = conn.execute(
        "select loss, metrics from cerebro.run_evaluation('mlp', 'tr', %s, %s)",
        [s[0], json.dumps(PARAMS)],
    ).fetchone()
    assert after[0] < before[0] * 0.8
    assert after[1]["accuracy"] > 0.75


def test_fresh_init_is_seeded(conn, ds):
    a = _subepoch(conn, 0, None, seed=7)
    b = _subepoch(conn, 0, None, seed=7)
    c = _subepoch(conn, 0, None, seed=8)
    wa, wb, wc = _weights(a[0])[0], _weights(b[0])[0], _weights(c[0])[0]
    np.testing.assert_array_equal(wa[0], wb[0])
    assert not np.array_equal(wa[0], wc[0])


def test_raw_aggregate_from_sql(conn, ds):
    row = conn.execute("""
        select (r).loss, (r).rows, cerebro.state_info((r).state)->'meta'
          from (select cerebro.train_subepoch(null, cerebro.model_spec('mlp'),
                         cerebro.subepoch_config('mlp', 'tr', '{"hidden": [8]}', partition => 1))
                       within group (order by buffer_id, x, y, num_rows) as r
                  from cerebro.buffers
                 where dataset_id = (select dataset_id from cerebro.datasets where name = 'tr')
                   and __dist_key__ = 1) s""").fetchone()
    assert row[1] == 2000 and row[0] > 0
    assert row[2]["partitions_done"] == [1]


def test_a_state_the_backend_returned_is_not_restored_again_but_still_checked(conn, ds):
    """The model that returned an inline state keeps it, so the next sub-epoch from that state
    in the same backend restores nothing (same weights as a fresh backend: test above); a
    copy of it with one payload byte changed is still refused, in that same backend."""
    s1 = _subepoch(conn, 0, None)
    bad = bytearray(s1[0])
    bad[-1] ^= 0xFF
    with pytest.raises(psycopg.Error) as e:
        _subepoch(conn, 1, bytes(bad))
    assert "checksum mismatch" in str(e.value)
    again = _subepoch(conn, 1, s1[0])  # the refused one changed nothing it holds
    fresh = _subepoch(conn, 1, _subepoch(conn, 0, None)[0])
    wa, oa = _weights(again[0])
    wf, of = _weights(fresh[0])
    assert len(wa + oa) == len(wf + of) > 0
    for a, b in zip(wa + oa, wf + of):
        np.testing.assert_array_equal(a, b)


def _raw_subepoch(conn, steps):
    """A fresh init trained on partition 1 by the raw aggregate with ``steps_per_execution``."""
    return conn.execute(
        """
        select (r).state, (r).loss, (r).metrics
          from (select cerebro.train_subepoch(null, cerebro.model_spec('mlp'),
                         cerebro.subepoch_config('mlp', 'tr', %s, partition => 1)
                         || jsonb_build_object('steps_per_execution', %s::text))
                       within group (order by buffer_id, x, y, num_rows) as r
                  from cerebro.buffers
                 where dataset_id = (select dataset_id from cerebro.datasets where name = 'tr')
                   and __dist_key__ = 1) s""",
        [json.dumps(PARAMS), steps],
    ).fetchone()


def test_steps_per_execution_changes_nothing_but_speed(conn, ds):
    """Several steps per call into TensorFlow ("auto": 32 for this MLP; 5 leaves a partial
    last call of 63 steps) train exactly as one step per call: weights, Adam's moments and
    counter, loss and metrics, bit for bit."""
    one = _raw_subepoch(conn, "1")
    w1, o1 = _weights(one[0])
    for steps in ("auto", "5"):
        other = _raw_subepoch(conn, steps)
        w, o = _weights(other[0])
        for a, b in zip(w1 + o1, w + o):
            np.testing.assert_array_equal(a, b)
        assert other[1] == one[1] and other[2] == one[2]
    assert int(dict(state.decode(one[0]).optimizer)["adam/iteration"]) == 63  # 2000 / 32
    with pytest.raises(psycopg.Error) as e:
        _raw_subepoch(conn, "lots")
    assert "steps_per_execution must be 'auto' or a whole number" in str(e.value)


def test_auto_steps_per_execution_only_for_small_models():
    import keras

    from cerebro_udfs import training

    small = keras.Sequential([keras.Input((30,)), keras.layers.Dense(64)])
    big = keras.Sequential([keras.Input((1100,)), keras.layers.Dense(1000)])  # 1.1M params
    flat = {"dataset": {"feature_shape": [30]}}
    images = {"dataset": {"feature_shape": [224, 224, 3]}}
    assert training.steps_per_execution(small, flat) == training.AUTO_STEPS == 32
    assert training.steps_per_execution(big, flat) == 1
    assert training.steps_per_execution(small, images) == 1
    assert training.steps_per_execution(big, {**flat, "steps_per_execution": "5"}) == 5
    for m, cfg, want in ((small, flat, 32), (big, flat, 1)):
        m.compile(optimizer="adam", loss="mse")
        training.loop_in_graph(m, cfg)
        assert m.steps_per_execution == want
    own = keras.Sequential([keras.Input((30,)), keras.layers.Dense(64)])
    own.compile(optimizer="adam", loss="mse", steps_per_execution=3)
    training.loop_in_graph(own, flat)
    assert own.steps_per_execution == 3  # the model's own choice is kept


def test_state_from_other_architecture_is_refused(conn, ds):
    s = _subepoch(conn, 0, None)
    with pytest.raises(psycopg.Error) as e:
        _subepoch(conn, 1, s[0], params={**PARAMS, "hidden": [4]})
    assert "does not fit the model" in e.value.diag.message_primary


def test_unknown_parameter_is_refused(conn, ds):
    with pytest.raises(psycopg.Error) as e:
        _subepoch(conn, 0, None, params={"hiden": [4]})
    msg = e.value.diag.message_primary
    assert "does not take parameter(s) ['hiden']" in msg and "hidden" in e.value.diag.message_hint


def test_worker_backend_caches_partitions_and_models(dsn, ds):
    with fresh_conn(dsn) as c:
        s = _subepoch(c, 0, None)
        _subepoch(c, 0, s[0])
        _subepoch(c, 0, s[0])
        info = c.execute("select cerebro.cache_info()").fetchone()[0]
    assert info["partitions"]["items"] == 1 and info["partitions"]["hits"] == 2
    assert info["models"]["hits"] == 2  # restored into the cached compiled model
    assert 0 < info["partitions"]["bytes"] <= info["partitions"]["max_bytes"]


def test_lru_is_bounded():
    import numpy as np

    from cerebro_udfs.cache import LRU

    lru = LRU(3, max_bytes=100, size_of=lambda v: v.nbytes)
    for i in range(5):
        lru.put(i, np.zeros(5, np.float32))  # 20 bytes each
    assert list(lru.items) == [2, 3, 4] and lru.bytes == 60
    lru.put("big", np.zeros(100, np.float32))  # larger than the cache: not kept
    assert "big" not in lru.items
    lru.get(2)
    lru.put(5, np.zeros(5, np.float32))
    assert list(lru.items) == [4, 2, 5]
