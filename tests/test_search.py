"""Search spaces: grid, seeded random sampling, validation, objective direction (pure)."""

import json

import numpy as np
import pytest

from cerebro_udfs import search
from cerebro_udfs.errors import CerebroError
from cerebro_udfs.roster.mlp import PARAMS

SCHEMA = PARAMS


def _refused(space, schema=None, fixed=None):
    with pytest.raises(CerebroError) as e:
        search.parse_space(space, {} if schema is None else schema, fixed)
    return e.value


# -- parsing --------------------------------------------------------------------------------
def test_parse_sorts_entries_and_merges_fixed_values():
    sp = search.parse_space(
        {
            "optimizer": {"choice": ["sgd", "adam"]},
            "dropout": 0.2,
            "learning_rate": {"loguniform": [1e-4, 1e-1]},
        },
        SCHEMA,
        {"hidden": [8]},
    )
    assert list(sp.entries) == ["learning_rate", "optimizer"]
    assert sp.entries["optimizer"] == ("choice", ["sgd", "adam"])
    assert sp.entries["learning_rate"] == ("loguniform", [1e-4, 1e-1])
    assert sp.fixed == {"dropout": 0.2, "hidden": [8]} and list(sp.fixed) == ["dropout", "hidden"]


def test_fixed_params_alone_make_a_space():
    sp = search.parse_space({}, SCHEMA, {"dropout": 0.1})
    assert search.grid(sp) == [{"dropout": 0.1}]
    assert search.sample(sp, 2, 0) == [{"dropout": 0.1}] * 2


# -- grid -----------------------------------------------------------------------------------
def test_grid_is_the_ordered_product_with_fixed_values():
    sp = search.parse_space(
        {
            "hidden": {"choice": [[8], [16, 8]]},
            "learning_rate": {"choice": [0.1, 0.01, 0.001]},
            "dropout": 0.2,
        },
        SCHEMA,
        {"optimizer": "sgd"},
    )
    g = search.grid(sp)
    assert g == [
        {"dropout": 0.2, "hidden": h, "learning_rate": lr, "optimizer": "sgd"}
        for h in ([8], [16, 8])
        for lr in (0.1, 0.01, 0.001)
    ]
    assert [list(c) for c in g] == [["dropout", "hidden", "learning_rate", "optimizer"]] * 6
    g[0]["hidden"].append(1)  # configs do not share mutable values
    assert g[1]["hidden"] == [8] and sp.entries["hidden"][1][0] == [8]


def test_grid_size_is_the_product_of_the_choice_lengths():
    sp = search.parse_space(
        {
            "a": {"choice": [1, 2, 3]},
            "b": {"choice": ["x", "y"]},
            "c": {"choice": [True, False, None, 0.5]},
        },
        {},
    )
    g = search.grid(sp)
    assert len(g) == 24 and len({json.dumps(c, sort_keys=True) for c in g}) == 24
    assert g[:5] == [
        {"a": 1, "b": "x", "c": True},
        {"a": 1, "b": "x", "c": False},
        {"a": 1, "b": "x", "c": None},
        {"a": 1, "b": "x", "c": 0.5},
        {"a": 1, "b": "y", "c": True},
    ]


@pytest.mark.parametrize(
    "name, prim, args",
    [
        ("dropout", "uniform", [0.1, 0.2]),
        ("dropout", "quniform", [0.1, 0.5, 0.1]),
        ("learning_rate", "loguniform", [1e-4, 1e-1]),
        ("learning_rate", "qloguniform", [1e-4, 1e-1, 1e-4]),
        ("batch_size", "randint", [8, 64]),
    ],
)
def test_grid_refuses_continuous_primitives(name, prim, args):
    sp = search.parse_space({name: {prim: args}, "optimizer": {"choice": ["adam"]}}, SCHEMA)
    with pytest.raises(CerebroError) as e:
        search.grid(sp)
    msg = e.value.message
    assert "grid search takes only choice" in msg and repr(name) in msg and prim in msg
    assert "random" in e.value.hint and "choice" in e.value.hint


def test_grid_size_is_known_before_the_grid_is_made():
    huge = search.parse_space({f"p{i}": {"choice": list(range(10))} for i in range(12)}, {})
    assert search.grid_size(huge) == 10**12  # counted, not enumerated
    assert search.grid_size(search.parse_space({}, SCHEMA, {"dropout": 0.1})) == 1
    with pytest.raises(CerebroError, match="grid search takes only choice"):
        search.grid_size(search.parse_space({"dropout": {"uniform": [0.1, 0.2]}}, SCHEMA))


def test_grid_limit():
    big = search.parse_space({f"p{i}": {"choice": list(range(10))} for i in range(5)}, {})
    with pytest.raises(CerebroError, match="100000 configs, more than 10000"):
        search.grid(big)
    ok = search.parse_space({f"p{i}": {"choice": list(range(10))} for i in range(4)}, {})
    assert len(search.grid(ok)) == 10_000


# -- random sampling ------------------------------------------------------------------------
ALL_PRIMITIVES = {
    "learning_rate": {"loguniform": [1e-4, 1e-1]},
    "hidden": {"choice": [[4], [8, 4]]},
    "activation": {"choice": ["relu", "tanh"]},
    "batch_size": {"randint": [16, 64]},
    "dropout": {"uniform": [0.0, 0.5]},
    "u": {"quniform": [0, 100, 5]},
    "v": {"quniform": [0.0, 1.0, 0.1]},
    "w": {"qloguniform": [1, 1000, 1]},
    "x": {"qloguniform": [1e-3, 1.0, 1e-3]},
    "flag": {"choice": [True, False]},
}


def test_random_is_reproducible_and_seed_dependent():
    sp = search.parse_space(ALL_PRIMITIVES, {})
    a, b, c = search.sample(sp, 20, 1), search.sample(sp, 20, 1), search.sample(sp, 20, 2)
    assert a == b and a != c
    for name in ("learning_rate", "dropout", "batch_size"):
        assert [x[name] for x in a] != [x[name] for x in c]
    assert len({x["learning_rate"] for x in a}) == 20


def test_samples_are_plain_json_types():
    xs = search.sample(search.parse_space(ALL_PRIMITIVES, {}, {"fixed": [1, 2]}), 50, 7)
    assert json.loads(json.dumps(xs, allow_nan=False)) == xs
    for x in xs:
        assert type(x["learning_rate"]) is float and type(x["dropout"]) is float
        assert type(x["batch_size"]) is int and type(x["u"]) is int and type(x["w"]) is int
        assert type(x["v"]) is float and type(x["x"]) is float and type(x["flag"]) is bool
        assert type(x["activation"]) is str and type(x["hidden"]) is list
        assert list(x) == sorted(x) and x["fixed"] == [1, 2]
    xs[0]["hidden"].append(99)
    xs[0]["fixed"].append(99)
    assert all(x["hidden"] in ([4], [8, 4]) and x["fixed"] == [1, 2] for x in xs[1:])


def test_uniform_and_choice_cover_their_range():
    sp = search.parse_space({"d": {"uniform": [2.0, 3.0]}, "c": {"choice": ["a", "b", "c"]}}, {})
    xs = search.sample(sp, 3000, 5)
    d = np.array([x["d"] for x in xs])
    assert d.min() >= 2.0 and d.max() < 3.0 and abs(d.mean() - 2.5) < 0.03
    counts = [sum(x["c"] == k for x in xs) / len(xs) for k in "abc"]
    np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.05)


@pytest.mark.parametrize("low, high", [(1e-4, 1e-1), (1e-2, 1e1)])
def test_loguniform_is_log_uniform_between_the_values(low, high):
    sp = search.parse_space({"lr": {"loguniform": [low, high]}}, {})
    v = np.array([x["lr"] for x in search.sample(sp, 4000, 0)])
    assert v.min() >= low and v.max() <= high
    edges = np.log10([low, low * 10, low * 100, high])
    decades = np.histogram(np.log10(v), bins=edges)[0] / len(v)
    np.testing.assert_allclose(decades, [1 / 3] * 3, atol=0.05)


def test_quantised_values_are_multiples_of_q_inside_the_bounds():
    sp = search.parse_space(
        {
            "a": {"quniform": [0, 100, 5]},
            "b": {"quniform": [0.05, 0.95, 0.1]},
            "c": {"qloguniform": [1, 1000, 1]},
            "d": {"qloguniform": [1e-4, 1e-1, 1e-3]},
        },
        {},
    )
    xs = search.sample(sp, 2000, 3)
    assert all(x["a"] % 5 == 0 and 0 <= x["a"] <= 100 for x in xs)
    assert {x["a"] for x in xs} == set(range(0, 101, 5))
    b = np.array([x["b"] for x in xs])
    np.testing.assert_allclose(b / 0.1, np.round(b / 0.1), atol=1e-9)
    assert b.min() == pytest.approx(0.1) and b.max() == pytest.approx(0.9)
    assert {round(v, 12) for v in b} == {v for v in b}  # no 0.30000000000000004
    assert all(1 <= x["c"] <= 1000 for x in xs)
    d = np.array([x["d"] for x in xs])
    assert d.min() > 0 and d.max() <= 0.1  # never rounded down to 0
    np.testing.assert_allclose(d / 1e-3, np.round(d / 1e-3), atol=1e-6)


def test_quantised_dropout_never_crosses_the_schema_maximum():
    sp = search.parse_space({"dropout": {"quniform": [0.5, 0.95, 0.1]}}, SCHEMA)
    assert max(x["dropout"] for x in search.sample(sp, 500, 0)) == pytest.approx(0.9)


def test_randint_never_returns_high():
    sp = search.parse_space({"b": {"randint": [0, 3]}, "one": {"randint": [7, 8]}}, {})
    xs = search.sample(sp, 1000, 11)
    assert {x["b"] for x in xs} == {0, 1, 2} and {x["one"] for x in xs} == {7}


@pytest.mark.parametrize("n", [0, -1])
def test_sample_needs_at_least_one(n):
    with pytest.raises(CerebroError, match="at least 1"):
        search.sample(search.parse_space({"a": {"choice": [1]}}, {}), n, 0)


# -- malformed spaces -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "space, says",
    [
        ({}, "empty space"),
        ({"lr": {"uniforme": [0, 1]}}, "unknown primitive 'uniforme'"),
        ({"lr": {"normal": [0, 1]}}, "unknown primitive 'normal'"),
        ({"lr": {"uniform": [0, 1], "choice": [1]}}, "several keys"),
        ({"lr": {}}, "not a search primitive"),
        ({"lr": {"uniform": [0]}}, "uniform takes 2 numbers, got 1"),
        ({"lr": {"quniform": [0, 1]}}, "quniform takes 3 numbers, got 2"),
        ({"lr": {"randint": [0, 1, 2]}}, "randint takes 2 numbers, got 3"),
        ({"lr": {"uniform": ["a", 1]}}, "must be numbers"),
        ({"lr": {"uniform": [True, 2]}}, "must be numbers"),
        ({"lr": {"uniform": [0, float("nan")]}}, "must be numbers"),
        ({"lr": {"uniform": 0.5}}, "uniform takes a list"),
        ({"lr": {"uniform": [1, 1]}}, "low < high"),
        ({"lr": {"loguniform": [1e-1, 1e-4]}}, "low < high"),
        ({"lr": {"randint": [5, 2]}}, "low < high"),
        ({"lr": {"quniform": [0, 1, 0]}}, "q must be positive"),
        ({"lr": {"qloguniform": [1, 10, -1]}}, "q must be positive"),
        ({"lr": {"loguniform": [0, 1]}}, "must be > 0"),
        ({"lr": {"qloguniform": [-1, 1, 0.1]}}, "must be > 0"),
        ({"lr": {"randint": [0.5, 3]}}, "randint bounds must be integers"),
        ({"lr": {"quniform": [0.1, 0.2, 1]}}, "no multiple of q=1"),
        ({"lr": {"choice": []}}, "at least one value"),
        ({"lr": {"choice": 3}}, "choice takes a list"),
        ({"lr": {"choice": [1, 2, 1]}}, "listed twice"),
        ({"dataset": 3}, "'dataset' is reserved"),
        ({"dataset": {"choice": [1]}}, "'dataset' is reserved"),
    ],
)
def test_malformed_spaces(space, says):
    err = _refused(space)
    assert says in err.message
    if space:
        assert repr(next(iter(space))) in err.message  # names the parameter
    assert err.hint  # says what is accepted


def test_space_and_params_must_be_objects():
    assert "space must be a JSON object" in _refused([1, 2]).message
    assert "params must be a JSON object" in _refused({"a": 1}, fixed=[1]).message


# -- schema checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "space, fixed, says",
    [
        ({"hiden": {"choice": [[4]]}}, None, "does not take parameter 'hiden'"),
        ({}, {"learnign_rate": 0.1}, "does not take parameter 'learnign_rate'"),
        ({"dataset": 1}, None, "'dataset' is reserved"),
        ({}, {"dataset": {"x": 1}}, "'dataset' is reserved"),
        ({"optimizer": {"choice": ["adam", "lion"]}}, None, "'lion' is not one of"),
        ({"optimizer": "lion"}, None, "'lion' is not one of"),
        ({}, {"activation": "swish"}, "'swish' is not one of"),
        ({"learning_rate": {"uniform": [0.0, 1.0]}}, None, "below its minimum"),
        ({"learning_rate": {"loguniform": [1e-4, 100]}}, None, "above its maximum"),
        ({"dropout": {"uniform": [0.1, 0.99]}}, None, "above its maximum"),
        ({"dropout": {"choice": [0.1, 0.96]}}, None, "0.96 is above its maximum"),
        ({"dropout": 1.5}, None, "above its maximum"),
        ({}, {"learning_rate": 50}, "above its maximum"),
        ({"batch_size": {"randint": [0, 64]}}, None, "below its minimum"),
        ({"batch_size": {"randint": [1, 65538]}}, None, "above its maximum"),
        ({"batch_size": {"uniform": [8, 64]}}, None, "is an integer"),
        ({"batch_size": {"loguniform": [8, 64]}}, None, "is an integer"),
        ({"batch_size": {"quniform": [8, 64, 0.5]}}, None, "needs integer low, high and q"),
        ({"batch_size": {"choice": [32, 48.5]}}, None, "must be an integer"),
        ({}, {"batch_size": "big"}, "must be a number"),
        ({"optimizer": {"uniform": [0, 1]}}, None, "use choice"),
        ({"hidden": {"randint": [1, 10]}}, None, "use choice"),
        ({"dropout": {"choice": [0.1]}}, {"dropout": 0.2}, "'dropout' is given twice"),
        ({"hidden": [[8]]}, None, "list of positive integers"),
        ({"hidden": {"choice": [[8], [0]]}}, None, "list of positive integers"),
    ],
)
def test_schema_checks(space, fixed, says):
    err = _refused(space, SCHEMA, fixed)
    assert says in err.message and err.hint


def test_schema_accepts_what_it_allows():
    sp = search.parse_space(
        {
            "batch_size": {"randint": [1, 65537]},  # high is excluded
            "dropout": {"quniform": [0.0, 0.9, 0.1]},
            "learning_rate": {"qloguniform": [1e-5, 1.0, 1e-5]},
            "activation": {"choice": ["relu", "gelu"]},
        },
        SCHEMA,
        {"hidden": [32, 16], "optimizer": "adamw"},
    )
    for x in search.sample(sp, 200, 1):
        assert 1 <= x["batch_size"] <= 65536 and 0.0 <= x["dropout"] <= 0.9
        assert 1e-5 <= x["learning_rate"] <= 1.0
    unknown_names_ok = search.parse_space({"anything": {"choice": [1]}}, {})
    assert unknown_names_ok.entries == {"anything": ("choice", [1])}
    assert "it takes: activation, batch_size, dropout" in _refused({"x": 1}, SCHEMA).hint


def test_batch_size_is_allowed_for_every_model():
    sp = search.parse_space({"batch_size": {"choice": [16, 32]}}, {"units": {"type": "int"}})
    assert search.grid(sp) == [{"batch_size": 16}, {"batch_size": 32}]
    assert "below its minimum" in _refused({"batch_size": 0}, {"units": {}}).message


def test_defaults():
    d = search.defaults(SCHEMA)
    assert d == {
        "hidden": [64],
        "activation": "relu",
        "dropout": 0.0,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 64,
    }
    d["hidden"].append(1)
    assert SCHEMA["hidden"]["default"] == [64]
    # a null default means "not set" (e.g. no initial weights file): left out of the config
    assert search.defaults(
        {"a": {"type": "int"}, "b": {"default": None}, "c": {"default": 0}}
    ) == {"c": 0}
    assert search.defaults({}) == {}


# -- objectives -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "objective, direction",
    [
        ("valid_loss", "min"),
        ("train_loss", "min"),
        ("valid_accuracy", "max"),
        ("valid_sparse_categorical_accuracy", "max"),
        ("train_top_k_categorical_accuracy", "max"),
        ("valid_auc", "max"),
        ("valid_precision", "max"),
        ("valid_recall", "max"),
        ("valid_f1_score", "max"),
        ("train_r2_score", "max"),
        ("valid_mean_iou", "max"),
        ("valid_mae", "min"),
        ("valid_mse", "min"),
        ("valid_rmse", "min"),
        ("train_mape", "min"),
        ("valid_msle", "min"),
        ("valid_categorical_crossentropy", "min"),
        ("valid_hinge", "min"),
        ("valid_my_score:max", "max"),
        ("valid_accuracy:min", "min"),
        ("train_loss:max", "max"),
    ],
)
def test_objective_direction(objective, direction):
    assert search.objective_direction(objective) == direction


@pytest.mark.parametrize(
    "objective, says",
    [
        ("accuracy", "is not known"),
        ("loss", "is not known"),
        ("", "is not known"),
        ("test_loss", "is not known"),
        ("validloss", "is not known"),
        (None, "is not known"),
        ("valid_", "names no metric"),
        ("valid_:max", "names no metric"),
        ("valid_loss:up", "suffix must be :min or :max"),
        ("valid_my metric", "not a metric name"),
    ],
)
def test_bad_objectives(objective, says):
    with pytest.raises(CerebroError) as e:
        search.objective_direction(objective)
    assert says in e.value.message and "valid_loss" in e.value.hint
