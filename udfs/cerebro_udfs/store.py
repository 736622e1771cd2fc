"""The store: the one place where coordinator-side Python reads and writes cerebro's catalog.

Every verb (``launch``, ``steering``, ``automl``, ``registry``, ...) talks to the tables
through the typed loaders and the few shared writes below, never with SQL of its own. That
keeps the catalog's shape in one module, makes the writes everybody shares identical
(every ``insert into cerebro.configs`` and every event row is written here), and gives the
privilege checks of multi-tenancy one place to live.

Functions take ``plpy`` explicitly (the caller's PL/Python module), bind every value as a
parameter and never splice user input into SQL. Plans are prepared on each call: PL/Python
caches nothing for us across statements, and these run once per user action, not per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------------------ helpers


def _rows(
    plpy: Any, query: str, types: list[str] | None = None, args: list[Any] | None = None
) -> list[dict[str, Any]]:
    if types is None:
        return [dict(r) for r in plpy.execute(query)]
    return [dict(r) for r in plpy.execute(plpy.prepare(query, types), args)]


def _row(plpy: Any, query: str, types: list[str], args: list[Any]) -> dict[str, Any] | None:
    rows = _rows(plpy, query, types, args)
    return rows[0] if rows else None


def _json(value: Any, default: Any = None) -> Any:
    """A jsonb value as Python (PL/Python hands jsonb over as its text)."""
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


# ------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class Model:
    """A row of ``cerebro.models``: a roster model or a registered custom script."""

    model_id: int
    name: str
    kind: str
    entry_point: str
    source: str | None
    param_schema: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        """What the training aggregates take as their ``model`` argument."""
        return {
            "name": self.name,
            "kind": self.kind,
            "entry_point": self.entry_point,
            "source": self.source,
        }


_MODEL = "select model_id, name, kind, entry_point, source, param_schema from cerebro.models "


def _model(row: dict[str, Any] | None) -> Model | None:
    if row is None:
        return None
    return Model(
        row["model_id"],
        row["name"],
        row["kind"],
        row["entry_point"],
        row["source"],
        _json(row["param_schema"], {}),
    )


def find_model(plpy: Any, name: str) -> Model | None:
    return _model(_row(plpy, _MODEL + "where name = $1", ["text"], [name]))


def model_by_id(plpy: Any, model_id: int) -> Model | None:
    return _model(_row(plpy, _MODEL + "where model_id = $1", ["int"], [model_id]))


def model_names(plpy: Any) -> list[str]:
    return [r["name"] for r in _rows(plpy, "select name from cerebro.models order by 1")]


def insert_model(
    plpy: Any,
    name: str,
    source: str,
    entry_point: str,
    param_schema: dict[str, Any],
    description: str | None,
) -> int:
    """Register a custom model (its script was built once before this is called)."""
    row = _row(
        plpy,
        "insert into cerebro.models (name, kind, source, entry_point, param_schema, "
        "description) values ($1, 'custom', $2, $3, $4, $5) returning model_id",
        ["text", "text", "text", "jsonb", "text"],
        [name, source, entry_point, json.dumps(param_schema), description],
    )
    assert row is not None
    return int(row["model_id"])


def set_roster_schema(plpy: Any, name: str, param_schema: dict[str, Any]) -> None:
    plpy.execute(
        plpy.prepare(
            "update cerebro.models set param_schema = $2 where name = $1 and kind = 'roster'",
            ["text", "jsonb"],
        ),
        [name, json.dumps(param_schema)],
    )


# ------------------------------------------------------------------------------ datasets


@dataclass(frozen=True)
class Dataset:
    """A row of ``cerebro.datasets`` (jsonb decoded) plus ``version``, its creation time as
    text: the partition cache key changes when a dataset of the same name is loaded again."""

    dataset_id: int
    name: str
    task: str
    classes: list[Any] | None
    feature_shape: list[int]
    num_partitions: int
    features: list[str]
    label: str
    normalization: dict[str, Any]
    encoding: dict[str, Any] | None
    version: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def row(self) -> dict[str, Any]:
        """The row as a dict, as ``models.training_config``/``dataset_meta`` take it."""
        out = dict(self.extra)
        out.update(
            {
                k: getattr(self, k)
                for k in (
                    "dataset_id",
                    "name",
                    "task",
                    "classes",
                    "feature_shape",
                    "num_partitions",
                    "features",
                    "label",
                    "normalization",
                    "encoding",
                    "version",
                )
            }
        )
        return out


_DATASET_JSON = ("classes", "features", "normalization", "encoding", "statistics")
# Most verbs need a dataset's description, not its vocabulary (up to ~30k tokens) and
# statistics: those are read only with ``full`` (featurizing raw rows, like_dataset).
_DATASET = (
    "select dataset_id, name, source, features, label, task, classes, feature_shape, "
    "normalization, encoding, num_rows, num_partitions, buffer_rows, rows_per_partition, seed, "
    "like_dataset, owner, created_at, extract(epoch from created_at)::text as version "
    "from cerebro.datasets "
)
_DATASET_FULL = "select *, extract(epoch from created_at)::text as version from cerebro.datasets "


def _dataset(row: dict[str, Any] | None) -> Dataset | None:
    if row is None:
        return None
    for k in _DATASET_JSON:
        if k in row:
            row[k] = _json(row[k])
    row["feature_shape"] = list(row["feature_shape"])
    named = {
        k: row.pop(k)
        for k in (
            "dataset_id",
            "name",
            "task",
            "classes",
            "feature_shape",
            "num_partitions",
            "features",
            "label",
            "normalization",
            "encoding",
            "version",
        )
    }
    return Dataset(**named, extra=row)


def find_dataset(plpy: Any, name: str, full: bool = False) -> Dataset | None:
    """The dataset ``name`` if the session user may use it (its owner, an admin or the
    scheduler): verbs that run as the extension owner see every row, so they filter here."""
    query = (
        _DATASET_FULL if full else _DATASET
    ) + "where name = $1 and cerebro._sees_dataset(owner)"
    return _dataset(_row(plpy, query, ["text"], [name]))


def dataset_by_id(plpy: Any, dataset_id: int, full: bool = False) -> Dataset | None:
    query = (_DATASET_FULL if full else _DATASET) + "where dataset_id = $1"
    return _dataset(_row(plpy, query, ["int"], [dataset_id]))


# ------------------------------------------------------------------------------ workloads


@dataclass
class Workload:
    """A row of ``cerebro.workloads`` (jsonb decoded) with its model's name and schema."""

    workload_id: int
    name: str
    model_id: int
    model: str
    param_schema: dict[str, Any]
    train_dataset: int
    valid_dataset: int | None
    search: str
    space: dict[str, Any]
    options: dict[str, Any]
    fixed_params: dict[str, Any]
    objective: str
    objective_direction: str
    num_configs: int | None
    max_epochs: int
    priority: int
    status: str
    seed: int

    @property
    def sign(self) -> float:
        """Multiplies the objective into a loss (smaller is better)."""
        return 1.0 if self.objective_direction == "min" else -1.0


_WORKLOAD_FIELDS = (
    "workload_id",
    "name",
    "model_id",
    "train_dataset",
    "valid_dataset",
    "search",
    "space",
    "options",
    "fixed_params",
    "objective",
    "objective_direction",
    "num_configs",
    "max_epochs",
    "priority",
    "status",
    "seed",
)


def find_workload(plpy: Any, workload_id: int, lock: bool = False) -> Workload | None:
    """The workload; with ``lock``, row-locked (FOR NO KEY UPDATE) so that AutoML steps on
    it serialize and never duplicate a suggestion."""
    row = _row(
        plpy,
        "select w.*, m.name as model, m.param_schema from cerebro.workloads w "
        "join cerebro.models m using (model_id) where w.workload_id = $1"
        + (" for no key update of w" if lock else ""),
        ["int"],
        [workload_id],
    )
    if row is None:
        return None
    values = {k: row[k] for k in _WORKLOAD_FIELDS}
    for k in ("space", "options", "fixed_params"):
        values[k] = _json(values[k], {})
    return Workload(model=row["model"], param_schema=_json(row["param_schema"], {}), **values)


def workload_exists(plpy: Any, name: str) -> bool:
    return (
        _row(plpy, "select 1 from cerebro.workloads where name = $1", ["text"], [name]) is not None
    )


def count_child_workloads(plpy: Any, workload_id: int) -> int:
    row = _row(
        plpy,
        "select count(*) as n from cerebro.workloads where parent_workload = $1",
        ["int"],
        [workload_id],
    )
    return int(row["n"]) if row else 0


@dataclass
class NewWorkload:
    """The columns ``cerebro.launch`` fills in a new workload."""

    name: str
    model_id: int
    train_dataset: int
    valid_dataset: int | None
    search: str
    space: dict[str, Any]
    objective: str
    objective_direction: str
    max_epochs: int
    priority: int
    seed: int
    num_configs: int | None
    fixed_params: dict[str, Any]
    options: dict[str, Any]
    parent_workload: int | None = None


def create_workload(plpy: Any, w: NewWorkload) -> int:
    row = _row(
        plpy,
        "insert into cerebro.workloads (name, model_id, train_dataset, valid_dataset, "
        "search, space, objective, objective_direction, max_epochs, priority, seed, "
        "num_configs, fixed_params, options, parent_workload) values ($1, $2, $3, $4, "
        "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) returning workload_id",
        [
            "text",
            "int",
            "int",
            "int",
            "text",
            "jsonb",
            "text",
            "text",
            "int",
            "int",
            "bigint",
            "int",
            "jsonb",
            "jsonb",
            "int",
        ],
        [
            w.name,
            w.model_id,
            w.train_dataset,
            w.valid_dataset,
            w.search,
            json.dumps(w.space),
            w.objective,
            w.objective_direction,
            w.max_epochs,
            w.priority,
            w.seed,
            w.num_configs,
            json.dumps(w.fixed_params),
            json.dumps(w.options),
            w.parent_workload,
        ],
    )
    assert row is not None
    return int(row["workload_id"])


def set_parent_workload(plpy: Any, workload_id: int, parent: int) -> None:
    plpy.execute(
        plpy.prepare(
            "update cerebro.workloads set parent_workload = $1 where workload_id = $2",
            ["int", "int"],
        ),
        [parent, workload_id],
    )


# ------------------------------------------------------------------------------ configs


@dataclass
class Config:
    """A row of ``cerebro.configs`` (params decoded)."""

    config_id: int
    workload_id: int
    params: dict[str, Any]
    status: str
    epoch: int
    seed: int
    priority: int
    max_epochs: int | None
    source: str
    parent_config: int | None


_CONFIG_FIELDS = (
    "config_id",
    "workload_id",
    "params",
    "status",
    "epoch",
    "seed",
    "priority",
    "max_epochs",
    "source",
    "parent_config",
)


def find_config(plpy: Any, config_id: int) -> Config | None:
    row = _row(plpy, "select * from cerebro.configs where config_id = $1", ["int"], [config_id])
    if row is None:
        return None
    values = {k: row[k] for k in _CONFIG_FIELDS}
    values["params"] = _json(values["params"], {})
    return Config(**values)


def insert_config(
    plpy: Any,
    workload_id: int,
    params: dict[str, Any],
    seed: int,
    source: str = "automl",
    parent_config: int | None = None,
    epoch: int = 0,
    clone_epoch: int | None = None,
    priority: int = 0,
    max_epochs: int | None = None,
) -> int:
    """Add a config. The steering trigger completes and checks its params and records the
    ``add``/``clone`` event with the acting role, so this is the same path as a user's
    ``INSERT``."""
    row = _row(
        plpy,
        "insert into cerebro.configs (workload_id, params, seed, parent_config, "
        "source, epoch, clone_epoch, priority, max_epochs) values ($1, $2, $3, $4, $5, "
        "$6, $7, $8, $9) returning config_id",
        ["int", "jsonb", "bigint", "int", "text", "int", "int", "int", "int"],
        [
            workload_id,
            json.dumps(params),
            seed,
            parent_config,
            source,
            epoch,
            clone_epoch,
            priority,
            max_epochs,
        ],
    )
    assert row is not None
    return int(row["config_id"])


def set_status(plpy: Any, config_id: int, status: str) -> None:
    """The same UPDATE a person types; the state-machine trigger checks it and audits it."""
    plpy.execute(
        plpy.prepare(
            "update cerebro.configs set status = $2 where config_id = $1", ["int", "text"]
        ),
        [config_id, status],
    )


def workload_of_config(plpy: Any, config_id: int) -> int | None:
    row = _row(
        plpy, "select workload_id from cerebro.configs where config_id = $1", ["int"], [config_id]
    )
    return None if row is None else int(row["workload_id"])


def config_summaries(plpy: Any, workload_id: int) -> list[dict[str, Any]]:
    """Every config of a workload with its best objective and who last steered it (what the
    AutoML procedures decide from): params, status, epoch, source, max_epochs, best,
    last_actor."""
    rows = _rows(
        plpy,
        "select c.config_id, c.params, c.status, c.epoch, c.source, c.created_at, "
        "coalesce(c.max_epochs, w.max_epochs) as max_epochs, "
        "(select l.best_objective from cerebro.leaderboard l "
        "  where l.config_id = c.config_id) as best, "
        "(select e.actor from cerebro.events e where e.config_id = c.config_id and "
        "  e.action in ('stop', 'resume', 'add', 'clone') order by e.event_id desc limit 1) "
        "  as last_actor "
        "from cerebro.configs c join cerebro.workloads w using (workload_id) "
        "where c.workload_id = $1 order by c.config_id",
        ["int"],
        [workload_id],
    )
    for r in rows:
        r["params"] = _json(r["params"], {})
    return rows


def best_config(plpy: Any, workload_id: int) -> int | None:
    """The leaderboard's top config with a measured objective."""
    row = _row(
        plpy,
        "select config_id from cerebro.leaderboard where workload_id = $1 and "
        "best_objective is not null order by rank, config_id limit 1",
        ["int"],
        [workload_id],
    )
    return None if row is None else int(row["config_id"])


# ------------------------------------------------------------------------------ metrics


def objectives_at(plpy: Any, workload_id: int, objective: str, epoch: int) -> dict[int, float]:
    """Each config's objective in its metrics row of ``epoch`` (as measured, not signed)."""
    rows = _rows(
        plpy,
        "select m.config_id, cerebro.objective_value(m, $2) as v from cerebro.metrics"
        " m join cerebro.configs c using (config_id) where c.workload_id = $1 and "
        "m.epoch = $3",
        ["int", "text", "int"],
        [workload_id, objective, epoch],
    )
    return {r["config_id"]: r["v"] for r in rows if r["v"] is not None}


def latest_objective(plpy: Any, config_id: int, objective: str) -> float | None:
    """The objective of a config's latest metrics row."""
    row = _row(
        plpy,
        "select cerebro.objective_value(m, $2) as v from cerebro.metrics m where "
        "m.config_id = $1 order by m.epoch desc limit 1",
        ["int", "text"],
        [config_id, objective],
    )
    return None if row is None else row["v"]


# ------------------------------------------------------------------------------ checkpoints


def latest_checkpoint(plpy: Any, config_id: int, lock: bool = False) -> tuple[int, bytes] | None:
    """(epoch, state) of a config's latest checkpoint; with ``lock``, row-locked (FOR SHARE)
    until the transaction ends, so that housekeeping, which skips locked rows, does not prune
    it (and drop its chunks) while a clone copies it."""
    row = _row(
        plpy,
        "select epoch, state from cerebro.checkpoints where config_id = $1 "
        "order by epoch desc limit 1" + (" for share" if lock else ""),
        ["int"],
        [config_id],
    )
    return None if row is None else (int(row["epoch"]), row["state"])


def pruned_checkpoint(plpy: Any, config_id: int, epoch: int) -> int | None:
    """The keep_checkpoints a config's checkpoint of ``epoch`` was pruned under, or None if it
    was not pruned."""
    row = _row(
        plpy,
        "select keep from cerebro.pruned_checkpoints where config_id = $1 and epoch = $2",
        ["int", "int"],
        [config_id, epoch],
    )
    return None if row is None else int(row["keep"])


def copy_checkpoint(plpy: Any, to_config: int, from_config: int, epoch: int) -> None:
    """A clone starts from its parent's checkpoint (a chunked state's reference is shared:
    blobs are immutable)."""
    plpy.execute(
        plpy.prepare(
            "insert into cerebro.checkpoints (config_id, epoch, state) "
            "select $1, epoch, state from cerebro.checkpoints where config_id = $2 and "
            "epoch = $3",
            ["int", "int", "int"],
        ),
        [to_config, from_config, epoch],
    )


# ------------------------------------------------------------------------------ events


def record_event(
    plpy: Any,
    action: str,
    workload_id: int | None = None,
    config_id: int | None = None,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """Append to the audit trail; the actor is the session's (``cerebro.actor()``) unless
    a procedure names itself."""
    plpy.execute(
        plpy.prepare(
            "insert into cerebro.events (actor, workload_id, config_id, action, detail) values "
            "(coalesce($1, cerebro.actor()), $2, $3, $4, $5)",
            ["text", "int", "int", "text", "jsonb"],
        ),
        [actor, workload_id, config_id, action, _dump(detail)],
    )


def event_config_ids(plpy: Any, workload_id: int, action: str) -> set[int]:
    """Configs of a workload that have an event ``action``."""
    return {
        r["config_id"]
        for r in _rows(
            plpy,
            "select config_id from cerebro.events where workload_id = $1 and action = $2",
            ["int", "text"],
            [workload_id, action],
        )
    }


def last_stop_or_resume(plpy: Any, config_id: int) -> dict[str, Any] | None:
    """The latest stop/resume event of a config: {actor, action}."""
    return _row(
        plpy,
        "select actor, action from cerebro.events where config_id = $1 and action in "
        "('stop', 'resume') order by event_id desc limit 1",
        ["int"],
        [config_id],
    )


# ------------------------------------------------------------------------------ session


def session_is_daemon(plpy: Any) -> bool:
    """Whether this is the scheduler daemon's session (cerebro_scheduler, not a superuser):
    what it inserts (TPE suggestions, PBT clones) was checked when a person launched it."""
    row = _row(
        plpy,
        "select pg_catalog.pg_has_role(session_user, 'cerebro_scheduler', 'member') and not "
        "r.rolsuper as ok from pg_catalog.pg_roles r where r.rolname = session_user",
        [],
        [],
    )
    return bool(row and row["ok"])


def may_see_config(plpy: Any, config_id: int, steer: bool = False) -> bool:
    """Whether the session user may see (or, with ``steer``, steer) the config: its
    workload's owner, a role it is shared with, an admin or the scheduler."""
    row = _row(
        plpy, "select cerebro._sees_config($1, $2) as ok", ["int", "bool"], [config_id, steer]
    )
    return bool(row and row["ok"])


def may_see_workload(plpy: Any, workload_id: int, steer: bool = False) -> bool:
    """Whether the session user may see (or steer) the workload; see ``may_see_config``."""
    row = _row(
        plpy, "select cerebro._sees_workload($1, $2) as ok", ["int", "bool"], [workload_id, steer]
    )
    return bool(row and row["ok"])


def set_actor(plpy: Any, actor: str) -> str:
    """Act as ``actor`` until the end of the transaction (steering triggers read it);
    returns the previous value so that the caller can restore it."""
    prev = plpy.execute("select current_setting('cerebro.actor', true) as a")[0]["a"] or ""
    plpy.execute(plpy.prepare("select set_config('cerebro.actor', $1, true)", ["text"]), [actor])
    return str(prev)


def notify_scheduler(plpy: Any, what: str) -> None:
    """Wake the scheduler (LISTEN cerebro) when the transaction commits."""
    plpy.execute(plpy.prepare("select pg_notify('cerebro', $1)", ["text"]), [what])


# ---- datasets, packing and inference (added for packing/inference)


def dataset_exists(plpy: Any, name: str) -> bool:
    """Whether a dataset of that name exists (without reading its vocabulary)."""
    return (
        _row(plpy, "select 1 from cerebro.datasets where name = $1", ["text"], [name]) is not None
    )


@dataclass
class NewDataset:
    """The columns ``cerebro.load_dataset`` fills in a new dataset (its buffers are written
    by the packing itself, in the same transaction)."""

    name: str
    source: str
    features: list[str]
    label: str
    task: str
    classes: list[Any] | None
    feature_shape: list[int]
    normalization: dict[str, Any]
    statistics: dict[str, Any]
    num_rows: int
    num_partitions: int
    buffer_rows: int
    rows_per_partition: list[int]
    seed: int
    like_dataset: int | None
    encoding: dict[str, Any]
    vocabulary: list[str] | None
    dist_keys: list[int] | None = None  # Greenplum/Cloudberry: partition -> segment key


def insert_dataset(plpy: Any, d: NewDataset) -> int:
    """Register a packed dataset; returns its id."""
    row = _row(
        plpy,
        "insert into cerebro.datasets (name, source, features, label, task, classes, "
        "feature_shape, normalization, statistics, num_rows, num_partitions, "
        "buffer_rows, rows_per_partition, seed, like_dataset, encoding, vocabulary, "
        "dist_keys) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
        "$15, $16, $17, $18) returning dataset_id",
        [
            "text",
            "text",
            "jsonb",
            "text",
            "text",
            "jsonb",
            "int[]",
            "jsonb",
            "jsonb",
            "bigint",
            "int",
            "int",
            "bigint[]",
            "bigint",
            "int",
            "jsonb",
            "text[]",
            "int[]",
        ],
        [
            d.name,
            d.source,
            json.dumps(list(d.features)),
            d.label,
            d.task,
            _dump(d.classes),
            d.feature_shape,
            json.dumps(d.normalization),
            json.dumps(d.statistics),
            d.num_rows,
            d.num_partitions,
            d.buffer_rows,
            d.rows_per_partition,
            d.seed,
            d.like_dataset,
            json.dumps(d.encoding),
            d.vocabulary,
            d.dist_keys,
        ],
    )
    assert row is not None
    return int(row["dataset_id"])


def delete_dataset(plpy: Any, name: str) -> bool:
    """Delete a dataset (its buffers go with it); False if there was none of that name."""
    return (
        _row(
            plpy,
            "delete from cerebro.datasets where name = $1 returning dataset_id",
            ["text"],
            [name],
        )
        is not None
    )


def checkpoint_of_epoch(plpy: Any, config_id: int, epoch: int) -> tuple[int, bytes] | None:
    """(epoch, state) of a config's checkpoint of that epoch."""
    row = _row(
        plpy,
        "select epoch, state from cerebro.checkpoints where config_id = $1 and epoch = $2",
        ["int", "int"],
        [config_id, epoch],
    )
    return None if row is None else (int(row["epoch"]), row["state"])


def checkpoint_epochs(plpy: Any, config_id: int) -> list[int]:
    """The epochs a config has checkpoints of, in order."""
    return [
        int(r["epoch"])
        for r in _rows(
            plpy,
            "select epoch from cerebro.checkpoints where config_id = $1 order by epoch",
            ["int"],
            [config_id],
        )
    ]


# ------------------------------------------------------------------------------ uploads


def own_upload(plpy: Any, path: str) -> bool:
    """Whether ``path`` is a weights file the session user uploaded."""
    return (
        _row(
            plpy,
            "select 1 from cerebro.weights where path = $1 and owner = session_user",
            ["text"],
            [path],
        )
        is not None
    )


def save_upload(plpy: Any, name: str, path: str, sha256: str, size: int) -> str | None:
    """Record the session user's upload ``name`` (replacing an earlier one); returns the path
    the name had before, if any, so that its file can go unless another upload shares it."""
    old = _row(
        plpy,
        "select path from cerebro.weights where owner = session_user and name = $1",
        ["text"],
        [name],
    )
    _rows(
        plpy,
        "insert into cerebro.weights (name, owner, path, sha256, bytes) "
        "values ($1, session_user, $2, $3, $4) on conflict (owner, name) do update "
        "set path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes, "
        "created_at = now() returning 1",
        ["text", "text", "text", "int8"],
        [name, path, sha256, size],
    )
    return str(old["path"]) if old and old["path"] != path else None


def delete_upload(plpy: Any, name: str) -> str | None:
    """Forget the session user's upload ``name``; its path, or None if there was none."""
    row = _row(
        plpy,
        "delete from cerebro.weights where owner = session_user and name = $1 returning path",
        ["text"],
        [name],
    )
    return str(row["path"]) if row else None


def upload_in_use(plpy: Any, path: str) -> bool:
    return (
        _row(plpy, "select 1 from cerebro.weights where path = $1", ["text"], [path]) is not None
    )


# ---- placing partitions on nodes (issue 14)


def node_names(plpy: Any) -> set[str]:
    """The servers a partition may be placed on: 'local' (this one) and every node."""
    return {r["name"] for r in _rows(plpy, "select name from cerebro.node_health")}


def placement_of(plpy: Any, name: str) -> list[str] | None:
    """The server of each partition of a dataset ('local' for this one), or None when all
    of its partitions are here (read through the view, which shows only what you may see)."""
    rows = _rows(
        plpy,
        "select partition, node from cerebro.dataset_partitions where dataset = $1 "
        "order by partition",
        ["text"],
        [name],
    )
    nodes = [r["node"] for r in rows]
    return nodes if any(n != "local" for n in nodes) else None


def place_partitions(plpy: Any, dataset_id: int, nodes: list[str]) -> None:
    """Record that partition j of the new dataset belongs on ``nodes[j]``."""
    plpy.execute(
        plpy.prepare("select cerebro._place_partitions($1, $2)", ["int", "text[]"]),
        [dataset_id, nodes],
    )


# ---- sub-epoch states kept as files (issue 15, state_files.py)


def state_file_refs(plpy: Any) -> list[bytes]:
    """Every state-file reference a ``cerebro.states`` row holds (a fresh snapshot)."""
    rows = _rows(
        plpy,
        "select state from cerebro.states where cerebro._state_file(state) is not null",
    )
    return [bytes(r["state"]) for r in rows]


def state_file_referenced(plpy: Any, file_id: bytes) -> bool:
    """Whether some ``cerebro.states`` row still names the file ``file_id``."""
    row = _row(
        plpy,
        "select 1 as x from cerebro.states where cerebro._state_file(state) = $1",
        ["bytea"],
        [file_id],
    )
    return row is not None


def oldest_open_transaction(plpy: Any) -> float:
    """Epoch seconds no later than now() and the start of every open transaction: a state
    file written after it may belong to a transaction that has not committed yet."""
    rows = _rows(
        plpy,
        "select extract(epoch from least(now(), min(xact_start)))::float8 as t "
        "from pg_catalog.pg_stat_activity",
    )
    return float(rows[0]["t"])


def database_oids(plpy: Any) -> tuple[int, list[int]]:
    """This database's oid (its state files' directory) and every database's."""
    rows = _rows(
        plpy,
        "select (select oid from pg_catalog.pg_database where datname = current_database())"
        "::int8 as db, array_agg(oid::int8) as dbs from pg_catalog.pg_database",
    )
    return int(rows[0]["db"]), [int(d) for d in rows[0]["dbs"]]


def insert_state_chunks(plpy: Any, rows: Any) -> None:
    """Write a chunked state's rows (blob, seq, data), in order."""
    plan = plpy.prepare(
        "insert into cerebro.state_chunks (blob, seq, data) values ($1, $2, $3)",
        ["bytea", "int", "bytea"],
    )
    for blob, seq, data in rows:
        plpy.execute(plan, [blob, seq, data])
