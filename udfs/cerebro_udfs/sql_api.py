"""The SQL facade: the only module that PL/Python function bodies import.

Every body in ``sql/idempotent/*.sql`` is one import from here and one call, with ``plpy``
(and ``GD`` where the function caches) passed in explicitly, so the logic below it is plain,
testable Python. This is also the one place where Python errors become SQL errors: each entry
point is wrapped in :func:`errors.sql_errors`, which turns a :class:`CerebroError` into one
clean ``ERROR:  cerebro: <message>`` with its hint and SQLSTATE.

The layers are visible in the imports: this facade -> the verbs (``packing``, ``training``,
``subepoch``, ``registry``, ``launch``, ``drill``, ``steering``, ``automl``, ``inference``,
``petastorm_import``) -> the store and the pure helpers. The verbs never call each other
through these SQL-facing signatures. Modules that pull in heavy dependencies (hyperopt,
sqlglot in packing, pyarrow, the inference path) are imported on first use, so a training
backend never loads them, and a session's first ``launch`` does not wait for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import cache, chunks, registry, state, state_files, store, subepoch, training
from .errors import sql_errors

# -- datasets ---------------------------------------------------------------------------------


@sql_errors
def load_dataset(plpy: Any, *args: Any) -> int:
    """``cerebro.load_dataset``: the arguments in the SQL function's order."""
    from . import packing  # on use: its SQL-expression parser (sqlglot) costs 0.1 s to import

    return packing.load_dataset(plpy, *args)


@sql_errors
def drop_dataset(plpy: Any, name: str) -> bool:
    from . import packing

    return packing.drop_dataset(plpy, name)


@sql_errors
def import_petastorm(
    plpy: Any,
    name: str,
    url: str,
    table_name: str | None,
    batch_rows: int | None,
    images: str,
    if_exists: str,
) -> int:
    from . import petastorm_import

    return petastorm_import.import_petastorm(
        plpy, name, url, table_name, batch_rows, images, if_exists
    )


# -- models -----------------------------------------------------------------------------------


@sql_errors
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
    return registry.register_model(
        plpy, name, source, entry_point, param_schema_json, description, dataset, build_timeout
    )


@sql_errors
def sync_roster(plpy: Any) -> int:
    return registry.sync_roster(plpy)


@sql_errors
def model_spec(plpy: Any, model: str) -> str:
    return registry.model_spec(plpy, model)


# -- the training step (segment-safe aggregates) ---------------------------------------------


@sql_errors
def collect(
    plpy: Any, GD: dict, token: int | None, buffer_id: int, x: bytes, y: bytes, num_rows: int
) -> int:
    """State function of the aggregates: one buffer row into this backend's GD."""
    return training.collect(GD, token, buffer_id, x, y, num_rows)


@sql_errors
def train_final(
    plpy: Any, GD: dict, token: int | None, blob: bytes | None, spec: Any, cfg: Any
) -> dict[str, Any]:
    return training.train_final(plpy, GD, token, blob, spec, cfg)


@sql_errors
def eval_final(
    plpy: Any, GD: dict, token: int | None, blob: bytes | None, spec: Any, cfg: Any
) -> dict[str, Any]:
    return training.eval_final(plpy, GD, token, blob, spec, cfg)


@sql_errors
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
    return subepoch.subepoch_config(
        plpy, model, dataset, params_json, seed, partition, epoch, config_id
    )


@sql_errors
def run_subepoch(
    plpy: Any,
    GD: dict,
    model: str,
    dataset: str,
    partition: int | None,
    params_json: str | None,
    blob: bytes | None,
    seed: int,
    epoch: int,
) -> dict[str, Any]:
    return subepoch.run_unit(
        plpy, GD, "train", model, dataset, partition, params_json, blob, seed, epoch
    )


@sql_errors
def run_evaluation(
    plpy: Any,
    GD: dict,
    model: str,
    dataset: str,
    partition: int | None,
    params_json: str | None,
    blob: bytes | None,
) -> dict[str, Any]:
    return subepoch.run_unit(plpy, GD, "eval", model, dataset, partition, params_json, blob, 0, 0)


# -- model states -------------------------------------------------------------------------------


@sql_errors
def state_info(plpy: Any, blob: bytes) -> str:
    """The header of a state, or of a chunked state's reference, as JSON text."""
    if chunks.is_ref(blob):
        blob_id, info = chunks.parse_ref(blob)
        return json.dumps({"chunked": True, "blob": blob_id.hex(), **info})
    if state_files.is_ref(blob):
        file_id, info = state_files.parse_ref(blob)
        return json.dumps({"file": file_id.hex(), **info})
    h = state.read_header(blob)
    h.pop("_payload_start", None)
    h["bytes"] = len(blob)
    return json.dumps(h)


# -- sub-epoch states kept as files (issue 15; 032-state-files.sql) ----------------------------


@sql_errors
def state_present(plpy: Any, blob: bytes) -> bool:
    return not state_files.is_ref(blob) or state_files.present(blob)


@sql_errors
def state_value(plpy: Any, blob: bytes) -> bytes:
    return state_files.materialize(blob) if state_files.is_ref(blob) else blob


@sql_errors
def checkpoint_state(plpy: Any, blob: bytes | None, inline_max: int | None) -> bytes | None:
    """A file reference's bytes, as chunk rows and their reference when too large for a
    value (``inline_max``, default the server's), so a checkpoint never names a file."""
    if blob is None or not state_files.is_ref(blob):
        return blob
    data = state_files.materialize(blob)
    limit = chunks.INLINE_MAX if inline_max is None else int(inline_max)
    if len(data) <= limit:
        return data
    ref = chunks.spill({}, data, limit)  # a throwaway GD: the rows are written right here
    store.insert_state_chunks(plpy, chunks.split(ref, data))
    return ref


@sql_errors
def drop_state_file(plpy: Any, blob: bytes) -> bool:
    if not state_files.is_ref(blob):
        return False
    if store.state_file_referenced(plpy, state_files.parse_ref(blob)[0]):
        return False
    return state_files.remove(blob)


@sql_errors
def collect_state_files(plpy: Any) -> int:
    # the cutoff first, then the references (a later snapshot): see state_files.collect
    older_than = store.oldest_open_transaction(plpy) - 1.0  # file times are coarse
    db, databases = store.database_oids(plpy)
    state_files.collect_databases(databases)
    return state_files.collect(db, store.state_file_refs(plpy), older_than)


@sql_errors
def stash_chunk(plpy: Any, GD: dict, blob_id: bytes, seq: int, data: bytes, n_chunks: int) -> int:
    return chunks.stash_chunk(GD, blob_id, seq, data, n_chunks)


@sql_errors
def unstash_chunks(plpy: Any, GD: dict, ref: bytes | None) -> Iterator[tuple[bytes, int, bytes]]:
    """Rows (blob, seq, data) of a state kept in GD, streamed one chunk at a time."""
    return chunks.unstash(GD, ref)


@sql_errors
def cache_info(plpy: Any, GD: dict) -> str:
    return json.dumps(cache.info(GD))


# -- workloads and steering -------------------------------------------------------------------


@sql_errors
def launch(plpy: Any, *args: Any) -> int:
    """``cerebro.launch``: the arguments in the SQL function's order."""
    from . import launch as _launch  # imported on use: only launch needs the searches

    return _launch.launch(plpy, *args)


@sql_errors
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
    from . import drill

    return drill.drill_down(
        plpy,
        parent_workload,
        space_json,
        search_name,
        num_configs,
        config_id,
        max_epochs,
        name,
        seed,
        options_json,
    )


@sql_errors
def automl_step(plpy: Any, workload_id: int) -> int:
    from . import automl

    return automl.step(plpy, workload_id)


@sql_errors
def on_epoch(plpy: Any, config_id: int, epoch: int) -> None:
    from . import automl

    automl.on_epoch(plpy, config_id, epoch)


@sql_errors
def prepare_params(plpy: Any, workload_id: int, params_json: str) -> str:
    from . import steering

    return steering.prepare_params(plpy, workload_id, params_json)


@sql_errors
def clone(
    plpy: Any,
    config_id: int,
    overrides_json: str | None,
    fresh: bool,
    workload_id: int | None,
    max_epochs: int | None = None,
) -> int:
    from . import steering

    return steering.clone(plpy, config_id, overrides_json, fresh, workload_id, max_epochs)


# -- the winner -------------------------------------------------------------------------------


@sql_errors
def evaluate(plpy: Any, GD: dict, config_id: int, dataset: str, epoch: int | None) -> str:
    from . import inference

    return inference.evaluate(plpy, GD, config_id, dataset, epoch)


@sql_errors
def predict(
    plpy: Any,
    config_id: int,
    source: str,
    output: str,
    key: str | None,
    epoch: int | None,
    batch_rows: int | None,
) -> int:
    from . import inference

    return inference.predict(plpy, config_id, source, output, key, epoch, batch_rows)


@sql_errors
def export_model(plpy: Any, config_id: int, epoch: int | None) -> bytes:
    from . import inference

    return inference.export_model(plpy, config_id, epoch)


@sql_errors
def upload_weights(plpy: Any, name: str, data: bytes | None) -> str:
    from . import uploads

    return uploads.upload_weights(plpy, name, data)


@sql_errors
def drop_weights(plpy: Any, name: str) -> bool:
    from . import uploads

    return uploads.drop_weights(plpy, name)
