"""Entry points called by the SQL function bodies (coordinator side).

Each takes ``plpy`` (and ``GD`` where it caches) explicitly, so the logic is testable and the
SQL bodies stay a few lines. Errors surface as one clean SQL error message.
"""

from __future__ import annotations

import json
from typing import Any

from . import chunks, models, packing, training
from .errors import CerebroError, sql_errors
from .guard import segment_safe

MAX_VALUE_BYTES = (1 << 30) - (1 << 20)   # PostgreSQL's 1 GB limit, less room for headers
load_dataset = sql_errors(packing.load_dataset)
drop_dataset = sql_errors(packing.drop_dataset)
train_final = sql_errors(training.train_final)
eval_final = sql_errors(training.eval_final)


def _one(plpy: Any, query: str, types: list[str], args: list[Any], what: str) -> dict:
    rows = plpy.execute(plpy.prepare(query, types), args)
    if not rows:
        raise CerebroError(f"{what} does not exist")
    return dict(rows[0])


def _spec(plpy: Any, model: str) -> dict[str, Any]:
    row = _one(plpy, "select name, kind, entry_point, source, param_schema from cerebro.models "
               "where name = $1", ["text"], [model], f"model {model!r}")
    row["param_schema"] = json.loads(row["param_schema"])
    return row


def _check_params(spec: dict[str, Any], params: dict[str, Any]) -> None:
    if not isinstance(params, dict):
        raise CerebroError("params must be a JSON object like {\"learning_rate\": 0.01}")
    reserved = models.RESERVED_PARAMS & set(params)
    if reserved:
        raise CerebroError(f"parameter name(s) {sorted(reserved)} are reserved")
    schema = spec["param_schema"]
    if schema:
        unknown = sorted(set(params) - set(schema) - {"batch_size"})
        if unknown:
            raise CerebroError(f"model {spec['name']!r} does not take parameter(s) {unknown}",
                               hint=f"it takes: {', '.join(sorted(schema))}")


@sql_errors
def model_spec(plpy: Any, model: str) -> str:
    spec = _spec(plpy, model)
    spec.pop("param_schema")
    return json.dumps(spec)


@sql_errors
def subepoch_config(plpy: Any, model: str, dataset: str, params_json: str | None,
                    seed: int, partition: int | None, epoch: int,
                    config_id: int | None) -> str:
    spec = _spec(plpy, model)
    params = json.loads(params_json) if params_json else {}
    _check_params(spec, params)
    ds = _one(plpy, f"select {models.DATASET_COLUMNS} from cerebro.datasets where name = $1",
              ["text"], [dataset], f"dataset {dataset!r}")
    if partition is not None and not 0 <= partition < ds["num_partitions"]:
        raise CerebroError(f"dataset {dataset!r} has partitions 0..{ds['num_partitions'] - 1}, "
                           f"not {partition}")
    cfg = models.training_config(ds, params, seed, partition, epoch, config_id)
    return json.dumps(cfg)


_AGG_SQL = (
    "select (r).* from (select cerebro.{agg}($1, $2, $3) "
    "within group (order by buffer_id, x, y, num_rows) as r "
    "from cerebro.buffers where dataset_id = $4 {where}) s"
)


@sql_errors
def run_unit(plpy: Any, kind: str, model: str, dataset: str, partition: int | None,
             params_json: str | None, blob: bytes | None, seed: int, epoch: int,
             GD: dict | None = None) -> dict:
    """Run the train or eval aggregate on one partition (or, for eval, the whole dataset)."""
    if kind == "train" and partition is None:
        raise CerebroError("a sub-epoch trains on one partition: give partition => N")
    spec_json = model_spec.__wrapped__(plpy, model)
    cfg_json = subepoch_config.__wrapped__(plpy, model, dataset, params_json, seed, partition,
                                           epoch, None)
    dataset_id = json.loads(cfg_json)["dataset_id"]
    agg = "train_subepoch" if kind == "train" else "evaluate_partition"
    where = "and __dist_key__ = $5" if partition is not None else ""
    types = ["bytea", "jsonb", "jsonb", "int"] + (["int"] if partition is not None else [])
    args = [blob, spec_json, cfg_json, dataset_id] + ([partition] if partition is not None
                                                     else [])
    rows = plpy.execute(plpy.prepare(_AGG_SQL.format(agg=agg, where=where), types), args)
    out = dict(rows[0])
    if kind == "train" and chunks.is_ref(out["state"]):
        # larger than the aggregate may return inline: join it if one value can hold it
        data = b"".join(c[2] for c in chunks.unstash(GD, out["state"]))
        if len(data) > MAX_VALUE_BYTES:
            raise CerebroError(
                f"the new state has {len(data)} bytes, more than one PostgreSQL value holds "
                "(1 GB)", hint="train it with cerebro.launch: the scheduler stores large "
                               "states in chunks")
        out["state"] = data
    return out


@sql_errors
def register_model(plpy: Any, name: str, source: str, entry_point: str,
                   param_schema_json: str | None, description: str | None,
                   dataset: str | None, build_timeout: float | None = None) -> int:
    import re
    if not isinstance(name, str) or not re.match(r"^[a-z_][a-z0-9_]{0,62}$", name):
        raise CerebroError(f"model name {name!r} is not valid",
                           hint="lower-case letters, digits and _, starting with a letter or _")
    if plpy.execute(plpy.prepare("select 1 from cerebro.models where name = $1", ["text"]),
                    [name]):
        raise CerebroError(f"model {name!r} already exists")
    if not source or not source.strip():
        raise CerebroError("source must hold the Python code of the model")
    schema = json.loads(param_schema_json) if param_schema_json else {}
    if not isinstance(schema, dict):
        raise CerebroError("param_schema must be a JSON object {param: {\"default\": ...}}")
    if dataset is not None:
        ds = _one(plpy, "select name, feature_shape, task, classes from cerebro.datasets "
                  "where name = $1", ["text"], [dataset], f"dataset {dataset!r}")
        meta = models.dataset_meta(ds)
    else:
        meta = models.EXAMPLE_DATASET
    spec = {"name": name, "kind": "custom", "entry_point": entry_point or "build",
            "source": source}
    example = {k: v["default"] for k, v in schema.items()
               if isinstance(v, dict) and "default" in v}
    with segment_safe(plpy):       # the script will run on segments: no database access
        # fails clearly if the script is broken
        models.build_model(spec, example, meta, seed=0, timeout=build_timeout)
    return plpy.execute(plpy.prepare(
        "insert into cerebro.models (name, kind, source, entry_point, param_schema, "
        "description) values ($1, 'custom', $2, $3, $4, $5) returning model_id",
        ["text", "text", "text", "jsonb", "text"]),
        [name, source, spec["entry_point"], json.dumps(schema), description])[0]["model_id"]


@sql_errors
def launch(plpy: Any, *args: Any) -> int:
    from .launch import launch as _launch      # imported on use: only launch needs search

    return _launch(plpy, *args)


@sql_errors
def evaluate(plpy: Any, GD: dict, config_id: int, dataset: str, epoch: int | None) -> str:
    from . import inference

    return inference.evaluate(plpy, GD, config_id, dataset, epoch)


@sql_errors
def predict(plpy: Any, config_id: int, source: str, output: str, key: str | None,
            epoch: int | None, batch_rows: int | None) -> int:
    from . import inference

    return inference.predict(plpy, config_id, source, output, key, epoch, batch_rows)


@sql_errors
def export_model(plpy: Any, config_id: int, epoch: int | None) -> bytes:
    from . import inference

    return inference.export_model(plpy, config_id, epoch)


@sql_errors
def import_petastorm(plpy: Any, name: str, url: str, table_name: str | None,
                     batch_rows: int | None, images: str, if_exists: str) -> int:
    from . import petastorm_import

    return petastorm_import.import_petastorm(plpy, name, url, table_name, batch_rows, images,
                                             if_exists)
