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
from typing import Any

import numpy as np

from . import chunks, models, packing, state
from .catalog import resolve_relation
from .errors import CerebroError

PREDICT_BATCH_ROWS = 1024
_AGG_SQL = ("select (r).* from (select cerebro.evaluate_partition($1, $2, $3) "
            "within group (order by buffer_id, x, y, num_rows) as r "
            "from cerebro.buffers where dataset_id = $4) s")
_DATASET = ("select dataset_id, name, features, label, task, classes, feature_shape, "
            "normalization, encoding, vocabulary, num_partitions, "
            "extract(epoch from created_at)::text as version from cerebro.datasets ")


class Winner:
    """A config's checkpoint and everything needed to rebuild its model."""

    def __init__(self, plpy: Any, config_id: int, epoch: int | None) -> None:
        rows = plpy.execute(plpy.prepare(
            "select c.config_id, c.params, c.seed, c.epoch, w.model_id, w.train_dataset, "
            "w.name as workload from cerebro.configs c join cerebro.workloads w "
            "using (workload_id) where c.config_id = $1", ["int"]), [config_id])
        if not rows:
            raise CerebroError(f"config {config_id} does not exist")
        c = rows[0]
        ckpt = plpy.execute(plpy.prepare(
            "select epoch, state from cerebro.checkpoints where config_id = $1 "
            "and ($2::int is null or epoch = $2) order by epoch desc limit 1",
            ["int", "int"]), [config_id, epoch])
        if not ckpt:
            have = [r["epoch"] for r in plpy.execute(plpy.prepare(
                "select epoch from cerebro.checkpoints where config_id = $1 order by epoch",
                ["int"]), [config_id])]
            if epoch is None or not have:
                raise CerebroError(
                    f"config {config_id} has no checkpoint yet (it has completed "
                    f"{c['epoch']} epochs)",
                    hint="a checkpoint is written at the end of every epoch")
            raise CerebroError(f"config {config_id} has no checkpoint of epoch {epoch}",
                               hint=f"checkpointed epochs: {have}")
        self.config_id = config_id
        self.epoch = int(ckpt[0]["epoch"])
        self.ref = bytes(ckpt[0]["state"])
        self.blob = chunks.fetch(plpy, self.ref)       # the bytes of a chunked state
        self.params = json.loads(c["params"])
        self.seed = int(c["seed"])
        self.workload = c["workload"]
        spec = plpy.execute(plpy.prepare(
            "select name, kind, entry_point, source from cerebro.models where model_id = $1",
            ["int"]), [c["model_id"]])
        self.spec = dict(spec[0])
        self.train = dataset_row(plpy, "dataset_id = $1", "int", c["train_dataset"])

    def model(self) -> Any:
        """A compiled model holding the checkpoint's weights and optimizer state."""
        model = models.build_model(self.spec, self.params, models.dataset_meta(self.train),
                                   self.seed)
        try:
            state.restore(model, state.decode(self.blob))
        except state.StateError as e:
            raise CerebroError(f"checkpoint of config {self.config_id} epoch {self.epoch} "
                               f"cannot be loaded: {e}") from None
        return model


def dataset_row(plpy: Any, where: str, type_: str, value: Any) -> dict[str, Any]:
    rows = plpy.execute(plpy.prepare(_DATASET + "where " + where, [type_]), [value])
    if not rows:
        raise CerebroError(f"dataset {value!r} does not exist")
    r = dict(rows[0])
    for k in ("features", "classes", "normalization", "encoding"):
        if isinstance(r.get(k), str):
            r[k] = json.loads(r[k])
    return r


def evaluate(plpy: Any, GD: dict, config_id: int, dataset: str, epoch: int | None) -> str:
    """Loss and metrics of a checkpoint on every row of ``dataset`` (jsonb)."""
    w = Winner(plpy, config_id, epoch)
    ds = dataset_row(plpy, "name = $1", "text", dataset)
    for what in ("task", "classes", "feature_shape", "encoding"):
        if ds[what] != w.train[what]:
            raise CerebroError(
                f"dataset {dataset!r} is not encoded like {w.train['name']!r}, the data config "
                f"{config_id} was trained on ({what} differs)",
                hint=f"load it with like_dataset => '{w.train['name']}'")
    cfg = models.training_config(w.train, w.params, w.seed, None, w.epoch, config_id)
    spec = {k: w.spec[k] for k in ("name", "kind", "entry_point", "source")}
    arg = w.blob
    if chunks.is_ref(w.ref):            # too large to pass: the aggregate finds it in GD
        chunks.stash_whole(GD, w.ref, w.blob)
        arg = w.ref
    r = plpy.execute(plpy.prepare(_AGG_SQL, ["bytea", "jsonb", "jsonb", "int"]),
                     [arg, json.dumps(spec), json.dumps(cfg), ds["dataset_id"]])[0]
    out = {"config_id": config_id, "epoch": w.epoch, "dataset": dataset, "loss": r["loss"]}
    out.update(json.loads(r["metrics"]) if r["metrics"] else {})
    out["rows"] = r["rows"]
    return json.dumps(out)


def _key_column(plpy: Any, rel: Any, key: str | None) -> str:
    if key is not None:
        if key not in rel.columns:
            raise CerebroError(f"key column {key!r} does not exist in {rel.display}",
                               hint=f"columns: {', '.join(rel.columns)}")
        return key
    pk = plpy.execute(plpy.prepare(
        "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
        "and a.attnum = any (i.indkey) where i.indrelid = $1 and i.indisprimary",
        ["oid"]), [rel.oid])
    if len(pk) != 1:
        raise CerebroError(f"{rel.display} has no single-column primary key to identify rows",
                           hint="name the column that identifies a row: key => 'id'")
    return pk[0]["attname"]


def _output_name(plpy: Any, output: str) -> tuple[str, str]:
    """Quoted qualified name of the new output table (which must not exist yet)."""
    if not output or not isinstance(output, str):
        raise CerebroError("output must name the table to create, e.g. 'public.scores'")
    try:
        parts = plpy.execute(plpy.prepare("select parse_ident($1) as p", ["text"]),
                             [output])[0]["p"]
    except plpy.SPIError:
        raise CerebroError(f"output {output!r} is not a valid table name",
                           hint="schema.table or table") from None
    if len(parts) > 2:
        raise CerebroError(f"output {output!r} is not a valid table name",
                           hint="schema.table or table")
    exists = plpy.execute(plpy.prepare("select to_regclass($1) is not null as e", ["text"]),
                          [output])[0]["e"]
    if exists:
        raise CerebroError(f"output table {output!r} already exists",
                           hint="drop it or choose another name; predict never overwrites")
    return ".".join(plpy.quote_ident(p) for p in parts), output


def predict(plpy: Any, config_id: int, source: str, output: str, key: str | None,
            epoch: int | None, batch_rows: int | None) -> int:
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
    out_sql, _ = _output_name(plpy, output)
    key_col = rel.columns[key]
    if key_col.category == "A":
        raise CerebroError(f"key column {key!r} is an array ({key_col.type_name}); a key must "
                           "be a scalar that identifies a row",
                           hint="name another column: key => 'id'")
    key_type = key_col.type_name
    classes = w.train["classes"]
    q = plpy.quote_ident
    # One INSERT per batch: the batch travels as arrays (probabilities flattened, n per row)
    # and generate_subscripts turns them back into rows.
    if w.train["task"] == "classification":
        class_type = "bigint" if all(isinstance(c, int) for c in classes) else "text"
        plpy.execute(f"create table {out_sql} ({q(key)} {key_type}, {q(label)} {class_type}, "
                     "probability float8, probabilities float8[])")
        insert = plpy.prepare(
            f"insert into {out_sql} select b.k[i], b.c[i], b.p[i], "
            "b.ps[(i - 1) * b.n + 1 : i * b.n] from (select $1 as k, $2 as c, $3 as p, "
            "$4 as ps, $5 as n) b, generate_subscripts(b.k, 1) as i",
            [f"{key_type}[]", f"{class_type}[]", "float8[]", "float8[]", "int4"])
    else:
        plpy.execute(f"create table {out_sql} ({q(key)} {key_type}, {q(label)} float8)")
        insert = plpy.prepare(
            f"insert into {out_sql} select b.k[i], b.v[i] from (select $1 as k, $2 as v) b, "
            "generate_subscripts(b.k, 1) as i", [f"{key_type}[]", "float8[]"])
    model = w.model()
    batch_size = max(int(w.params.get("batch_size", 64)), 256)
    cursor = plpy.cursor(f"select {q(key)} as k, {x_sql} as x from {rel.qualified}")
    written = 0
    while True:
        rows = cursor.fetch(batch_rows)
        if not rows:
            break
        keys = [r["k"] for r in rows]
        x = encode([r["x"] for r in rows], written + 1)
        # predict_on_batch per slice: model.predict costs ~50 ms per call in Keras 3 (it
        # builds a data adapter and a progress loop), more than a small model's inference
        y = np.concatenate([np.asarray(model.predict_on_batch(x[i:i + batch_size]),
                                       dtype=np.float64)
                            for i in range(0, len(x), batch_size)])
        if w.train["task"] == "classification":
            best = y.argmax(axis=1)
            plpy.execute(insert, [keys, [classes[b] for b in best.tolist()],
                                  y[np.arange(len(keys)), best].tolist(), y.ravel().tolist(),
                                  y.shape[1]])
        else:
            plpy.execute(insert, [keys, y.reshape(len(keys), -1)[:, 0].tolist()])
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
            raise CerebroError(f"model of config {config_id} cannot be saved as .keras: "
                               f"{type(e).__name__}: {e}",
                               hint="custom layers need get_config() and "
                                    "@keras.saving.register_keras_serializable") from None
        with open(path, "rb") as f:
            return f.read()
