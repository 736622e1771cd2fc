"""``cerebro.drill_down``: a child workload that searches a refined space around a config.

Every parameter the new space does not search is pinned to the parent's best config (or the
one named), and the child is launched with the same verb as any workload
(:func:`launch.create`), so it is validated the same way. Sits above ``launch`` in the
layers: nothing below imports it.
"""

from __future__ import annotations

import json
from typing import Any

from . import launch, store
from .errors import CerebroError
from .steering import config as load_config
from .steering import workload as load_workload


def _base_config(plpy: Any, w: store.Workload, config_id: int | None) -> store.Config:
    """The config whose parameters are pinned: given, or the best one measured so far."""
    if config_id is None:
        config_id = store.best_config(plpy, w.workload_id)
        if config_id is None:
            raise CerebroError(
                f"workload {w.name!r} has no config with a measured objective yet",
                hint="name one with config_id => N",
            )
    base = load_config(plpy, config_id)
    if base.workload_id != w.workload_id:
        raise CerebroError(f"config {config_id} is not in workload {w.name!r}")
    return base


def _dataset_name(plpy: Any, dataset_id: int | None) -> str | None:
    if dataset_id is None:
        return None
    ds = store.dataset_by_id(plpy, dataset_id)
    assert ds is not None  # a foreign key of the workload
    return ds.name


def drill_down(
    plpy: Any,
    parent_workload: int,
    space_json: str | None,
    search_name: str,
    num_configs: int | None,
    config_id: int | None,
    max_epochs: int | None,
    name: str | None,
    seed: int | None,
    options_json: str | None = None,
) -> int:
    """A child workload whose unsearched parameters are pinned to the parent's best config."""
    w = load_workload(plpy, parent_workload, steer=True)
    base = _base_config(plpy, w, config_id)
    space = json.loads(space_json) if space_json else {}
    if not isinstance(space, dict) or not space:
        raise CerebroError("drill_down needs a non-empty space to search")
    pinned = {k: v for k, v in base.params.items() if k not in space}
    child_name = name or f"{w.name}/drill-{store.count_child_workloads(plpy, w.workload_id) + 1}"
    options = json.loads(options_json) if options_json else {}
    if isinstance(options, dict) and launch.KEEP_CHECKPOINTS in w.options:
        # the child keeps as few checkpoints as its parent unless told otherwise
        options.setdefault(launch.KEEP_CHECKPOINTS, w.options[launch.KEEP_CHECKPOINTS])
    wid = launch.create(
        plpy,
        launch.Request(
            name=child_name,
            model=w.model,
            train=_dataset_name(plpy, w.train_dataset) or "",
            valid=_dataset_name(plpy, w.valid_dataset),
            search=search_name,
            space=space,
            num_configs=num_configs,
            max_epochs=max_epochs or w.max_epochs,
            objective=w.objective,
            seed=w.seed if seed is None else seed,
            params=pinned,
            priority=w.priority,
            options=options,
            parent_workload=w.workload_id,
        ),
    )
    store.record_event(
        plpy,
        "drill_down",
        workload_id=w.workload_id,
        config_id=base.config_id,
        detail={"child_workload": wid, "name": child_name, "pinned": pinned, "space": space},
    )
    return wid
