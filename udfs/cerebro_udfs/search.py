"""Search spaces: parsing, grid expansion, seeded random sampling, objective direction.

A space is a JSON object mapping a parameter to a primitive — ``choice`` [values],
``uniform`` [low, high], ``quniform`` [low, high, q], ``loguniform`` [low, high],
``qloguniform`` [low, high, q], ``randint`` [low, high) — or to a plain JSON value, which is
fixed. ``loguniform [a, b]`` is log-uniform between the *values* a and b (our predecessor
mixed base-10 and natural-log conventions between searchers; we do not).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CerebroError

PRIMITIVES = {"choice": None, "uniform": 2, "quniform": 3, "loguniform": 2,
              "qloguniform": 3, "randint": 2}
CONTINUOUS = ("uniform", "quniform", "loguniform", "qloguniform", "randint")
MAX_GRID = 10_000
ALWAYS_ALLOWED = {"batch_size"}
RESERVED = {"dataset"}
_MAX_WORDS = ("accuracy", "auc", "precision", "recall", "f1", "r2", "iou")
_HINT = ('a space maps parameters to {"choice": [..]}, {"uniform": [low, high]}, '
         '{"quniform": [low, high, q]}, {"loguniform": [low, high]}, '
         '{"qloguniform": [low, high, q]}, {"randint": [low, high]} or a fixed JSON value')


@dataclass
class Space:
    entries: dict[str, tuple[str, list[Any]]] = field(default_factory=dict)  # sorted names
    fixed: dict[str, Any] = field(default_factory=dict)


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_name(name: str, schema: dict[str, Any]) -> None:
    if name in RESERVED:
        raise CerebroError(f"parameter name {name!r} is reserved")
    if schema and name not in schema and name not in ALWAYS_ALLOWED:
        raise CerebroError(f"the model does not take parameter {name!r}",
                           hint=f"it takes: {', '.join(sorted(set(schema) | ALWAYS_ALLOWED))}")


def _check_value(name: str, value: Any, spec: dict[str, Any]) -> None:
    kind = spec.get("type")
    if kind == "int_list" and not (
            isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise CerebroError(f"parameter {name!r} must be a non-empty list of positive integers "
                           f"(layer sizes), got {value!r}")
    if kind == "choice" and "values" in spec and value not in spec["values"]:
        raise CerebroError(f"parameter {name!r}: {value!r} is not one of {spec['values']}")
    if kind in ("int", "float"):
        if not _num(value):
            raise CerebroError(f"parameter {name!r} must be a number, got {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise CerebroError(f"parameter {name!r} must be an integer, got {value!r}")
        _check_bounds(name, value, value, spec)


def _check_bounds(name: str, low: float, high: float, spec: dict[str, Any]) -> None:
    if "min" in spec and low < spec["min"]:
        raise CerebroError(f"parameter {name!r}: {low} is below its minimum {spec['min']}")
    if "max" in spec and high > spec["max"]:
        raise CerebroError(f"parameter {name!r}: {high} is above its maximum {spec['max']}")


def parse_space(space: dict[str, Any], param_schema: dict[str, Any],
                fixed: dict[str, Any] | None = None) -> Space:
    """Validate ``space`` (and fixed ``params``) against the model's parameter schema."""
    if not isinstance(space, dict):
        raise CerebroError("space must be a JSON object", hint=_HINT)
    fixed = dict(fixed or {})
    out = Space()
    for name in sorted(fixed):
        _check_name(name, param_schema)
        if name in space:
            raise CerebroError(f"parameter {name!r} is given twice (in params and in space)")
        if name in param_schema:
            _check_value(name, fixed[name], param_schema[name])
    for name in sorted(space):
        _check_name(name, param_schema)
        spec = param_schema.get(name, {}) if isinstance(param_schema.get(name), dict) else {}
        value = space[name]
        if not isinstance(value, dict):
            if spec:
                _check_value(name, value, spec)
            fixed[name] = value
            continue
        keys = list(value)
        if len(keys) != 1 or keys[0] not in PRIMITIVES:
            raise CerebroError(f"parameter {name!r}: {value!r} is not a search primitive",
                               hint=_HINT)
        prim, args = keys[0], value[keys[0]]
        if not isinstance(args, list):
            raise CerebroError(f"parameter {name!r}: {prim} takes a list", hint=_HINT)
        if prim == "choice":
            if not args:
                raise CerebroError(f"parameter {name!r}: choice needs at least one value")
            if spec:
                for v in args:
                    _check_value(name, v, spec)
        else:
            if len(args) != PRIMITIVES[prim]:
                raise CerebroError(
                    f"parameter {name!r}: {prim} takes {PRIMITIVES[prim]} numbers, got {args!r}",
                    hint=_HINT)
            if not all(_num(a) for a in args):
                raise CerebroError(f"parameter {name!r}: {prim} bounds must be numbers, "
                                   f"got {args!r}")
            low, high = args[0], args[1]
            if low >= high:
                raise CerebroError(f"parameter {name!r}: {prim} needs low < high, got {args!r}")
            if prim in ("quniform", "qloguniform") and args[2] <= 0:
                raise CerebroError(f"parameter {name!r}: q must be positive, got {args[2]}")
            if prim in ("loguniform", "qloguniform") and low <= 0:
                raise CerebroError(f"parameter {name!r}: {prim} bounds must be > 0, "
                                   f"got {args!r}")
            if spec.get("type") == "choice":
                raise CerebroError(f"parameter {name!r} takes one of {spec.get('values')}: "
                                   f"use choice, not {prim}")
            if spec.get("type") == "int" and prim in ("uniform", "loguniform"):
                raise CerebroError(f"parameter {name!r} is an integer: use randint, quniform "
                                   f"or qloguniform with an integer q, not {prim}")
            if spec.get("type") in ("int", "float"):
                _check_bounds(name, low, high, spec)
        out.entries[name] = (prim, args)
    out.fixed = {k: fixed[k] for k in sorted(fixed)}
    if not out.entries and not out.fixed:
        raise CerebroError("the search space is empty", hint=_HINT)
    return out


def grid(space: Space) -> list[dict[str, Any]]:
    """The cartesian product of the ``choice`` lists (fixed values in every config)."""
    names = list(space.entries)
    for name in names:
        prim = space.entries[name][0]
        if prim != "choice":
            raise CerebroError(
                f"grid search takes only choice (and fixed values); parameter {name!r} is "
                f"{prim}", hint="use search => 'random' for continuous ranges, or a choice list")
    size = 1
    for name in names:
        size *= len(space.entries[name][1])
    if size > MAX_GRID:
        raise CerebroError(f"the grid has {size} configs, more than {MAX_GRID}",
                           hint="use search => 'random' with num_configs")
    lists = [space.entries[n][1] for n in names]
    return [{**space.fixed, **dict(zip(names, combo))} for combo in itertools.product(*lists)]


def _draw(rng: np.random.Generator, prim: str, args: list[Any]) -> Any:
    if prim == "choice":
        return args[int(rng.integers(len(args)))]
    if prim == "randint":
        return int(rng.integers(int(math.ceil(args[0])), int(math.ceil(args[1]))))
    low, high = float(args[0]), float(args[1])
    if prim in ("uniform", "quniform"):
        v = rng.uniform(low, high)
    else:
        v = math.exp(rng.uniform(math.log(low), math.log(high)))
    if prim in ("quniform", "qloguniform"):
        q = args[2]
        v = round(v / q) * q
        if all(float(a).is_integer() for a in args):
            return int(round(v))
    return float(v)


def sample(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` reproducible random configs."""
    if n < 1:
        raise CerebroError(f"num_configs must be at least 1, got {n}")
    rng = np.random.default_rng(int(seed) % (2**63))
    return [{**space.fixed, **{name: _draw(rng, *space.entries[name]) for name in space.entries}}
            for _ in range(n)]


def defaults(param_schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] for k, v in param_schema.items()
            if isinstance(v, dict) and "default" in v}


def objective_direction(objective: str) -> str:
    """'min' or 'max' for an objective such as valid_loss or valid_accuracy."""
    if not isinstance(objective, str) or not objective.startswith(("valid_", "train_")):
        raise CerebroError(f"objective {objective!r} is not known",
                           hint="e.g. valid_loss, valid_accuracy, train_loss, "
                                "valid_mae, or valid_<metric>:max")
    name, _, suffix = objective.partition(":")
    if suffix:
        if suffix not in ("min", "max"):
            raise CerebroError(f"objective {objective!r}: the suffix must be :min or :max")
        return suffix
    metric = name.split("_", 1)[1]
    if not metric:
        raise CerebroError(f"objective {objective!r} names no metric")
    return "max" if any(w in metric for w in _MAX_WORDS) else "min"
