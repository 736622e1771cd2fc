"""Steering verbs that need Python: checking added configs, clone, drill-down, stop.

The state machine itself is enforced by PL/pgSQL triggers (sql/idempotent/050-steering.sql),
so a plain ``UPDATE cerebro.configs`` is steering too; these functions only do what SQL
alone cannot (check parameters against the model, compare architectures).
"""

from __future__ import annotations

import json
from typing import Any

from . import search
from .errors import CerebroError


def _workload(plpy: Any, workload_id: int) -> dict[str, Any]:
    rows = plpy.execute(plpy.prepare(
        "select w.*, m.name as model, m.param_schema from cerebro.workloads w "
        "join cerebro.models m using (model_id) where w.workload_id = $1", ["int"]),
        [workload_id])
    if not rows:
        raise CerebroError(f"workload {workload_id} does not exist")
    w = dict(rows[0])
    for k in ("param_schema", "fixed_params", "space"):
        w[k] = json.loads(w[k]) if isinstance(w[k], str) else w[k]
    return w


def prepare_params(plpy: Any, workload_id: int, params_json: str) -> str:
    """Complete and check the params of a config added by INSERT (or clone).

    Names and values are checked against the model's parameter schema; parameters left out
    are filled from the workload's fixed parameters and then the model's defaults.
    """
    w = _workload(plpy, workload_id)
    params = json.loads(params_json) if params_json else {}
    if not isinstance(params, dict):
        raise CerebroError("params must be a JSON object")
    search.parse_space({}, w["param_schema"], params) if params else None
    full = {**search.defaults(w["param_schema"]), **w["fixed_params"], **params}
    return json.dumps(full)


def _config(plpy: Any, config_id: int) -> dict[str, Any]:
    rows = plpy.execute(plpy.prepare(
        "select * from cerebro.configs where config_id = $1", ["int"]), [config_id])
    if not rows:
        raise CerebroError(f"config {config_id} does not exist")
    c = dict(rows[0])
    c["params"] = json.loads(c["params"])
    return c


def clone(plpy: Any, config_id: int, overrides_json: str | None, fresh: bool,
          workload_id: int | None, max_epochs: int | None = None) -> int:
    """A new config from ``config_id``'s latest checkpoint, with ``overrides`` applied."""
    parent = _config(plpy, config_id)
    target = workload_id or parent["workload_id"]
    w = _workload(plpy, target)
    overrides = json.loads(overrides_json) if overrides_json else {}
    if not isinstance(overrides, dict):
        raise CerebroError("overrides must be a JSON object like {\"learning_rate\": 0.001}")
    if overrides:
        search.parse_space({}, w["param_schema"], overrides)
    params = {**parent["params"], **overrides}
    if max_epochs is not None and max_epochs < 1:
        raise CerebroError(f"max_epochs must be at least 1, got {max_epochs}")
    ck = plpy.execute(plpy.prepare(
        "select epoch, state from cerebro.checkpoints where config_id = $1 "
        "order by epoch desc limit 1", ["int"]), [config_id])
    epoch = 0
    if ck and not fresh:
        epoch = ck[0]["epoch"]
        changed = _architecture_change(plpy, w, parent, params, ck[0]["state"])
        if changed:
            raise CerebroError(
                f"overriding {sorted(overrides)} changes the model's architecture "
                f"({changed}), so the trained weights cannot be reused",
                hint="pass fresh => true to start the clone from a new initialisation")
    cid = plpy.execute(plpy.prepare(
        "insert into cerebro.configs (workload_id, params, seed, parent_config, source, "
        "epoch, clone_epoch, priority, max_epochs) values ($1, $2, $3, $4, 'clone', $5, $6, "
        "$7, $8) returning config_id",
        ["int", "jsonb", "bigint", "int", "int", "int", "int", "int"]),
        [target, json.dumps(params), parent["seed"], config_id, epoch,
         epoch if epoch else None, parent["priority"], max_epochs])[0]["config_id"]
    if epoch:
        plpy.execute(plpy.prepare(
            "insert into cerebro.checkpoints (config_id, epoch, state) "
            "select $1, epoch, state from cerebro.checkpoints where config_id = $2 and "
            "epoch = $3", ["int", "int", "int"]), [cid, config_id, epoch])
    return cid


def _architecture_change(plpy: Any, w: dict, parent: dict, params: dict,
                         blob: bytes) -> str | None:
    """Compare the variable shapes the new params build with those of the checkpoint."""
    from . import models, state

    from . import chunks

    header = state.read_header(chunks.fetch(plpy, blob))
    saved = [tuple(a["shape"]) for a in header["arrays"] if a["section"] == "model"]
    spec_rows = plpy.execute(plpy.prepare(
        "select name, kind, entry_point, source from cerebro.models where model_id = $1",
        ["int"]), [w["model_id"]])
    ds = plpy.execute(plpy.prepare(
        f"select {models.DATASET_COLUMNS} from cerebro.datasets where dataset_id = $1",
        ["int"]), [w["train_dataset"]])[0]
    model = models.build_model(dict(spec_rows[0]), params, models.dataset_meta(dict(ds)),
                               parent["seed"])
    now = [tuple(v.shape) for v in model.variables]
    if now != saved:
        return f"{len(saved)} variables {saved[:4]}... vs {len(now)} {now[:4]}..." \
            if len(saved) > 4 else f"variable shapes {saved} vs {now}"
    return None


def drill_down(plpy: Any, parent_workload: int, space_json: str, search_name: str,
               num_configs: int | None, config_id: int | None, max_epochs: int | None,
               name: str | None, seed: int | None, options_json: str | None = None) -> int:
    """A child workload whose unsearched parameters are pinned to the parent's best config."""
    from .launch import launch

    w = _workload(plpy, parent_workload)
    if config_id is None:
        rows = plpy.execute(plpy.prepare(
            "select config_id from cerebro.leaderboard where workload_id = $1 and "
            "best_objective is not null order by rank, config_id limit 1", ["int"]),
            [parent_workload])
        if not rows:
            raise CerebroError(f"workload {w['name']!r} has no config with a measured "
                               "objective yet", hint="name one with config_id => N")
        config_id = rows[0]["config_id"]
    base = _config(plpy, config_id)
    if base["workload_id"] != parent_workload:
        raise CerebroError(f"config {config_id} is not in workload {w['name']!r}")
    space = json.loads(space_json) if space_json else {}
    if not isinstance(space, dict) or not space:
        raise CerebroError("drill_down needs a non-empty space to search")
    pinned = {k: v for k, v in base["params"].items() if k not in space}
    n = plpy.execute(plpy.prepare("select count(*) as n from cerebro.workloads where "
                                  "parent_workload = $1", ["int"]), [parent_workload])[0]["n"]
    child_name = name or f"{w['name']}/drill-{n + 1}"
    tr = plpy.execute(plpy.prepare("select name from cerebro.datasets where dataset_id = $1",
                                   ["int"]), [w["train_dataset"]])[0]["name"]
    va = plpy.execute(plpy.prepare("select name from cerebro.datasets where dataset_id = $1",
                                   ["int"]), [w["valid_dataset"]])[0]["name"] \
        if w["valid_dataset"] else None
    wid = launch(plpy, child_name, w["model"], tr, va, search_name, json.dumps(space),
                 num_configs, max_epochs or w["max_epochs"], w["objective"],
                 w["seed"] if seed is None else seed, json.dumps(pinned), w["priority"],
                 options_json)
    plpy.execute(plpy.prepare("update cerebro.workloads set parent_workload = $1 where "
                              "workload_id = $2", ["int", "int"]), [parent_workload, wid])
    plpy.execute(plpy.prepare(
        "insert into cerebro.events (actor, workload_id, config_id, action, detail) values "
        "(cerebro.actor(), $1, $2, 'drill_down', $3)", ["int", "int", "jsonb"]),
        [parent_workload, config_id, json.dumps({"child_workload": wid, "name": child_name,
                                                 "pinned": pinned, "space": space})])
    return wid
