"""Using a trained config: ``cerebro.evaluate``, ``cerebro.predict`` and ``cerebro.export_model``.

All three start from a checkpoint (the latest epoch, or the one asked for): checkpoints are
what the scheduler committed together with the epoch's metrics, so the model a user evaluates
is exactly the one the leaderboard ranked. New data is encoded with the *training* dataset's
encoding (features, normalisation, image size, vocabulary), so predictions on raw rows match
what the model saw in training.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from . import chunks, models, packing, state, store
from .catalog import Relation, resolve_relation
from .errors import CerebroError

PREDICT_BATCH_ROWS = 1024
# evaluate: one aggregate over the dataset's buffers (the same as a validation pass)
EVALUATE_SQL = (
    "select (r).* from (select cerebro.evaluate_partition($1, $2, $3) "
    "within group (order by buffer_id, x, y, num_rows) as r "
    "from cerebro.buffers where dataset_id = $4) s"
)
EVALUATE_TYPES = ["bytea", "jsonb", "jsonb", "int"]
# predict: the source's primary key, the output's name, and the output table itself
PRIMARY_KEY_SQL = (
    "select a.attname from pg_index i join pg_attribute a on "
    "a.attrelid = i.indrelid and a.attnum = any (i.indkey) "
    "where i.indrelid = $1 and i.indisprimary"
)
PARSE_IDENT_SQL = "select parse_ident($1) as p"
TABLE_EXISTS_SQL = "select to_regclass($1) is not null as e"
SCORE_SQL = "select {key} as k, {x} as x from {rel}"
# {table} is quoted and qualified, {key}/{label} quoted identifiers, {*_type} format_type()
CREATE_CLASSES_SQL = (
    "create table {table} ({key} {key_type}, {label} {class_type}, "
    "probability float8, probabilities float8[])"
)
CREATE_VALUES_SQL = "create table {table} ({key} {key_type}, {label} float8)"
# One INSERT per batch: the batch travels as arrays (probabilities flattened, n per row)
# and generate_subscripts turns them back into rows.
INSERT_CLASSES_SQL = (
    "insert into {table} select b.k[i], b.c[i], b.p[i], "
    "b.ps[(i - 1) * b.n + 1 : i * b.n] from (select $1 as k, $2 as c, "
    "$3 as p, $4 as ps, $5 as n) b, generate_subscripts(b.k, 1) as i"
)
INSERT_VALUES_SQL = (
    "insert into {table} select b.k[i], b.v[i] from (select $1 as k, "
    "$2 as v) b, generate_subscripts(b.k, 1) as i"
)


class Winner:
    """A config's checkpoint and everything needed to rebuild its model."""

    def __init__(self, plpy: Any, config_id: int, epoch: int | None) -> None:
        config = store.find_config(plpy, config_id)
        if config is None or not store.may_see_config(plpy, config_id):
            raise CerebroError(f"config {config_id} does not exist")
        workload = store.find_workload(plpy, config.workload_id)
        model = store.model_by_id(plpy, workload.model_id) if workload else None
        assert workload is not None and model is not None  # foreign keys
        self.config_id = config_id
        self.epoch, state_ref = _checkpoint(plpy, config, epoch)
        self.ref = bytes(state_ref)
        blob = chunks.fetch(plpy, self.ref)  # the bytes of a chunked state
        assert blob is not None  # checkpoints.state is not null
        self.blob: bytes = blob
        self.params = config.params
        self.seed = int(config.seed)
        self.workload = workload.name
        self.spec = model.spec()
        self.train = _dataset_row(
            store.dataset_by_id(plpy, workload.train_dataset, full=True), workload.train_dataset
        )

    def model(self) -> Any:
        """A compiled model holding the checkpoint's weights and optimizer state."""
        model = models.build_model(
            self.spec, self.params, models.dataset_meta(self.train), self.seed
        )
        try:
            state.restore(model, state.decode(self.blob))
        except state.StateError as e:
            raise CerebroError(
                f"checkpoint of config {self.config_id} epoch {self.epoch} cannot be loaded: {e}"
            ) from None
        return model


def _checkpoint(plpy: Any, config: store.Config, epoch: int | None) -> tuple[int, bytes]:
    """(epoch, state) of the checkpoint asked for (the latest when ``epoch`` is None); the
    error says which epochs there are."""
    found = (
        store.latest_checkpoint(plpy, config.config_id)
        if epoch is None
        else store.checkpoint_of_epoch(plpy, config.config_id, epoch)
    )
    if found is not None:
        return found
    have = store.checkpoint_epochs(plpy, config.config_id)
    if epoch is None or not have:
        raise CerebroError(
            f"config {config.config_id} has no checkpoint yet (it has completed "
            f"{config.epoch} epochs)",
            hint="a checkpoint is written at the end of every epoch",
        )
    keep = store.pruned_checkpoint(plpy, config.config_id, epoch)
    if keep is not None:
        raise CerebroError(
            f"config {config.config_id}: checkpoint of epoch {epoch} was pruned "
            f"(keep_checkpoints = {keep}); epochs kept: {', '.join(map(str, have))}",
            hint="use one of the epochs kept; launch with a larger keep_checkpoints to keep more",
        )
    raise CerebroError(
        f"config {config.config_id} has no checkpoint of epoch {epoch}",
        hint=f"checkpointed epochs: {have}",
    )


def _dataset_row(ds: store.Dataset | None, what: Any) -> dict[str, Any]:
    """The dataset as the dict ``models`` and ``packing.featurizer`` take, or the error
    that names what was asked for."""
    if ds is None:
        raise CerebroError(f"dataset {what!r} does not exist")
    return ds.row()


def evaluate(plpy: Any, GD: dict, config_id: int, dataset: str, epoch: int | None) -> str:
    """Loss and metrics of a checkpoint on every row of ``dataset`` (jsonb)."""
    w = Winner(plpy, config_id, epoch)
    ds = _dataset_row(store.find_dataset(plpy, dataset, full=True), dataset)
    for what in ("task", "classes", "feature_shape", "encoding"):
        if ds[what] != w.train[what]:
            raise CerebroError(
                f"dataset {dataset!r} is not encoded like {w.train['name']!r}, the data config "
                f"{config_id} was trained on ({what} differs)",
                hint=f"load it with like_dataset => '{w.train['name']}'",
            )
    cfg = models.training_config(w.train, w.params, w.seed, None, w.epoch, config_id)
    arg = w.blob
    if chunks.is_ref(w.ref):  # too large to pass: the aggregate finds it in GD
        chunks.stash_whole(GD, w.ref, w.blob)
        arg = w.ref
    r = plpy.execute(
        plpy.prepare(EVALUATE_SQL, EVALUATE_TYPES),
        [arg, json.dumps(w.spec), json.dumps(cfg), ds["dataset_id"]],
    )[0]
    out = {"config_id": config_id, "epoch": w.epoch, "dataset": dataset, "loss": r["loss"]}
    out.update(json.loads(r["metrics"]) if r["metrics"] else {})
    out["rows"] = r["rows"]
    return json.dumps(out)


def _key_column(plpy: Any, rel: Relation, key: str | None) -> str:
    """The column that identifies a row: the one named, or the single-column primary key;
    it must be a scalar (it is written as one value per output row)."""
    if key is None:
        pk = plpy.execute(plpy.prepare(PRIMARY_KEY_SQL, ["oid"]), [rel.oid])
        if len(pk) != 1:
            raise CerebroError(
                f"{rel.display} has no single-column primary key to identify rows",
                hint="name the column that identifies a row: key => 'id'",
            )
        return str(pk[0]["attname"])
    if key not in rel.columns:
        raise CerebroError(
            f"key column {key!r} does not exist in {rel.display}",
            hint=f"columns: {', '.join(rel.columns)}",
        )
    return key


def _check_scalar_key(rel: Relation, key: str) -> str:
    """The key column's type, refused when it is an array."""
    key_col = rel.columns[key]
    if key_col.category == "A":
        raise CerebroError(
            f"key column {key!r} is an array ({key_col.type_name}); a key must "
            "be a scalar that identifies a row",
            hint="name another column: key => 'id'",
        )
    return key_col.type_name


def _output_name(plpy: Any, output: str) -> str:
    """Quoted qualified name of the new output table (which must not exist yet)."""
    if not output or not isinstance(output, str):
        raise CerebroError("output must name the table to create, e.g. 'public.scores'")
    try:
        parts = plpy.execute(plpy.prepare(PARSE_IDENT_SQL, ["text"]), [output])[0]["p"]
    except plpy.SPIError:
        raise CerebroError(
            f"output {output!r} is not a valid table name", hint="schema.table or table"
        ) from None
    if len(parts) > 2:
        raise CerebroError(
            f"output {output!r} is not a valid table name", hint="schema.table or table"
        )
    # the function runs with search_path pinned to pg_catalog: a bare name goes into public,
    # as import_petastorm's does
    if len(parts) == 1:
        parts = ["public", *parts]
    qualified = ".".join(plpy.quote_ident(p) for p in parts)
    if plpy.execute(plpy.prepare(TABLE_EXISTS_SQL, ["text"]), [qualified])[0]["e"]:
        raise CerebroError(
            f"output table {output!r} already exists",
            hint="drop it or choose another name; predict never overwrites",
        )
    return qualified


class _Output:
    """The predict output table: created once, then filled with one INSERT per batch.

    Classification writes the predicted class (under the label's name), its probability and
    all class probabilities in class order; regression writes the predicted value.
    """

    def __init__(
        self, plpy: Any, table: str, key: str, key_type: str, label: str, classes: list[Any] | None
    ) -> None:
        self.plpy, self.classes = plpy, classes
        names = {
            "table": table,
            "key": plpy.quote_ident(key),
            "key_type": key_type,
            "label": plpy.quote_ident(label),
        }
        if classes is not None:
            class_type = "bigint" if all(isinstance(c, int) for c in classes) else "text"
            plpy.execute(CREATE_CLASSES_SQL.format(class_type=class_type, **names))
            self.insert = plpy.prepare(
                INSERT_CLASSES_SQL.format(**names),
                [f"{key_type}[]", f"{class_type}[]", "float8[]", "float8[]", "int4"],
            )
        else:
            plpy.execute(CREATE_VALUES_SQL.format(**names))
            self.insert = plpy.prepare(
                INSERT_VALUES_SQL.format(**names), [f"{key_type}[]", "float8[]"]
            )

    def write(self, keys: list[Any], y: np.ndarray) -> None:
        """One batch: ``y`` is (n, classes) probabilities or (n, 1) values."""
        if self.classes is not None:
            best = y.argmax(axis=1)
            self.plpy.execute(
                self.insert,
                [
                    keys,
                    [self.classes[b] for b in best.tolist()],
                    y[np.arange(len(keys)), best].tolist(),
                    y.ravel().tolist(),
                    y.shape[1],
                ],
            )
        else:
            self.plpy.execute(self.insert, [keys, y.reshape(len(keys), -1)[:, 0].tolist()])


def predict(
    plpy: Any,
    config_id: int,
    source: str,
    output: str,
    key: str | None,
    epoch: int | None,
    batch_rows: int | None,
) -> int:
    """Score every row of ``source`` into the new table ``output``; returns rows written.

    The output has the key column, then for classification the predicted class (under the
    label's name), its probability and all class probabilities in class order
    (``cerebro.datasets.classes``); for regression the predicted value.
    """
    batch_rows = PREDICT_BATCH_ROWS if batch_rows is None else int(batch_rows)
    if not 1 <= batch_rows <= 1_000_000:
        raise CerebroError(f"batch_rows must be between 1 and 1000000, got {batch_rows}")
    w = Winner(plpy, config_id, epoch)
    rel = resolve_relation(plpy, source)
    key = _key_column(plpy, rel, key)
    x_sql, encode = packing.featurizer(plpy, w.train, rel)
    label = w.train["label"]
    if label == key:
        label = "prediction"
    table = _output_name(plpy, output)
    key_type = _check_scalar_key(rel, key)
    classes = w.train["classes"] if w.train["task"] == "classification" else None
    out = _Output(plpy, table, key, key_type, label, classes)
    query = SCORE_SQL.format(key=plpy.quote_ident(key), x=x_sql, rel=rel.qualified)
    return _score(plpy, w, query, encode, out, batch_rows)


def _score(
    plpy: Any,
    w: Winner,
    query: str,
    encode: Callable[[list[Any], int], np.ndarray],
    out: _Output,
    batch_rows: int,
) -> int:
    """Read ``batch_rows`` source rows at a time, encode, predict and write them."""
    model = w.model()
    batch_size = max(int(w.params.get("batch_size", 64)), 256)
    cursor = plpy.cursor(query)
    written = 0
    while True:
        rows = cursor.fetch(batch_rows)
        if not rows:
            break
        x = encode([r["x"] for r in rows], written + 1)
        # predict_on_batch per slice: model.predict costs ~50 ms per call in Keras 3 (it
        # builds a data adapter and a progress loop), more than a small model's inference
        y = np.concatenate(
            [
                np.asarray(model.predict_on_batch(x[i : i + batch_size]), dtype=np.float64)
                for i in range(0, len(x), batch_size)
            ]
        )
        out.write([r["k"] for r in rows], y)
        written += len(rows)
    return written


def export_model(plpy: Any, config_id: int, epoch: int | None) -> bytes:
    """The checkpoint as the bytes of a ``.keras`` file (architecture, weights, optimizer)."""
    w = Winner(plpy, config_id, epoch)
    model = w.model()
    with tempfile.TemporaryDirectory(prefix="cerebro-export-") as d:
        path = os.path.join(d, f"config-{config_id}-epoch-{w.epoch}.keras")
        try:
            model.save(path)
        except Exception as e:  # noqa: BLE001 - custom layers may not serialise
            raise CerebroError(
                f"model of config {config_id} cannot be saved as .keras: {type(e).__name__}: {e}",
                hint="custom layers need get_config() and "
                "@keras.saving.register_keras_serializable",
            ) from None
        with open(path, "rb") as f:
            return f.read()
