"""Sub-epochs and evaluations run by hand from psql (``cerebro.run_subepoch``,
``cerebro.run_evaluation``) and the config the aggregates take (``cerebro.subepoch_config``).

The scheduler does not come through here: it issues the aggregate statements itself. These
are the coordinator-side wrappers a person uses to try a model on one partition: they read the
catalog, then call the segment-safe aggregates with everything as arguments.
"""

from __future__ import annotations

import json
from typing import Any

from . import chunks, models, registry, store
from .errors import CerebroError

MAX_VALUE_BYTES = (1 << 30) - (1 << 20)  # PostgreSQL's 1 GB limit, less room for headers

_AGG_SQL = (
    "select (r).* from (select cerebro.{agg}($1, $2, $3) "
    "within group (order by buffer_id, x, y, num_rows) as r "
    "from cerebro.buffers where dataset_id = $4 {where}) s"
)


def _dataset(plpy: Any, dataset: str, partition: int | None) -> store.Dataset:
    ds = store.find_dataset(plpy, dataset)
    if ds is None:
        raise CerebroError(f"dataset {dataset!r} does not exist")
    if partition is not None and not 0 <= partition < ds.num_partitions:
        raise CerebroError(
            f"dataset {dataset!r} has partitions 0..{ds.num_partitions - 1}, not {partition}"
        )
    return ds


def config_for(
    plpy: Any,
    model: str,
    dataset: str,
    params_json: str | None,
    seed: int,
    partition: int | None,
    epoch: int,
    config_id: int | None,
) -> tuple[store.Model, dict[str, Any]]:
    """The model and the aggregates' config: params checked against the model, dataset
    metadata, and the partition's cache key."""
    m = registry.load(plpy, model)
    params = json.loads(params_json) if params_json else {}
    registry.check_params(m, params)
    ds = _dataset(plpy, dataset, partition)
    return m, models.training_config(ds.row(), params, seed, partition, epoch, config_id)


def subepoch_config(
    plpy: Any,
    model: str,
    dataset: str,
    params_json: str | None,
    seed: int,
    partition: int | None,
    epoch: int,
    config_id: int | None,
) -> str:
    """``cerebro.subepoch_config`` as JSON text."""
    _, cfg = config_for(plpy, model, dataset, params_json, seed, partition, epoch, config_id)
    return json.dumps(cfg)


def run_unit(
    plpy: Any,
    GD: dict,
    kind: str,
    model: str,
    dataset: str,
    partition: int | None,
    params_json: str | None,
    blob: bytes | None,
    seed: int,
    epoch: int,
) -> dict[str, Any]:
    """Run the train or eval aggregate on one partition (or, for eval, the whole dataset)."""
    if kind == "train" and partition is None:
        raise CerebroError("a sub-epoch trains on one partition: give partition => N")
    m, cfg = config_for(plpy, model, dataset, params_json, seed, partition, epoch, None)
    agg = "train_subepoch" if kind == "train" else "evaluate_partition"
    # the partition's key: its number, or on Greenplum/Cloudberry the dataset's segment key
    where = (
        "and __dist_key__ = coalesce((select d.dist_keys[$5 + 1] from cerebro.datasets d "
        "where d.dataset_id = $4), $5)"
        if partition is not None
        else ""
    )
    types = ["bytea", "jsonb", "jsonb", "int"] + (["int"] if partition is not None else [])
    args = [blob, json.dumps(m.spec()), json.dumps(cfg), cfg["dataset_id"]]
    if partition is not None:
        args.append(partition)
    rows = plpy.execute(plpy.prepare(_AGG_SQL.format(agg=agg, where=where), types), args)
    out = dict(rows[0])
    if kind == "train" and chunks.is_ref(out["state"]):
        out["state"] = _join_chunks(GD, out["state"])
    return out


def _join_chunks(GD: dict, ref: bytes) -> bytes:
    """A state larger than the aggregate may return inline: join it if one value holds it."""
    data = b"".join(c[2] for c in chunks.unstash(GD, ref))
    if len(data) > MAX_VALUE_BYTES:
        raise CerebroError(
            f"the new state has {len(data)} bytes, more than one PostgreSQL value holds (1 GB)",
            hint="train it with cerebro.launch: the scheduler stores large states in chunks",
        )
    return data
