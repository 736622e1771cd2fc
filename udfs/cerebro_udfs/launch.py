"""``cerebro.launch``: validate a search and insert its workload and configs.

Everything is checked before anything is written, and it all happens in the caller's
transaction: an unknown model or dataset, an empty or malformed space, a parameter the model
does not take or a validation set encoded differently from the training set is one clear error
and leaves nothing behind. Training starts when the transaction commits (NOTIFY wakes the
scheduler).

``launch`` takes the SQL function's arguments; :func:`create` takes a :class:`Request` and is
what other verbs (``drill.drill_down``) call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import automl, limits, models, names, search, store
from .errors import CerebroError

SEARCHES = ("grid", "random", *automl.PROCEDURES)


@dataclass
class Request:
    """A search to launch, as the user gave it (names, not ids)."""

    name: str
    model: str
    train: str
    valid: str | None = None
    search: str = "grid"
    space: dict[str, Any] = field(default_factory=dict)
    num_configs: int | None = None
    max_epochs: int = 10
    objective: str = "valid_loss"
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    parent_workload: int | None = None


def _object(text: str | None, what: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError as e:
        raise CerebroError(f"{what} are not valid JSON: {e}") from None


def launch(
    plpy: Any,
    name: str,
    model: str,
    train: str,
    valid: str | None,
    search_name: str,
    space_json: str | None,
    num_configs: int | None,
    max_epochs: int,
    objective: str,
    seed: int,
    params_json: str | None,
    priority: int,
    options_json: str | None = None,
) -> int:
    """``cerebro.launch`` with the SQL function's arguments (jsonb as text)."""
    return create(
        plpy,
        Request(
            name,
            model,
            train,
            valid,
            search_name,
            _object(space_json, "space/params"),
            num_configs,
            max_epochs,
            objective,
            seed,
            _object(params_json, "space/params"),
            priority,
            _object(options_json, "options"),
        ),
    )


def _check_name(plpy: Any, name: str) -> None:
    if not isinstance(name, str) or not names.WORKLOAD_NAME.match(name):
        raise CerebroError(f"workload name {name!r} is not valid", hint=names.WORKLOAD_NAME_HINT)
    if store.workload_exists(plpy, name):
        raise CerebroError(f"workload {name!r} already exists")


def _model(plpy: Any, model: str) -> store.Model:
    m = store.find_model(plpy, model)
    if m is None:
        raise CerebroError(
            f"model {model!r} does not exist", hint=f"models: {', '.join(store.model_names(plpy))}"
        )
    return m


def _dataset(plpy: Any, name: str, role: str) -> store.Dataset:
    ds = store.find_dataset(plpy, name)
    if ds is None:
        raise CerebroError(
            f"{role} dataset {name!r} does not exist",
            hint="load it first with cerebro.load_dataset(...)",
        )
    return ds


def _datasets(plpy: Any, r: Request) -> tuple[store.Dataset, store.Dataset | None]:
    """The training and validation sets; the latter must be encoded like the former."""
    tr = _dataset(plpy, r.train, "training")
    va = _dataset(plpy, r.valid, "validation") if r.valid else None
    if va is not None:
        for what in ("task", "classes", "feature_shape", "normalization"):
            if getattr(tr, what) != getattr(va, what):
                raise CerebroError(
                    f"validation dataset {r.valid!r} does not match the encoding of "
                    f"{r.train!r} ({what} differs)",
                    hint=f"load it with like_dataset => '{r.train}'",
                )
    return tr, va


def _check_search(r: Request, has_valid: bool) -> str:
    """Checks the procedure, epochs and objective; returns the objective's direction."""
    if r.search not in SEARCHES:
        raise CerebroError(
            f"search {r.search!r} is not known", hint=f"search is one of: {', '.join(SEARCHES)}"
        )
    if r.max_epochs is None or r.max_epochs < 1:
        raise CerebroError(f"max_epochs must be at least 1, got {r.max_epochs}")
    direction = search.objective_direction(r.objective)
    if r.objective.startswith("valid_") and not has_valid:
        raise CerebroError(
            f"objective {r.objective!r} needs a validation dataset",
            hint="give valid => 'dataset', or use a train_ objective",
        )
    return direction


# options every search takes (the procedures' own are checked by automl.check_options)
KEEP_CHECKPOINTS = "keep_checkpoints"
DESCRIPTION = "description"  # free text a person (or the web UI's form) gives a workload
COMMON_OPTIONS = (KEEP_CHECKPOINTS, DESCRIPTION)
MAX_DESCRIPTION = 2000  # characters


def description(value: Any) -> str:
    """The ``description`` option: shown beside the workload's name (``cerebro ui``)."""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise CerebroError(
            f"option description must be a text of at most {MAX_DESCRIPTION} characters",
            hint='options => \'{"description": "what this search is for"}\'',
        )
    return value


def keep_checkpoints(value: Any) -> int:
    """The ``keep_checkpoints`` option: checkpoints kept per config besides the latest and
    the best (the scheduler's housekeeping prunes the rest)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CerebroError(
            f"option keep_checkpoints must be a positive integer, got {value!r}",
            hint="keep_checkpoints => N keeps each config's newest N checkpoints, its latest "
            "and its best; leave it out to keep every checkpoint",
        )
    return value


def _options(r: Request, n_partitions: int, caps: dict[str, float]) -> dict[str, Any]:
    if not isinstance(r.options, dict):
        raise CerebroError("options must be a JSON object")
    own = {k: v for k, v in r.options.items() if k not in COMMON_OPTIONS}
    if r.search in ("grid", "random") and own:
        raise CerebroError(
            f"search {r.search!r} takes no options but {' and '.join(COMMON_OPTIONS)}",
            hint=f"got {sorted(own)}",
        )
    out = automl.check_options(r.search, own, r.max_epochs, n_partitions)
    if "parallelism" in out:
        if "parallelism" in r.options:
            limits.check_value(caps, "max_parallelism", out["parallelism"], "options.parallelism")
        else:  # the default, one per partition, stays within the cap
            out["parallelism"] = min(out["parallelism"], int(caps["max_parallelism"]))
    if KEEP_CHECKPOINTS in r.options:
        out[KEEP_CHECKPOINTS] = keep_checkpoints(r.options[KEEP_CHECKPOINTS])
    if DESCRIPTION in r.options:
        out[DESCRIPTION] = description(r.options[DESCRIPTION])
    return out


def _check_limits(r: Request, caps: dict[str, float]) -> None:
    """The sizes given as arguments (the grid's size is checked in :func:`_points`)."""
    limits.check_value(caps, "max_epochs", r.max_epochs, "max_epochs")
    if isinstance(r.priority, int):
        what = "priority" if r.priority >= 0 else f"priority {r.priority}: its absolute value"
        limits.check_value(caps, "max_priority", abs(r.priority), what)
    if r.search != "grid" and isinstance(r.num_configs, int):
        limits.check_value(caps, "max_configs", r.num_configs, "num_configs")


def _points(r: Request, space: search.Space, caps: dict[str, float]) -> list[dict[str, Any]]:
    """The configs to insert now (hyperopt suggests its own, step by step)."""
    if r.search == "grid":
        size = search.grid_size(space)
        limits.check_value(caps, "max_configs", size, "the grid over this space: num_configs")
        if r.num_configs is not None and r.num_configs != size:
            raise CerebroError(
                f"the grid over this space has {size} configs, not {r.num_configs}",
                hint="omit num_configs for grid search, or use search => 'random'",
            )
        return search.grid(space)
    if r.num_configs is None or r.num_configs < 1:
        raise CerebroError(f"{r.search} search needs num_configs => N (N >= 1)")
    return [] if r.search == "hyperopt" else search.sample(space, r.num_configs, r.seed)


def _check_configs(
    plpy: Any,
    r: Request,
    m: store.Model,
    tr: store.Dataset,
    space: search.Space,
    points: list[dict[str, Any]],
) -> None:
    """Weights paths (fixed, or choices of the space) and the sizes of every config; for
    hyperopt, whose configs come later, of about the largest the space can suggest."""
    base = {**search.defaults(m.param_schema), **r.params}
    prim, args = space.entries.get("weights", ("choice", []))
    given = [base.get("weights"), space.fixed.get("weights")]
    for path in [*given, *(args if prim == "choice" else [])]:
        limits.check_weights(plpy, {"weights": path})
    meta = models.dataset_meta(tr.row())
    if r.search == "hyperopt":
        name = limits.model_name(m.spec())
        largest = limits.largest_config(name, space.entries, {**base, **space.fixed}, meta)
        limits.check_sizes(
            limits.caps(plpy), name, largest, meta, f"the largest {m.name} config of this space"
        )
    else:
        limits.check_configs(plpy, m.spec(), [{**base, **p} for p in points], meta)


def create(plpy: Any, r: Request) -> int:
    """Validate ``r`` completely, then write the workload, its configs and the event."""
    _check_name(plpy, r.name)
    m = _model(plpy, r.model)
    tr, va = _datasets(plpy, r)
    direction = _check_search(r, va is not None)
    if not isinstance(r.space, dict) or not isinstance(r.params, dict):
        raise CerebroError("space and params must be JSON objects")
    caps = limits.caps(plpy)
    _check_limits(r, caps)
    space = search.parse_space(r.space, m.param_schema, r.params)
    options = _options(r, tr.num_partitions, caps)
    points = _points(r, space, caps)
    _check_configs(plpy, r, m, tr, space, points)
    num_configs = r.num_configs if r.search == "hyperopt" else len(points)
    wid = store.create_workload(
        plpy,
        store.NewWorkload(
            name=r.name,
            model_id=m.model_id,
            train_dataset=tr.dataset_id,
            valid_dataset=va.dataset_id if va else None,
            search=r.search,
            space=r.space,
            objective=r.objective,
            objective_direction=direction,
            max_epochs=r.max_epochs,
            priority=r.priority,
            seed=r.seed,
            num_configs=num_configs,
            fixed_params=r.params,
            options=options,
            parent_workload=r.parent_workload,
        ),
    )
    store.record_event(
        plpy,
        "launch",
        workload_id=wid,
        detail={
            "model": r.model,
            "train": r.train,
            "valid": r.valid,
            "search": r.search,
            "num_configs": num_configs,
            "max_epochs": r.max_epochs,
            "objective": r.objective,
            "options": options,
        },
    )
    base = search.defaults(m.param_schema)
    for i, p in enumerate(points):
        # the steering trigger records the 'add' event (actor automl:<search>)
        store.insert_config(plpy, wid, {**base, **r.params, **p}, r.seed * 1000 + i)
    if r.search == "hyperopt":
        automl.step(plpy, wid)  # the first `parallelism` suggestions
    store.notify_scheduler(plpy, "launch")
    return wid
