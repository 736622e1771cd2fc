"""Search spaces: parsing, grid expansion, seeded random sampling, objective direction.

A space is a JSON object mapping a parameter to a primitive — ``choice`` [values],
``uniform`` [low, high], ``quniform`` [low, high, q], ``loguniform`` [low, high],
``qloguniform`` [low, high, q], ``randint`` [low, high) — or to a plain JSON value, which is
fixed. ``loguniform [a, b]`` is log-uniform between the *values* a and b (our predecessor
mixed base-10 and natural-log conventions between searchers; we do not).

Quantised primitives draw ``round(x / q) * q`` and keep the result on a multiple of ``q``
inside ``[low, high]`` (so ``qloguniform`` never yields 0 and a schema maximum is never
crossed by rounding up). Everything here is pure: no ``plpy``, no Keras.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CerebroError

# primitive -> number of arguments (None: a non-empty list of values)
PRIMITIVES = {
    "choice": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "randint": 2,
}
CONTINUOUS = ("uniform", "quniform", "loguniform", "qloguniform", "randint")
QUANTISED = ("quniform", "qloguniform")
MAX_GRID = 10_000
ALWAYS_ALLOWED = {"batch_size"}
RESERVED = {"dataset"}
# batch_size is accepted for every model; when its schema does not describe it, this does.
_BATCH_SIZE_SPEC = {"type": "int", "min": 1}
_MAX_WORDS = ("accuracy", "auc", "precision", "recall", "f1", "r2", "iou")
_EPS = 1e-9
_HINT = (
    'a space maps parameters to {"choice": [..]}, {"uniform": [low, high]}, '
    '{"quniform": [low, high, q]}, {"loguniform": [low, high]}, '
    '{"qloguniform": [low, high, q]}, {"randint": [low, high]} or a fixed JSON value'
)
_ARGS_HINT = {
    "choice": '{"choice": [v1, v2, ...]}: a non-empty list of distinct JSON values',
    "uniform": '{"uniform": [low, high]}: two numbers, low < high',
    "quniform": '{"quniform": [low, high, q]}: three numbers, low < high, q > 0',
    "loguniform": '{"loguniform": [low, high]}: two numbers, 0 < low < high '
    "(the values themselves, not their logarithms)",
    "qloguniform": '{"qloguniform": [low, high, q]}: three numbers, 0 < low < high, q > 0',
    "randint": '{"randint": [low, high]}: two integers, low < high (high is excluded)',
}
_OBJECTIVE = re.compile(r"(valid|train)_([A-Za-z0-9_]+)(?::(min|max))?")
_OBJECTIVE_HINT = (
    "e.g. valid_loss, valid_accuracy, train_loss, valid_mae, valid_auc, "
    "or valid_<metric>:max / valid_<metric>:min to give the direction"
)


@dataclass
class Space:
    """A parsed space: ``entries`` name -> (primitive, args) and ``fixed`` name -> value.

    Both dicts are in sorted name order, so grids and samples are deterministic.
    """

    entries: dict[str, tuple[str, list[Any]]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({*self.entries, *self.fixed})


# -- validation helpers ---------------------------------------------------------------------
def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _integral(x: Any) -> bool:
    return _num(x) and float(x).is_integer()


def _accepted(schema: dict[str, Any]) -> str:
    return ", ".join(sorted(set(schema) | ALWAYS_ALLOWED))


def _spec(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    spec = schema.get(name)
    if isinstance(spec, dict):
        return spec
    return _BATCH_SIZE_SPEC if name in ALWAYS_ALLOWED else {}


def _describe(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "choice" and "values" in spec:
        return "one of " + json.dumps(spec["values"])
    if kind in ("int", "float"):
        lo, hi = spec.get("min", "-inf"), spec.get("max", "inf")
        return f"{'an integer' if kind == 'int' else 'a number'} in [{lo}, {hi}]"
    if kind == "int_list":
        return "a non-empty list of positive integers, e.g. [64, 32]"
    if kind == "path":
        return "a path to a .weights.h5 or .keras file the server can read"
    return f"a value of type {kind}" if kind else "any JSON value"


def _check_name(name: Any, schema: dict[str, Any]) -> None:
    if not isinstance(name, str) or not name:
        raise CerebroError(
            f"parameter name {name!r} is not valid", hint="parameter names are non-empty strings"
        )
    if name in RESERVED:
        raise CerebroError(
            f"parameter name {name!r} is reserved",
            hint="cerebro passes the dataset description to the model itself"
            + (f"; the model takes: {_accepted(schema)}" if schema else ""),
        )
    if schema and name not in schema and name not in ALWAYS_ALLOWED:
        raise CerebroError(
            f"the model does not take parameter {name!r}", hint=f"it takes: {_accepted(schema)}"
        )


def _check_value(name: str, value: Any, spec: dict[str, Any]) -> None:
    """A fixed value (or one choice value) against the parameter's schema entry."""
    kind = spec.get("type")
    hint = f"{name!r} takes {_describe(spec)}"
    if kind == "int_list" and not (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise CerebroError(
            f"parameter {name!r} must be a non-empty list of positive integers "
            f"(layer sizes), got {value!r}",
            hint=hint,
        )
    if kind == "path" and not (value is None or (isinstance(value, str) and value)):
        raise CerebroError(
            f"parameter {name!r} must be a file path (text), got {value!r}",
            hint=f"e.g. '/data/weights/{name}.weights.h5'",
        )
    if (
        kind == "choice"
        and isinstance(spec.get("values"), list)
        and not any(_same(value, v) for v in spec["values"])
    ):
        raise CerebroError(
            f"parameter {name!r}: {value!r} is not one of {spec['values']}", hint=hint
        )
    if kind in ("int", "float"):
        if not _num(value):
            raise CerebroError(f"parameter {name!r} must be a number, got {value!r}", hint=hint)
        if kind == "int" and not _integral(value):
            raise CerebroError(f"parameter {name!r} must be an integer, got {value!r}", hint=hint)
        _check_bounds(name, value, value, spec)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``True`` is not ``1``)."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _check_bounds(name: str, low: float, high: float, spec: dict[str, Any]) -> None:
    hint = f"{name!r} takes {_describe(spec)}"
    if _num(spec.get("min")) and low < spec["min"]:
        raise CerebroError(
            f"parameter {name!r}: {low} is below its minimum {spec['min']}", hint=hint
        )
    if _num(spec.get("max")) and high > spec["max"]:
        raise CerebroError(
            f"parameter {name!r}: {high} is above its maximum {spec['max']}", hint=hint
        )


def _q_range(low: float, high: float, q: float) -> tuple[int, int]:
    """The multiples k*q that lie in [low, high] (k from, to; tolerant of float noise)."""
    return math.ceil(low / q - _EPS), math.floor(high / q + _EPS)


def _parse_primitive(
    name: str, value: dict[str, Any], spec: dict[str, Any]
) -> tuple[str, list[Any]]:
    """One ``{"primitive": [args]}`` entry of a space, checked for form and against the
    parameter's schema entry ``spec``; returns (primitive, args)."""
    prim, args = _primitive_of(name, value)
    hint = _ARGS_HINT[prim]
    if prim == "choice":
        return prim, _choice_values(name, args, spec, hint)
    _check_range_args(name, prim, args, hint)
    _check_range_fits(name, prim, args, spec, hint)
    return prim, list(args)


def _primitive_of(name: str, value: dict[str, Any]) -> tuple[str, list[Any]]:
    """The one known primitive of ``value`` and its argument list."""
    keys = list(value)
    if not keys:
        raise CerebroError(
            f"parameter {name!r}: {{}} is not a search primitive (no key)", hint=_HINT
        )
    if len(keys) > 1:
        raise CerebroError(
            f"parameter {name!r}: {value!r} is not a search primitive: it has "
            f"several keys ({', '.join(map(str, keys))}); give exactly one",
            hint=_HINT,
        )
    prim = keys[0]
    if prim not in PRIMITIVES:
        raise CerebroError(
            f"parameter {name!r}: {value!r} is not a search primitive: unknown primitive {prim!r}",
            hint=_HINT,
        )
    args = value[prim]
    if not isinstance(args, list):
        raise CerebroError(
            f"parameter {name!r}: {prim} takes a list, got {args!r}", hint=_ARGS_HINT[prim]
        )
    return prim, args


def _choice_values(name: str, args: list[Any], spec: dict[str, Any], hint: str) -> list[Any]:
    """A non-empty list of distinct JSON values, each one the parameter accepts."""
    if not args:
        raise CerebroError(f"parameter {name!r}: choice needs at least one value", hint=hint)
    seen: list[str] = []
    for v in args:
        try:
            key = json.dumps(v, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            raise CerebroError(
                f"parameter {name!r}: choice value {v!r} is not a JSON value", hint=hint
            ) from None
        if key in seen:
            raise CerebroError(
                f"parameter {name!r}: choice value {v!r} is listed twice", hint=hint
            )
        seen.append(key)
        if spec:
            _check_value(name, v, spec)
    return list(args)


def _check_range_args(name: str, prim: str, args: list[Any], hint: str) -> None:
    """The form of a continuous primitive's arguments: arity, numbers, low < high, q > 0,
    positive log bounds, integer randint bounds, a multiple of q inside the range."""
    arity = PRIMITIVES[prim]
    if len(args) != arity:
        raise CerebroError(
            f"parameter {name!r}: {prim} takes {arity} numbers, got {len(args)}: {args!r}",
            hint=hint,
        )
    if not all(_num(a) for a in args):
        raise CerebroError(
            f"parameter {name!r}: {prim} bounds must be numbers, got {args!r}", hint=hint
        )
    low, high = args[0], args[1]
    if low >= high:
        raise CerebroError(f"parameter {name!r}: {prim} needs low < high, got {args!r}", hint=hint)
    if prim in QUANTISED and args[2] <= 0:
        raise CerebroError(f"parameter {name!r}: q must be positive, got {args[2]}", hint=hint)
    if prim in ("loguniform", "qloguniform") and low <= 0:
        raise CerebroError(
            f"parameter {name!r}: {prim} bounds must be > 0, got {args!r}", hint=hint
        )
    if prim == "randint" and not (_integral(low) and _integral(high)):
        raise CerebroError(
            f"parameter {name!r}: randint bounds must be integers, got {args!r}", hint=hint
        )
    if prim in QUANTISED:
        k_lo, k_hi = _q_range(low, high, args[2])
        if k_lo > k_hi:
            raise CerebroError(
                f"parameter {name!r}: no multiple of q={args[2]} lies in [{low}, {high}]",
                hint=hint,
            )


def _check_range_fits(
    name: str, prim: str, args: list[Any], spec: dict[str, Any], hint: str
) -> None:
    """A continuous primitive against the schema: only for numbers, integers drawn only by
    integer primitives, and the range inside the parameter's bounds."""
    kind = spec.get("type")
    if kind is not None and kind not in ("int", "float"):
        raise CerebroError(
            f"parameter {name!r} takes {_describe(spec)}: use choice or a fixed value, not {prim}",
            hint='e.g. {"choice": [...]} with values it accepts',
        )
    if kind == "int":
        if prim in ("uniform", "loguniform"):
            raise CerebroError(
                f"parameter {name!r} is an integer: use randint, quniform "
                f"or qloguniform with an integer q, not {prim}",
                hint=_ARGS_HINT["randint"],
            )
        if prim in QUANTISED and not all(_integral(a) for a in args):
            raise CerebroError(
                f"parameter {name!r} is an integer: {prim} needs integer "
                f"low, high and q, got {args!r}",
                hint=hint,
            )
    if kind in ("int", "float"):
        low, high = args[0], args[1]
        _check_bounds(name, low, high - 1 if prim == "randint" else high, spec)


def parse_space(
    space: dict[str, Any], param_schema: dict[str, Any], fixed: dict[str, Any] | None = None
) -> Space:
    """Validate ``space`` (and the fixed ``params``) against the model's parameter schema.

    An empty ``param_schema`` accepts any parameter name (values are then checked only
    for form). Raises :class:`CerebroError` naming the parameter and what is accepted.
    """
    if not isinstance(space, dict):
        raise CerebroError(f"space must be a JSON object, got {type(space).__name__}", hint=_HINT)
    if fixed is not None and not isinstance(fixed, dict):
        raise CerebroError(
            f"params must be a JSON object, got {type(fixed).__name__}",
            hint='e.g. {"learning_rate": 0.001}',
        )
    schema = param_schema if isinstance(param_schema, dict) else {}
    fixed = dict(fixed or {})
    out = Space()
    for name in sorted(fixed, key=str):
        _check_name(name, schema)
        if name in space:
            raise CerebroError(
                f"parameter {name!r} is given twice (in params and in space)",
                hint="give each parameter once: fixed in params, or searched in space",
            )
        _check_value(name, fixed[name], _spec(name, schema))
    for name in sorted(space, key=str):
        _check_name(name, schema)
        spec, value = _spec(name, schema), space[name]
        if isinstance(value, dict):
            out.entries[name] = _parse_primitive(name, value, spec)
        else:
            _check_value(name, value, spec)
            fixed[name] = value
    out.fixed = {k: fixed[k] for k in sorted(fixed)}
    if not out.entries and not out.fixed:
        raise CerebroError(
            "empty space: the search space is empty and params fixes nothing", hint=_HINT
        )
    return out


# -- grid -----------------------------------------------------------------------------------
def grid_size(space: Space) -> int:
    """How many configs :func:`grid` makes (checked before it makes them)."""
    for name in space.entries:
        prim = space.entries[name][0]
        if prim != "choice":
            raise CerebroError(
                f"grid search takes only choice (and fixed values); parameter {name!r} is {prim}",
                hint=f"use search => 'random' (with num_configs) to sample {name!r}, or give "
                f'it a list: {{"choice": [...]}}',
            )
    return math.prod(len(args) for _, args in space.entries.values())


def grid(space: Space) -> list[dict[str, Any]]:
    """The cartesian product of the ``choice`` lists, fixed values in every config.

    Order: parameters by name, the last one varying fastest; choices in the order given.
    """
    names = list(space.entries)
    size = grid_size(space)
    if size > MAX_GRID:
        raise CerebroError(
            f"the grid has {size} configs, more than {MAX_GRID}",
            hint="use search => 'random' with num_configs, or shorten the choice lists",
        )
    lists = [space.entries[n][1] for n in names]
    out = []
    for combo in itertools.product(*lists):
        config = {**space.fixed, **dict(zip(names, combo, strict=True))}
        out.append({k: copy.deepcopy(config[k]) for k in sorted(config)})
    return out


# -- random sampling ------------------------------------------------------------------------
def _tidy(x: float) -> float:
    """k*q without binary noise: 0.30000000000000004 -> 0.3."""
    return float(f"{x:.12g}")


def _draw(rng: np.random.Generator, prim: str, args: list[Any], n: int) -> list[Any]:
    if prim == "choice":
        return [copy.deepcopy(args[int(i)]) for i in rng.integers(0, len(args), size=n)]
    if prim == "randint":
        return [int(v) for v in rng.integers(int(args[0]), int(args[1]), size=n)]
    low, high = float(args[0]), float(args[1])
    if prim in ("uniform", "quniform"):
        v = rng.uniform(low, high, size=n)
    else:
        v = np.clip(np.exp(rng.uniform(math.log(low), math.log(high), size=n)), low, high)
    if prim not in QUANTISED:
        return [float(x) for x in v]
    q = args[2]
    k_lo, k_hi = _q_range(low, high, q)
    ks = np.clip(np.round(v / q), k_lo, k_hi).astype(np.int64)
    if all(_integral(a) for a in args):
        return [int(k) * int(q) for k in ks]
    return [_tidy(int(k) * q) for k in ks]


def sample(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random configs, reproducible for a given ``seed`` (numpy default_rng)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise CerebroError(
            f"num_configs must be at least 1, got {n!r}", hint="give num_configs => N with N >= 1"
        )
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise CerebroError(f"seed must be an integer, got {seed!r}")
    n = int(n)
    rng = np.random.default_rng(int(seed) % (2**63))
    columns = {name: _draw(rng, prim, args, n) for name, (prim, args) in space.entries.items()}
    out = []
    for i in range(n):
        config = {**space.fixed, **{name: col[i] for name, col in columns.items()}}
        out.append(
            {
                k: copy.deepcopy(config[k]) if k in space.fixed else config[k]
                for k in sorted(config)
            }
        )
    return out


# -- schema defaults and objectives ---------------------------------------------------------
def defaults(param_schema: dict[str, Any]) -> dict[str, Any]:
    """The ``default`` of every schema entry that has one (a null default means "not set",
    e.g. no initial weights file, and is left out of the config's parameters)."""
    if not isinstance(param_schema, dict):
        return {}
    return {
        k: copy.deepcopy(v["default"])
        for k, v in sorted(param_schema.items())
        if isinstance(v, dict) and v.get("default") is not None
    }


def objective_direction(objective: str) -> str:
    """'min' or 'max' for an objective such as valid_loss, valid_accuracy, train_mae:min."""
    if not isinstance(objective, str) or not objective.startswith(("valid_", "train_")):
        raise CerebroError(f"objective {objective!r} is not known", hint=_OBJECTIVE_HINT)
    m = _OBJECTIVE.fullmatch(objective)
    if m is None:
        name, _, suffix = objective.partition(":")
        if suffix and suffix not in ("min", "max"):
            raise CerebroError(
                f"objective {objective!r}: the suffix must be :min or :max", hint=_OBJECTIVE_HINT
            )
        if name in ("valid_", "train_"):
            raise CerebroError(f"objective {objective!r} names no metric", hint=_OBJECTIVE_HINT)
        raise CerebroError(
            f"objective {objective!r} is not a metric name (letters, digits, underscores)",
            hint=_OBJECTIVE_HINT,
        )
    metric, suffix = m.group(2).lower(), m.group(3)
    if suffix:
        return suffix
    if metric == "loss":
        return "min"
    return "max" if any(w in metric for w in _MAX_WORDS) else "min"
