"""The model-state blob: round trip, corruption detection, optimizer state survives."""

import numpy as np
import pytest

from cerebro_udfs import state
from cerebro_udfs.roster import mlp

DATASET = {"feature_shape": [3], "task": "classification", "num_classes": 2, "classes": [0, 1]}


def test_round_trip_keeps_every_array_and_scalar_shapes():
    st = state.ModelState(
        model=[("w", np.arange(6, dtype=np.float32).reshape(2, 3)), ("seed", np.array([1, 2]))],
        optimizer=[
            ("iteration", np.array(7, dtype=np.int64)),
            ("m", np.full((2, 3), 0.5, dtype=np.float32)),
        ],
        meta={"config_id": 3, "epoch": 1, "partitions_done": [1, 0]},
    )
    back = state.decode(st.to_bytes())
    assert back.meta == st.meta
    for a, b in zip(st.model + st.optimizer, back.model + back.optimizer):
        assert a[0] == b[0]
        assert a[1].shape == b[1].shape and a[1].dtype == b[1].dtype
        np.testing.assert_array_equal(a[1], b[1])


def test_corruption_is_detected():
    blob = bytearray(state.ModelState([("w", np.ones(100, np.float32))], [], {}).to_bytes())
    blob[-5] ^= 0xFF
    with pytest.raises(state.StateError, match="checksum"):
        state.decode(bytes(blob))
    with pytest.raises(state.StateError, match="magic"):
        state.decode(b"garbage")
    with pytest.raises(state.StateError, match="truncated"):
        state.decode(bytes(blob[:-10]))


def test_capture_restore_carries_adam_moments_and_iterations():
    import keras

    keras.utils.set_random_seed(1)
    a = mlp.build({"hidden": [8], "dropout": 0.2, "dataset": DATASET})
    a.optimizer.build(a.trainable_variables)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    a.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    blob = state.capture(a, {}).to_bytes()
    assert int(a.optimizer.iterations.numpy()) == 4

    keras.utils.set_random_seed(99)  # different init: restore must overwrite
    b = mlp.build({"hidden": [8], "dropout": 0.2, "dataset": DATASET})
    b.optimizer.build(b.trainable_variables)
    state.restore(b, state.decode(blob))
    assert int(b.optimizer.iterations.numpy()) == 4
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    # identical next step on both (weights, moments and dropout seed state all restored)
    a.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for va, vb in zip(a.variables, b.variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-6)


def test_restore_refuses_other_architecture():
    import keras

    keras.utils.set_random_seed(1)
    a = mlp.build({"hidden": [8], "dataset": DATASET})
    a.optimizer.build(a.trainable_variables)
    b = mlp.build({"hidden": [9], "dataset": DATASET})
    b.optimizer.build(b.trainable_variables)
    with pytest.raises(state.StateError, match="does not fit"):
        state.restore(b, state.decode(state.capture(a, {}).to_bytes()))


def test_a_capture_is_a_snapshot_that_training_does_not_change():
    """capture takes views on TensorFlow's reads, not copies: a fit after it (in-place
    optimizer updates) must leave the captured arrays as they were."""
    import keras

    keras.utils.set_random_seed(3)
    m = mlp.build({"hidden": [8], "dataset": DATASET})
    x = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    snap = state.capture(m, {})
    frozen = [a.copy() for _, a in snap.model + snap.optimizer]
    assert any(not a.flags.owndata for _, a in snap.model), "views, not copies"
    m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    now = [v.numpy() for v in m.variables]
    assert any(not np.array_equal(a, b) for (_, a), b in zip(snap.model, now, strict=True))
    for (_, a), b in zip(snap.model + snap.optimizer, frozen, strict=True):
        np.testing.assert_array_equal(a, b)
    back = state.decode(state.encode(snap))
    for (_, a), b in zip(back.model + back.optimizer, frozen, strict=True):
        np.testing.assert_array_equal(a, b)
