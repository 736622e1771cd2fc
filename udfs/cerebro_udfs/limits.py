"""Caps on every size a user chooses, read from ``cerebro.limits``.

A user picks how many configs a workload has, how many partitions and how large the buffers
of a dataset are, how big the images and texts, how wide and deep the models: each of those
sizes is checked against an admin-set cap before any work is done or anything is written,
so one careless or hostile call cannot exhaust the server's memory, disk or time. The caps
live in a table (only ``cerebro_admin`` updates it; any session could SET a setting); a
missing row falls back to the migration's default in :data:`DEFAULTS`.

A config's ``weights`` parameter names a file on the server: your own uploads
(``cerebro.upload_weights``) are yours to use; any other path needs ``pg_read_server_files``
(superusers have it), and that is checked before anything looks at the path, so the error
never tells whether a file exists.

The comparisons and messages are pure functions (:func:`over_limit`, :func:`check_sizes`);
:func:`cap`, :func:`check`, :func:`check_weights` and :func:`check_config` read the server.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from . import roster, store
from .errors import CerebroError

# Equal to the rows sql/incremental/006-security.sql inserts (a test compares them).
DEFAULTS: dict[str, float] = {
    "max_configs": 1000,
    "max_parallelism": 64,
    "max_partitions": 256,
    "max_buffer_bytes": 268435456,
    "max_image_side": 1024,
    "max_text_length": 8192,
    "max_vocabulary_size": 1000000,
    "max_layer_width": 65536,
    "max_model_params": 500000000,
    "max_epochs": 100000,
    "max_priority": 1000000,
    "max_upload_bytes": 1073741824,
}
CAP_SQL = "select value from cerebro.limits where name = $1"
CAPS_SQL = "select name, value from cerebro.limits"
READ_FILES_SQL = (
    "select pg_catalog.pg_has_role(session_user, 'pg_read_server_files', 'member') as ok"
)
WEIGHTS_ROLE = "pg_read_server_files"


# ----------------------------------------------------------------------------- pure part


def _number(v: float) -> str:
    """1000.0 -> '1000', 0.5 -> '0.5' (caps are double precision, most are integers)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def over_limit(
    name: str, limit: float, value: float, what: str, instead: str | None = None
) -> CerebroError | None:
    """The error for ``what`` = ``value`` over cap ``name`` = ``limit``, or None if within;
    ``instead`` is what the user could do themselves (it starts the hint)."""
    if name not in DEFAULTS:
        raise KeyError(f"{name!r} is not a limit; limits: {', '.join(DEFAULTS)}")
    if value <= limit:
        return None
    raised = math.ceil(value)
    return CerebroError(
        f"{what} {_number(value)} is over the limit {name} = {_number(limit)}",
        hint=(f"{instead}, or " if instead else "")
        + f"an admin raises it: UPDATE cerebro.limits SET value = {raised} WHERE name = '{name}'",
    )


def check_value(
    caps: dict[str, float],
    name: str,
    value: float | None,
    what: str,
    instead: str | None = None,
) -> None:
    """Raise when ``value`` is over ``caps[name]`` (None is not checked)."""
    if value is None:
        return
    err = over_limit(name, caps.get(name, DEFAULTS[name]), value, what, instead)
    if err is not None:
        raise err


def _describe_config(model: str, params: dict[str, Any], label: str | None) -> str:
    if label:
        return label
    shown = {k: v for k, v in sorted(params.items()) if k != "weights"}
    return f"{model} config {json.dumps(shown, sort_keys=True, default=str)}"


def check_sizes(
    caps: dict[str, float],
    model: str,
    params: dict[str, Any],
    dataset_meta: dict[str, Any],
    label: str | None = None,
) -> None:
    """A roster config's layer widths, vocabulary and estimated parameter count against the
    caps (custom models have no estimate: only their ``vocabulary_size``, if any, is checked).
    ``label`` names the config in the message (default: the model and its parameters)."""
    who = _describe_config(model, params, label)
    vocab = params.get("vocabulary_size")
    if isinstance(vocab, (int, float)) and not isinstance(vocab, bool):
        check_value(caps, "max_vocabulary_size", vocab, f"{who}: vocabulary_size")
    if model not in roster.ESTIMATES:
        return
    widths = roster.WIDTHS[model](params)
    if widths:
        check_value(caps, "max_layer_width", max(widths), f"{who}: layer width")
    n = roster.ESTIMATES[model](params, dataset_meta)
    check_value(caps, "max_model_params", n, f"{who}: estimated parameters")


def largest_config(
    model: str,
    entries: dict[str, tuple[str, list[Any]]],
    base: dict[str, Any],
    dataset_meta: dict[str, Any],
) -> dict[str, Any]:
    """Roughly the largest config a search space can suggest (for hyperopt, whose configs
    come later): each searched parameter in turn takes the choice or range end that makes
    the estimated parameter count, then the widest layer, largest. ``entries`` are
    ``search.Space.entries``; ``base`` holds the defaults and fixed values."""
    out = dict(base)
    if model not in roster.ESTIMATES:
        return out
    for name, (prim, args) in entries.items():
        if prim == "choice":
            candidates = list(args)
        elif prim == "randint":
            candidates = [int(args[0]), int(args[1]) - 1]
        else:
            candidates = [args[0], args[1]]

        def size(value: Any, name: str = name) -> tuple[int, int]:
            p = {**out, name: value}
            return roster.ESTIMATES[model](p, dataset_meta), max(roster.WIDTHS[model](p) or [0])

        out[name] = max(candidates, key=size)
    return out


def model_name(model: str | dict[str, Any]) -> str:
    """A model's name from its name or its spec (``store.Model.spec()``): a roster model's
    entry point (a key of ``roster.ESTIMATES``), else the name (custom models have no
    estimate, and their names never equal a roster model's)."""
    if isinstance(model, str):
        return model
    if model.get("kind") == "roster":
        return str(model.get("entry_point") or model.get("name"))
    return str(model.get("name"))


# ----------------------------------------------------------------------------- the server


def cap(plpy: Any, name: str) -> float:
    """The cap ``name`` (``cerebro.limits``, else the migration's default)."""
    if name not in DEFAULTS:
        raise KeyError(f"{name!r} is not a limit; limits: {', '.join(DEFAULTS)}")
    rows = plpy.execute(plpy.prepare(CAP_SQL, ["text"]), [name])
    return float(rows[0]["value"]) if rows else DEFAULTS[name]


def caps(plpy: Any) -> dict[str, float]:
    """Every cap at once (for checking many configs with one query)."""
    out = dict(DEFAULTS)
    for row in plpy.execute(CAPS_SQL):
        if row["name"] in out:
            out[row["name"]] = float(row["value"])
    return out


def check(
    plpy: Any, name: str, value: float | None, what: str, instead: str | None = None
) -> None:
    """Raise a :class:`CerebroError` when ``value`` (named ``what``) is over cap ``name``."""
    if value is None:
        return
    err = over_limit(name, cap(plpy, name), value, what, instead)
    if err is not None:
        raise err


def check_weights(plpy: Any, params: dict[str, Any]) -> None:
    """Refuse a ``weights`` path to anyone who may not read server files, before the path
    is looked at (so the error says nothing about whether it exists)."""
    if not isinstance(params, dict) or params.get("weights") is None:
        return
    path = params["weights"]
    if isinstance(path, str) and store.own_upload(plpy, path):
        return
    if not plpy.execute(READ_FILES_SQL)[0]["ok"]:
        raise CerebroError(
            f"weights paths are files on the server: using one needs the {WEIGHTS_ROLE} role",
            hint="upload them: cerebro.upload_weights(name, bytes) returns the path to give, "
            f"or ask an admin: GRANT {WEIGHTS_ROLE} TO <your role>",
        )


def check_configs(
    plpy: Any,
    model: str | dict[str, Any],
    configs: Iterable[dict[str, Any]],
    dataset_meta: dict[str, Any],
) -> None:
    """:func:`check_config` for many configs with one read of the caps and of the role."""
    configs = list(configs)
    for path in {json.dumps(c.get("weights")) for c in configs} - {"null"}:
        check_weights(plpy, {"weights": json.loads(path)})
    if not configs:
        return
    limits = caps(plpy)
    for params in configs:
        check_sizes(limits, model_name(model), params, dataset_meta)


def check_config(
    plpy: Any,
    model: str | dict[str, Any],
    params: dict[str, Any],
    dataset_meta: dict[str, Any],
) -> None:
    """One config about to be inserted: its ``weights`` (:func:`check_weights`), then its
    layer widths, vocabulary and estimated parameters (:func:`check_sizes`). ``model`` is a
    model name or spec; ``dataset_meta`` is ``models.dataset_meta`` of its training set."""
    check_configs(plpy, model, [params], dataset_meta)
