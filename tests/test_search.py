"""Search spaces: grid, seeded random sampling, validation, objective direction (pure)."""

import json
import math

import numpy as np
import pytest
from cerebro_udfs import search
from cerebro_udfs.errors import CerebroError
from cerebro_udfs.roster.mlp import PARAMS

SCHEMA = PARAMS


def test_grid_is_the_ordered_product_with_fixed_values():
    sp = search.parse_space({"hidden": {"choice": [[8], [16, 8]]},
                             "learning_rate": {"choice": [0.1, 0.01, 0.001]},
                             "dropout": 0.2}, SCHEMA)
    g = search.grid(sp)
    assert len(g) == 6
    assert g[0] == {"dropout": 0.2, "hidden": [8], "learning_rate": 0.1}
    assert [c["learning_rate"] for c in g[:3]] == [0.1, 0.01, 0.001]
    assert [c["hidden"] for c in g] == [[8]] * 3 + [[16, 8]] * 3


@pytest.mark.parametrize("prim, args", [("uniform", [0.1, 0.2]), ("quniform", [0.1, 0.5, 0.1]),
                                        ("loguniform", [1e-4, 1e-1]),
                                        ("qloguniform", [1e-4, 1e-1, 1e-4]),
                                        ("randint", [0, 3])])
def test_grid_refuses_continuous_primitives(prim, args):
    sp = search.parse_space({"dropout" if prim != "randint" else "batch_size": {prim: args}},
                            {})
    with pytest.raises(CerebroError) as e:
        search.grid(sp)
    assert "grid search takes only choice" in e.value.message and prim in e.value.message


def test_random_is_reproducible_and_seed_dependent():
    sp = search.parse_space({"learning_rate": {"loguniform": [1e-4, 1e-1]},
                             "hidden": {"choice": [[4], [8]]},
                             "batch_size": {"randint": [16, 64]}}, SCHEMA)
    a, b, c = search.sample(sp, 20, 1), search.sample(sp, 20, 1), search.sample(sp, 20, 2)
    assert a == b and a != c
    json.dumps(a)                                   # plain JSON types
    assert all(isinstance(x["batch_size"], int) and 16 <= x["batch_size"] < 64 for x in a)


def test_loguniform_is_log_uniform_between_the_values():
    sp = search.parse_space({"lr": {"loguniform": [1e-4, 1e-1]}}, {})
    v = np.array([x["lr"] for x in search.sample(sp, 4000, 0)])
    assert v.min() >= 1e-4 and v.max() <= 1e-1
    decades = np.histogram(np.log10(v), bins=[-4, -3, -2, -1])[0] / len(v)
    np.testing.assert_allclose(decades, [1 / 3] * 3, atol=0.05)


def test_quantised_and_randint():
    sp = search.parse_space({"a": {"quniform": [0, 100, 5]}, "b": {"randint": [0, 3]},
                             "c": {"qloguniform": [1, 1000, 1]}}, {})
    xs = search.sample(sp, 500, 3)
    assert all(x["a"] % 5 == 0 and isinstance(x["a"], int) for x in xs)
    assert {x["b"] for x in xs} == {0, 1, 2}
    assert all(1 <= x["c"] <= 1000 and isinstance(x["c"], int) for x in xs)


@pytest.mark.parametrize("space, says", [
    ({}, "empty"),
    ({"lr": {"uniforme": [0, 1]}}, "not a search primitive"),
    ({"lr": {"uniform": [0, 1], "choice": [1]}}, "not a search primitive"),
    ({"lr": {"uniform": [0]}}, "takes 2 numbers"),
    ({"lr": {"uniform": ["a", 1]}}, "must be numbers"),
    ({"lr": {"uniform": [1, 1]}}, "low < high"),
    ({"lr": {"quniform": [0, 1, 0]}}, "q must be positive"),
    ({"lr": {"loguniform": [0, 1]}}, "must be > 0"),
    ({"lr": {"choice": []}}, "at least one value"),
    ({"lr": {"choice": 3}}, "takes a list"),
    ({"lr": {"qloguniform": [-1, 1, 0.1]}}, "must be > 0"),
    ({"lr": {"randint": [5, 2]}}, "low < high"),
    ({"dataset": 3}, "reserved"),
])
def test_malformed_spaces(space, says):
    with pytest.raises(CerebroError) as e:
        search.parse_space(space, {})
    assert says in e.value.message


@pytest.mark.parametrize("space, fixed, says", [
    ({"hiden": {"choice": [[4]]}}, None, "does not take parameter 'hiden'"),
    ({"optimizer": {"choice": ["adam", "lion"]}}, None, "is not one of"),
    ({"learning_rate": {"uniform": [0.0, 1.0]}}, None, "below its minimum"),
    ({"dropout": {"uniform": [0.1, 0.99]}}, None, "above its maximum"),
    ({"batch_size": {"uniform": [8, 64]}}, None, "is an integer"),
    ({"optimizer": {"uniform": [0, 1]}}, None, "use choice"),
    ({"dropout": {"choice": [0.1]}}, {"dropout": 0.2}, "given twice"),
    ({}, {"learning_rate": 50}, "above its maximum"),
    ({"hidden": [[8]]}, None, "list of positive integers"),
    ({"hidden": {"choice": [[8], [0]]}}, None, "list of positive integers"),
])
def test_schema_checks(space, fixed, says):
    with pytest.raises(CerebroError) as e:
        search.parse_space(space, SCHEMA, fixed)
    assert says in e.value.message


@pytest.mark.parametrize("objective, direction", [
    ("valid_loss", "min"), ("train_loss", "min"), ("valid_accuracy", "max"),
    ("valid_sparse_categorical_accuracy", "max"), ("valid_auc", "max"), ("valid_mae", "min"),
    ("train_r2", "max"), ("valid_my_score:max", "max"), ("valid_accuracy:min", "min"),
])
def test_objective_direction(objective, direction):
    assert search.objective_direction(objective) == direction


@pytest.mark.parametrize("objective", ["accuracy", "loss", "valid_", "valid_loss:up", ""])
def test_bad_objectives(objective):
    with pytest.raises(CerebroError):
        search.objective_direction(objective)


def test_defaults_and_grid_limit():
    assert search.defaults(SCHEMA)["learning_rate"] == pytest.approx(1e-3)
    big = search.parse_space({f"p{i}": {"choice": list(range(10))} for i in range(5)}, {})
    with pytest.raises(CerebroError, match="more than"):
        search.grid(big)
    assert math.isfinite(search.sample(big, 1, 0)[0]["p0"])
