"""The roster: resnet50, mobilenet, bert_base, distilbert (and mlp) — full-size parameter
counts, catalog schemas, a sub-epoch of each in the database, validation, initial weights."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import psycopg
import pytest
from PIL import Image

from cerebro_udfs import state
from cerebro_udfs.roster import PARAMS, ROSTER
from helpers import fresh_database


def _ds(shape, classes=1000, **extra):
    return {
        "feature_shape": shape,
        "task": "classification",
        "num_classes": classes,
        "classes": None,
        **extra,
    }


@pytest.mark.slow
def test_full_size_parameter_counts():
    import keras

    resnet = ROSTER["resnet50"]({"dataset": _ds([224, 224, 3])})
    assert resnet.count_params() == 25_636_712
    assert resnet.count_params() == keras.applications.ResNet50(weights=None).count_params()
    assert [tuple(w.shape) for w in resnet.weights] == [
        tuple(w.shape) for w in keras.applications.ResNet50(weights=None).weights
    ]
    assert ROSTER["mobilenet"]({"dataset": _ds([224, 224, 3])}).count_params() == 3_538_984
    head = 768 * 2 + 2  # 2-class softmax head
    text = _ds([128], classes=2, vocabulary_size=None)
    assert ROSTER["bert_base"]({"dataset": text}).count_params() == 109_482_240 + head
    pre_classifier = 768 * 768 + 768
    assert (
        ROSTER["distilbert"]({"dataset": text}).count_params()
        == 66_362_880 + pre_classifier + head
    )
    # the dataset's vocabulary sets the embedding table
    small = ROSTER["distilbert"]({"dataset": _ds([16], 2, vocabulary_size=1000), "num_layers": 1})
    assert small.get_layer("token_embedding").input_dim == 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet", "resnet50"])
def test_bn_momentum_sets_how_fast_the_moving_statistics_follow_the_data(name):
    """One training step on inputs far from zero: the first batch norm's moving mean moves by
    (1 - momentum) of the batch mean, for the reference default and for a lowered value."""
    import keras

    small = {"alpha": 0.35, "width": 4, "blocks": [1, 1, 1, 1], "batch_size": 8}
    rng = np.random.default_rng(3)
    x = (rng.random((8, 32, 32, 3)) * 50 + 100).astype("float32")
    y = np.arange(8) % 2
    default = PARAMS[name]["bn_momentum"]["default"]
    moved = {}
    for momentum in (None, 0.5):
        config = {"dataset": _ds([32, 32, 3], classes=2), "seed": 1, **small}
        if momentum is not None:
            config["bn_momentum"] = momentum
        keras.utils.set_random_seed(1)
        model = ROSTER[name](config)
        bn = next(
            layer
            for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        )
        # the batch mean the layer sees in training: its input on this batch
        probe = keras.Model(model.input, bn.input)
        batch_mean = np.asarray(probe(x, training=True)).reshape(-1, bn.input.shape[-1]).mean(0)
        model.train_on_batch(x, y)
        moved[momentum] = np.asarray(bn.moving_mean) / batch_mean
    np.testing.assert_allclose(moved[None], 1 - default, rtol=1e-3)
    np.testing.assert_allclose(moved[0.5], 0.5, rtol=1e-3)


@pytest.mark.slow
def test_roster_models_save_and_load_in_plain_keras(tmp_path):
    import keras

    cases = {
        "resnet50": ([32, 32, 3], {"width": 4, "blocks": [1, 1, 1, 1]}),
        "mobilenet": ([32, 32, 1], {"alpha": 0.35}),
        "bert_base": (
            [12],
            {
                "num_layers": 1,
                "hidden_dim": 16,
                "num_heads": 2,
                "intermediate_dim": 32,
                "vocabulary_size": 50,
            },
        ),
        "distilbert": (
            [12],
            {
                "num_layers": 1,
                "hidden_dim": 16,
                "num_heads": 2,
                "intermediate_dim": 32,
                "vocabulary_size": 50,
            },
        ),
    }
    rng = np.random.default_rng(0)
    for name, (shape, params) in cases.items():
        model = ROSTER[name]({**params, "dataset": _ds(shape, 3)})
        x = rng.random((4, *shape)).astype("float32")
        if len(shape) == 1:
            x = rng.integers(0, 50, (4, *shape)).astype("float32")
            x[:, 8:] = 0  # padding
        path = tmp_path / f"{name}.keras"
        model.save(path)
        again = keras.models.load_model(path)
        want = model.predict(x, verbose=0)
        np.testing.assert_allclose(again.predict(x, verbose=0), want, atol=1e-6)
        np.savez(tmp_path / f"{name}.npz", x=x, want=want)
    # a user's plain Keras process: no cerebro module on the path or imported
    script = (
        "import sys, keras, numpy as np\n"
        "assert not any(m.startswith('cerebro') for m in sys.modules)\n"
        "for name in sys.argv[2:]:\n"
        "    d = np.load(f'{sys.argv[1]}/{name}.npz')\n"
        "    m = keras.models.load_model(f'{sys.argv[1]}/{name}.keras')\n"
        "    np.testing.assert_allclose(m.predict(d['x'], verbose=0), d['want'], "
        "atol=1e-6)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), *cases],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_catalog_schemas_are_the_modules_schemas(db):
    with psycopg.connect(db) as c:
        rows = dict(
            c.execute(
                "select name, param_schema from cerebro.models where kind = 'roster'"
            ).fetchall()
        )
    assert rows == json.loads(json.dumps(PARAMS))
    assert set(rows) == {"mlp", "resnet50", "mobilenet", "bert_base", "distilbert"}


SMALL = {
    "resnet50": ("pics", {"width": 8, "blocks": [1, 1, 1, 1], "batch_size": 8}),
    "mobilenet": ("pics", {"alpha": 0.35, "batch_size": 8}),
    "bert_base": (
        "reviews",
        {
            "num_layers": 2,
            "hidden_dim": 32,
            "num_heads": 2,
            "intermediate_dim": 64,
            "batch_size": 8,
        },
    ),
    "distilbert": (
        "reviews",
        {
            "num_layers": 1,
            "hidden_dim": 32,
            "num_heads": 4,
            "intermediate_dim": 64,
            "batch_size": 8,
        },
    ),
}


@pytest.fixture(scope="module")
def db(server_dsn):
    """32x32 RGB PNG images (2 classes) and short reviews (2 classes), 2 partitions each."""
    dsn = fresh_database(server_dsn, "cerebro_roster")
    rng = np.random.default_rng(1)
    words = {0: ["dull", "boring", "awful", "slow"], 1: ["great", "superb", "fun", "moving"]}
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table pics (id int primary key, img bytea, y int)")
        c.execute("create table reviews (id int primary key, txt text, y int)")
        for i in range(48):
            a = (rng.random((32, 32, 3)) * 120 + 100 * (i % 2)).astype(np.uint8)
            b = io.BytesIO()
            Image.fromarray(a).save(b, format="PNG")
            c.execute("insert into pics values (%s, %s, %s)", (i, b.getvalue(), i % 2))
            txt = " ".join(rng.choice(words[i % 2] + ["the", "film", "was"], 8))
            c.execute("insert into reviews values (%s, %s, %s)", (i, txt, i % 2))
        c.execute(
            "select cerebro.load_dataset('pics', 'pics', array['img'], 'y', "
            "num_partitions => 2, image_size => array[32, 32])"
        )
        c.execute(
            "select cerebro.load_dataset('reviews', 'reviews', array['txt'], 'y', "
            "num_partitions => 2, max_length => 16, vocabulary_size => 200)"
        )
    return dsn


@pytest.mark.slow
@pytest.mark.parametrize("model", list(SMALL))
def test_each_roster_model_trains_sub_epochs_in_the_database(db, model):
    dataset, params = SMALL[model]
    with psycopg.connect(db, autocommit=True) as c:
        s1, loss1, rows = c.execute(
            "select state, loss, rows from cerebro.run_subepoch(%s, %s, 0, %s, seed => 3)",
            (model, dataset, json.dumps(params)),
        ).fetchone()
        s2, loss2 = c.execute(
            "select state, loss from cerebro.run_subepoch(%s, %s, 1, %s, %s, seed => 3, "
            "epoch => 0)",
            (model, dataset, json.dumps(params), s1),
        ).fetchone()
    assert rows == 24 and np.isfinite(loss1) and np.isfinite(loss2)
    a, b = state.decode(s1), state.decode(s2)
    assert a.meta["partitions_done"] == [0] and b.meta["partitions_done"] == [0, 1]
    changed = [not np.array_equal(x, y) for (_, x), (_, y) in zip(a.model, b.model)]
    assert sum(changed) > len(changed) // 2  # most variables trained
    model_bytes = sum(x.nbytes for _, x in a.model)
    opt_bytes = sum(x.nbytes for _, x in a.optimizer)
    # Adam: two moments per trainable weight (batch-norm statistics are not trainable)
    assert 1.8 * model_bytes <= opt_bytes <= 2 * model_bytes + 64
    assert model_bytes + opt_bytes <= len(s2) <= 1.02 * (model_bytes + opt_bytes) + 65536
    iterations = dict(b.optimizer)
    it = next(v for k, v in iterations.items() if k.endswith("iteration"))
    assert int(it) == 6  # 3 + 3 batches: state carried


def test_schemas_are_enforced_at_launch(db):
    bad = {
        ("resnet50", '{"width": {"choice": [8, 2]}}'): "below its minimum 4",
        ("resnet50", '{"depth": {"choice": [50]}}'): "does not take parameter 'depth'",
        ("mobilenet", '{"alpha": {"choice": [0.6]}}'): "0.6 is not one of",
        ("bert_base", '{"num_layers": {"choice": [0]}}'): "below its minimum 1",
        ("distilbert", '{"weights": {"choice": [3]}}'): "must be a file path",
    }
    with psycopg.connect(db, autocommit=True) as c:
        for (model, space), want in bad.items():
            ds = "pics" if model in ("resnet50", "mobilenet") else "reviews"
            with pytest.raises(psycopg.Error) as e:
                c.execute(
                    "select cerebro.launch('x', %s, %s, null, 'grid', %s, "
                    "objective => 'train_loss')",
                    (model, ds, space),
                )
            assert want in e.value.diag.message_primary, (model, space)
        with pytest.raises(psycopg.Error, match="reads token ids"):
            c.execute(
                "select cerebro.run_subepoch('bert_base', 'pics', 0, "
                '\'{"num_layers": 1, "hidden_dim": 16, "num_heads": 2}\')'
            )
        with pytest.raises(psycopg.Error, match="needs images of at least 32x32"):
            c.execute("select cerebro.run_subepoch('resnet50', 'reviews', 0)")
        assert c.execute("select count(*) from cerebro.workloads").fetchone()[0] == 0


@pytest.mark.slow
def test_initial_weights_come_from_a_file(db):
    """A weights file saved from a model of the same shape is what training starts from."""
    params = {
        "width": 4,
        "blocks": [1, 1],
        "learning_rate": 1e-9,
        "optimizer": "sgd",
        "batch_size": 24,
    }
    start = ROSTER["resnet50"]({**params, "dataset": _ds([32, 32, 3], 2)})
    rng = np.random.default_rng(9)
    start.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.01 for w in start.get_weights()]
    )
    d = tempfile.mkdtemp(prefix="cerebro-weights-")
    os.chmod(d, 0o755)  # the server runs as another OS user
    path = os.path.join(d, "start.weights.h5")
    start.save_weights(path)
    os.chmod(path, 0o644)
    with psycopg.connect(db, autocommit=True) as c:
        blob = c.execute(
            "select state from cerebro.run_subepoch('resnet50', 'pics', 0, %s)",
            (json.dumps({**params, "weights": path}),),
        ).fetchone()[0]
        with pytest.raises(psycopg.Error, match="is not a file the server can read"):
            c.execute(
                "select cerebro.run_subepoch('resnet50', 'pics', 0, %s)",
                (json.dumps({**params, "weights": path + ".missing"}),),
            )
    trained = dict(state.decode(blob).model)
    for v in start.trainable_variables:
        if "gamma" in v.path or "beta" in v.path or "kernel" in v.path:
            np.testing.assert_allclose(trained[v.path], v.numpy(), atol=1e-6)
