"""Steering verbs that need Python: checking added configs, and clone.

The state machine itself is enforced by PL/pgSQL triggers (sql/idempotent/050-steering.sql),
so a plain ``UPDATE cerebro.configs`` is steering too; these functions only do what SQL
alone cannot (check parameters against the model, compare architectures). AutoML procedures
call the same verbs (``automl`` imports this module, never the reverse).
"""

from __future__ import annotations

import json
from typing import Any

from . import chunks, limits, models, registry, search, state, store
from .errors import CerebroError


def workload(
    plpy: Any, workload_id: int, lock: bool = False, steer: bool = False
) -> store.Workload:
    """The workload or a clear error; ``lock`` as in :func:`store.find_workload`. One the
    session user may not see (or, with ``steer``, steer) does not exist for them: the verbs
    run as the extension's owner, so row-level security does not hide it here."""
    w = store.find_workload(plpy, workload_id, lock=lock)
    if w is None or not store.may_see_workload(plpy, workload_id, steer):
        raise CerebroError(f"workload {workload_id} does not exist")
    return w


def config(plpy: Any, config_id: int, steer: bool = False) -> store.Config:
    """The config or a clear error; visibility as in :func:`workload`."""
    c = store.find_config(plpy, config_id)
    if c is None or not store.may_see_config(plpy, config_id, steer):
        raise CerebroError(f"config {config_id} does not exist")
    return c


def prepare_params(plpy: Any, workload_id: int, params_json: str) -> str:
    """Complete and check the params of a config added by INSERT (or clone).

    Names and values are checked against the model's parameter schema; parameters left out
    are filled from the workload's fixed parameters and then the model's defaults.
    """
    w = workload(plpy, workload_id)
    params = json.loads(params_json) if params_json else {}
    if not isinstance(params, dict):
        raise CerebroError("params must be a JSON object")
    if params:
        search.parse_space({}, w.param_schema, params)
    full = {**search.defaults(w.param_schema), **w.fixed_params, **params}
    if not store.session_is_daemon(plpy):
        _check_limits(plpy, w, full)
    return json.dumps(full)


def _check_limits(plpy: Any, w: store.Workload, params: dict[str, Any]) -> None:
    """A config a person adds or clones: weights paths need pg_read_server_files, and its
    layer widths and estimated size stay within cerebro.limits."""
    train = store.dataset_by_id(plpy, w.train_dataset)
    if train is None:  # a foreign key keeps it; nothing to size against otherwise
        return
    spec = registry.load(plpy, w.model).spec()
    limits.check_config(plpy, spec, params, models.dataset_meta(train.row()))


def clone(
    plpy: Any,
    config_id: int,
    overrides_json: str | None,
    fresh: bool,
    workload_id: int | None,
    max_epochs: int | None = None,
) -> int:
    """A new config from ``config_id``'s latest checkpoint, with ``overrides`` applied."""
    parent = config(plpy, config_id, steer=True)
    w = workload(plpy, workload_id or parent.workload_id, steer=True)
    overrides = json.loads(overrides_json) if overrides_json else {}
    if not isinstance(overrides, dict):
        raise CerebroError('overrides must be a JSON object like {"learning_rate": 0.001}')
    if overrides:
        search.parse_space({}, w.param_schema, overrides)
    params = {**parent.params, **overrides}
    if max_epochs is not None and max_epochs < 1:
        raise CerebroError(f"max_epochs must be at least 1, got {max_epochs}")
    ck = store.latest_checkpoint(plpy, config_id, lock=not fresh)
    epoch = 0
    if ck and not fresh:
        epoch = ck[0]
        changed = _architecture_change(plpy, w, parent, params, ck[1])
        if changed:
            raise CerebroError(
                f"overriding {sorted(overrides)} changes the model's architecture "
                f"({changed}), so the trained weights cannot be reused",
                hint="pass fresh => true to start the clone from a new initialisation",
            )
    cid = store.insert_config(
        plpy,
        w.workload_id,
        params,
        parent.seed,
        source="clone",
        parent_config=config_id,
        epoch=epoch,
        clone_epoch=epoch if epoch else None,
        priority=parent.priority,
        max_epochs=max_epochs,
    )
    if epoch:
        store.copy_checkpoint(plpy, cid, config_id, epoch)
    return cid


def _architecture_change(
    plpy: Any, w: store.Workload, parent: store.Config, params: dict[str, Any], blob: bytes
) -> str | None:
    """Compare the variable shapes the new params build with those of the checkpoint."""
    data = chunks.fetch(plpy, blob)
    assert data is not None  # a checkpoint's state is never NULL
    header = state.read_header(data)
    saved = [tuple(a["shape"]) for a in header["arrays"] if a["section"] == "model"]
    m = store.model_by_id(plpy, w.model_id)
    ds = store.dataset_by_id(plpy, w.train_dataset)
    assert m is not None and ds is not None  # foreign keys of the workload
    model = models.build_model(m.spec(), params, models.dataset_meta(ds.row()), parent.seed)
    now = [tuple(v.shape) for v in model.variables]
    if now != saved:
        return (
            f"{len(saved)} variables {saved[:4]}... vs {len(now)} {now[:4]}..."
            if len(saved) > 4
            else f"variable shapes {saved} vs {now}"
        )
    return None
