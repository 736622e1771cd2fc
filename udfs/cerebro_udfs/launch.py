"""``cerebro.launch``: validate a search and insert its workload and configs.

Everything is checked before anything is written, and it all happens in the caller's
transaction: an unknown model or dataset, an empty or malformed space, a parameter the model
does not take or a validation set encoded differently from the training set is one clear error
and leaves nothing behind. Training starts when the transaction commits (NOTIFY wakes the
scheduler).
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import automl, search
from .errors import CerebroError

SEARCHES = ("grid", "random", *automl.PROCEDURES)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,62}$")


def _row(plpy: Any, query: str, types: list[str], args: list[Any]) -> dict | None:
    rows = plpy.execute(plpy.prepare(query, types), args)
    return dict(rows[0]) if rows else None


def _dataset(plpy: Any, name: str, role: str) -> dict[str, Any]:
    row = _row(plpy, "select dataset_id, name, task, classes, feature_shape, normalization, "
               "features, label from cerebro.datasets where name = $1", ["text"], [name])
    if row is None:
        raise CerebroError(f"{role} dataset {name!r} does not exist",
                           hint="load it first with cerebro.load_dataset(...)")
    return row


def launch(plpy: Any, name: str, model: str, train: str, valid: str | None, search_name: str,
           space_json: str | None, num_configs: int | None, max_epochs: int, objective: str,
           seed: int, params_json: str | None, priority: int,
           options_json: str | None = None) -> int:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CerebroError(f"workload name {name!r} is not valid",
                           hint="letters, digits and _ . / : - (at most 63)")
    if _row(plpy, "select 1 from cerebro.workloads where name = $1", ["text"], [name]):
        raise CerebroError(f"workload {name!r} already exists")
    m = _row(plpy, "select model_id, name, param_schema from cerebro.models where name = $1",
             ["text"], [model])
    if m is None:
        known = [r["name"] for r in plpy.execute("select name from cerebro.models order by 1")]
        raise CerebroError(f"model {model!r} does not exist", hint=f"models: {', '.join(known)}")
    schema = json.loads(m["param_schema"])
    tr = _dataset(plpy, train, "training")
    n_parts = plpy.execute(plpy.prepare("select num_partitions from cerebro.datasets where "
                                        "dataset_id = $1", ["int"]),
                           [tr["dataset_id"]])[0]["num_partitions"]
    va = _dataset(plpy, valid, "validation") if valid else None
    if va is not None:
        for field in ("task", "classes", "feature_shape", "normalization"):
            if tr[field] != va[field]:
                raise CerebroError(
                    f"validation dataset {valid!r} does not match the encoding of {train!r} "
                    f"({field} differs)",
                    hint=f"load it with like_dataset => '{train}'")
    if search_name not in SEARCHES:
        raise CerebroError(f"search {search_name!r} is not known",
                           hint=f"search is one of: {', '.join(SEARCHES)}")
    if max_epochs is None or max_epochs < 1:
        raise CerebroError(f"max_epochs must be at least 1, got {max_epochs}")
    direction = search.objective_direction(objective)
    if objective.startswith("valid_") and va is None:
        raise CerebroError(f"objective {objective!r} needs a validation dataset",
                           hint="give valid => 'dataset', or use a train_ objective")
    try:
        space_obj = json.loads(space_json) if space_json else {}
        fixed = json.loads(params_json) if params_json else {}
    except ValueError as e:
        raise CerebroError(f"space/params are not valid JSON: {e}") from None
    if not isinstance(space_obj, dict) or not isinstance(fixed, dict):
        raise CerebroError("space and params must be JSON objects")
    space = search.parse_space(space_obj, schema, fixed)
    try:
        options = json.loads(options_json) if options_json else {}
    except ValueError as e:
        raise CerebroError(f"options are not valid JSON: {e}") from None
    if not isinstance(options, dict):
        raise CerebroError("options must be a JSON object")
    if search_name in ("grid", "random") and options:
        raise CerebroError(f"search {search_name!r} takes no options")
    options = automl.check_options(search_name, options, max_epochs, n_parts)
    if search_name == "grid":
        points = search.grid(space)
        if num_configs is not None and num_configs != len(points):
            raise CerebroError(
                f"the grid over this space has {len(points)} configs, not {num_configs}",
                hint="omit num_configs for grid search, or use search => 'random'")
    else:
        if num_configs is None or num_configs < 1:
            raise CerebroError(f"{search_name} search needs num_configs => N (N >= 1)")
        # hyperopt suggests its configs step by step; the others start from random samples
        points = [] if search_name == "hyperopt" else search.sample(space, num_configs, seed)
    base = search.defaults(schema)

    actor = "human:" + plpy.execute("select current_user as u")[0]["u"]
    wid = _row(plpy,
               "insert into cerebro.workloads (name, model_id, train_dataset, valid_dataset, "
               "search, space, objective, objective_direction, max_epochs, priority, seed, "
               "num_configs, fixed_params, options) values ($1, $2, $3, $4, $5, $6, $7, $8, "
               "$9, $10, $11, $12, $13, $14) returning workload_id",
               ["text", "int", "int", "int", "text", "jsonb", "text", "text", "int", "int",
                "bigint", "int", "jsonb", "jsonb"],
               [name, m["model_id"], tr["dataset_id"], va["dataset_id"] if va else None,
                search_name, json.dumps(space_obj), objective, direction, max_epochs, priority,
                seed, num_configs if search_name == "hyperopt" else len(points),
                json.dumps(fixed), json.dumps(options)])["workload_id"]
    insert = plpy.prepare(
        "insert into cerebro.configs (workload_id, params, seed, source) "
        "values ($1, $2, $3, 'automl') returning config_id", ["int", "jsonb", "bigint"])
    event = plpy.prepare(
        "insert into cerebro.events (actor, workload_id, config_id, action, detail) "
        "values ($1, $2, $3, $4, $5)", ["text", "int", "int", "text", "jsonb"])
    plpy.execute(event, [actor, wid, None, "launch", json.dumps(
        {"model": model, "train": train, "valid": valid, "search": search_name,
         "num_configs": num_configs if search_name == "hyperopt" else len(points),
         "max_epochs": max_epochs, "objective": objective, "options": options})])
    for i, p in enumerate(points):
        params = {**base, **fixed, **p}
        # the steering trigger records the 'add' event (actor automl:<search>)
        plpy.execute(insert, [wid, json.dumps(params), seed * 1000 + i])
    if search_name == "hyperopt":
        automl.step(plpy, wid)                      # the first `parallelism` suggestions
    plpy.execute("select pg_notify('cerebro', 'launch')")
    return wid
