"""The model registry: custom Keras scripts and the specs the training aggregates take.

A model *spec* (name, kind, entry point, source) is what travels to the aggregates; it is read
from ``cerebro.models`` here, on the coordinator, so that the aggregates never need to read the
catalog themselves (segment safety).
"""

from __future__ import annotations

import json
from typing import Any

from . import models, names, store
from .errors import CerebroError
from .guard import segment_safe


def sync_roster(plpy: Any) -> int:
    """Write the roster's parameter schemas into ``cerebro.models`` from ``roster.PARAMS``.

    The Python that builds a roster model is the one source of truth for the parameters it
    takes; install and every upgrade run this, so the catalog never holds a hand copy.
    """
    from .roster import PARAMS

    for name, schema in PARAMS.items():
        store.set_roster_schema(plpy, name, schema)
    return len(PARAMS)


def load(plpy: Any, model: str) -> store.Model:
    """The registered model ``model``, or a clear error."""
    m = store.find_model(plpy, model)
    if m is None:
        raise CerebroError(f"model {model!r} does not exist")
    return m


def model_spec(plpy: Any, model: str) -> str:
    """``cerebro.model_spec``: the spec of a registered model as JSON text."""
    return json.dumps(load(plpy, model).spec())


def check_params(m: store.Model, params: Any) -> None:
    """Refuse parameter names the model does not take (values are checked by the search)."""
    if not isinstance(params, dict):
        raise CerebroError('params must be a JSON object like {"learning_rate": 0.01}')
    reserved = models.RESERVED_PARAMS & set(params)
    if reserved:
        raise CerebroError(f"parameter name(s) {sorted(reserved)} are reserved")
    schema = m.param_schema
    if schema:
        unknown = sorted(set(params) - set(schema) - {"batch_size"})
        if unknown:
            raise CerebroError(
                f"model {m.name!r} does not take parameter(s) {unknown}",
                hint=f"it takes: {', '.join(sorted(schema))}",
            )


def _example_dataset(plpy: Any, dataset: str | None) -> dict[str, Any]:
    """The dataset metadata a new script is test-built against."""
    if dataset is None:
        return models.EXAMPLE_DATASET
    ds = store.find_dataset(plpy, dataset)
    if ds is None:
        raise CerebroError(f"dataset {dataset!r} does not exist")
    return models.dataset_meta(ds.row())


def register_model(
    plpy: Any,
    name: str,
    source: str,
    entry_point: str,
    param_schema_json: str | None,
    description: str | None,
    dataset: str | None,
    build_timeout: float | None = None,
) -> int:
    """``cerebro.register_model``: build the script once (fails clearly if it is broken),
    then record it."""
    if not isinstance(name, str) or not names.MODEL_NAME.match(name):
        raise CerebroError(f"model name {name!r} is not valid", hint=names.MODEL_NAME_HINT)
    if store.find_model(plpy, name) is not None:
        raise CerebroError(f"model {name!r} already exists")
    if not source or not source.strip():
        raise CerebroError("source must hold the Python code of the model")
    schema = json.loads(param_schema_json) if param_schema_json else {}
    if not isinstance(schema, dict):
        raise CerebroError('param_schema must be a JSON object {param: {"default": ...}}')
    meta = _example_dataset(plpy, dataset)
    spec = {
        "name": name,
        "kind": "custom",
        "entry_point": entry_point or "build",
        "source": source,
    }
    example = {
        k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v
    }
    with segment_safe(plpy):  # the script will run on segments: no database access
        models.build_model(spec, example, meta, seed=0, timeout=build_timeout)
    return store.insert_model(plpy, name, source, spec["entry_point"], schema, description)
