"""``cerebro.load_dataset``: pack a table or view into shuffled, partitioned minibatch buffers.

Runs on the coordinator. Rows are read once as binary float4 arrays (``array_send``), decoded
with numpy in bulk (no per-value Python work), checked for NULL/NaN, encoded (classes to
indices, optional standardisation), shuffled once with the seed, split into partitions and
written as float32 ``bytea`` buffers. Everything happens in the caller's transaction, so a
failure leaves no half-made dataset.

The catalog row goes through :mod:`store`; the statements here read the user's source
relation and write ``cerebro.buffers``, the packing's own data path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import encoding, engine, expressions, limits, names, store
from .catalog import Column, Relation, resolve_relation
from .errors import CerebroError

FETCH_ROWS = 50_000
TARGET_BUFFER_BYTES = 16 << 20
TASKS = ("auto", "classification", "regression")
NORMALIZATIONS = ("auto", "standard", "none")
_ROW = np.dtype([("len", ">i4"), ("v", ">f4")])

# The data path: {rel} is a quoted relation, {col}/{x}/{y} quoted identifiers or checked SQL.
NULL_COUNT_SQL = "select count(*) as n from {rel} where {col} is null"
READ_SQL = "select {x} as x, {y} as y from {rel}"
INSERT_BUFFER_SQL = (
    "insert into cerebro.buffers (dataset_id, __dist_key__, buffer_id, "
    "num_rows, x, y) values ($1, $2, $3, $4, $5, $6)"
)
INSERT_BUFFER_TYPES = ["int", "int", "int", "int", "bytea", "bytea"]


@dataclass
class Packed:
    """The source's rows, encoded: what is written as buffers and described in the catalog."""

    x: np.ndarray  # (n, *feature_shape) float32, normalised
    y: np.ndarray  # (n,) int32 class index or float32 target
    feature_shape: list[int]
    classes: list[Any] | None
    statistics: dict[str, Any]  # of the raw features, before normalisation
    normalization: dict[str, Any]
    vocabulary: list[str] | None


@dataclass
class _Features:
    """How the feature columns of the source are read: the encoding (numeric, image, text),
    the SQL expression that yields one raw ``x`` per row, and the array-typed features
    (their values are flattened or keep their shape; see :func:`_feature_sql`)."""

    names: list[str]
    enc: dict[str, Any]
    sql: str
    arrays: list[str]


def load_dataset(
    plpy: Any,
    name: str,
    source: str,
    features: list[str] | None,
    label: str | None,
    num_partitions: int | None = None,
    buffer_rows: int | None = None,
    seed: int = 0,
    like_dataset: str | None = None,
    task: str = "auto",
    normalization: str = "auto",
    image_size: list[int] | None = None,
    channels: int | None = None,
    max_length: int | None = None,
    vocabulary: list[str] | None = None,
    vocabulary_size: int | None = None,
    lowercase: bool | None = None,
    nodes: list[str] | None = None,
) -> int:
    """Pack ``source`` and register it as dataset ``name``; returns the dataset id.

    A single ``bytea`` feature column is decoded as images (``image_size``, ``channels``); a
    single text column is tokenised (``max_length``, and a ``vocabulary`` given or learnt from
    these rows with ``vocabulary_size`` tokens). Anything else is numeric. The parameters are
    in the order of the SQL function's arguments (``sql_api`` passes them positionally).
    """
    _check_name(plpy, name)
    rel = resolve_relation(plpy, source)
    like = _like(plpy, like_dataset)
    features, label = _feature_and_label_names(rel, features, label, like)
    _check_choices(task, normalization)
    enc = _encoding(
        rel, features, like, like_dataset, image_size, channels, max_length,
        vocabulary_size, lowercase, vocabulary,
    )  # fmt: skip
    if enc["kind"] != "numeric" and normalization == "standard":
        raise CerebroError(
            f"normalization 'standard' does not apply to {enc['kind']} features",
            hint="images are scaled to [0, 1]; token ids are not normalised",
        )
    nodes = _nodes(plpy, nodes, like)
    if nodes and num_partitions is None:
        num_partitions = len(nodes)
    caps = _check_limits(plpy, num_partitions, enc, like, vocabulary, buffer_rows)
    feats = _features(plpy, rel, features, enc)
    col = rel.columns[label]
    task = _task(col, label, task, like, like_dataset)
    packed = _pack(plpy, rel, feats, label, task, like, like_dataset, normalization, vocabulary)
    num_partitions, buffer_rows = _layout(packed.x, num_partitions, buffer_rows, caps)
    rows = packed.x.shape[0]
    parts = np.array_split(np.random.default_rng(seed).permutation(rows), num_partitions)
    n = len(parts)
    row = _catalog_row(
        name, rel, features, label, task, enc, packed, parts, buffer_rows, seed, like
    )
    row.dist_keys = _segment_keys(plpy, n, nodes)
    dataset_id = store.insert_dataset(plpy, row)
    keys = row.dist_keys or list(range(n))
    _write_buffers(plpy, dataset_id, parts, packed.x, packed.y, buffer_rows, keys)
    if nodes and any(x != "local" for x in nodes):
        store.place_partitions(plpy, dataset_id, [nodes[j % len(nodes)] for j in range(n)])
    return dataset_id


def _segment_keys(plpy: Any, n: int, nodes: list[str] | None) -> list[int] | None:
    """On Greenplum/Cloudberry, the ``__dist_key__`` of each partition, one segment each
    (asked of the engine's own hash); None on PostgreSQL, where the key is the partition."""
    eng = engine.detect(plpy.execute("select version() as v")[0]["v"])
    if not eng.mpp:
        return None
    if nodes:
        raise CerebroError(
            f"nodes => does not apply on {eng.name}: its segments hold the partitions",
            hint="leave nodes out; each partition goes to its own segment",
        )
    nseg = plpy.execute(
        "select count(*) as n from gp_segment_configuration where role = 'p' and content >= 0"
    )[0]["n"]
    statements = engine.probe_keys_sql(int(nseg))
    probe: list[tuple[int, int]] = []
    for stmt in statements:
        rows = plpy.execute(stmt)
        if stmt.startswith("select"):
            probe = [(int(r["gp_segment_id"]), int(r["min"])) for r in rows]
    try:
        return engine.partition_keys(probe, n)
    except engine.UnsupportedEngine as e:
        raise CerebroError(str(e)) from None


def _nodes(plpy: Any, nodes: list[str] | None, like: dict[str, Any] | None) -> list[str] | None:
    """The servers to place partitions on, checked before anything is packed: the ones
    asked for, else like_dataset's placement (a validation set sits where its training set
    does), else None (all here)."""
    if nodes is None:
        if like is None:
            return None
        return store.placement_of(plpy, like["name"])
    if not nodes:
        raise CerebroError("nodes must name at least one server ('local' is this one)")
    known = store.node_names(plpy)
    unknown = sorted({str(n) for n in nodes if n not in known})
    if unknown:
        raise CerebroError(
            f"unknown node(s) {', '.join(unknown)}",
            hint="use 'local' (this server) or a name from cerebro.node_health; "
            "an admin adds nodes with cerebro.add_node",
        )
    return list(nodes)


def _catalog_row(
    name: str,
    rel: Relation,
    features: list[str],
    label: str,
    task: str,
    enc: dict[str, Any],
    packed: Packed,
    parts: list[np.ndarray],
    buffer_rows: int,
    seed: int,
    like: dict[str, Any] | None,
) -> store.NewDataset:
    """The ``cerebro.datasets`` row that describes the packed buffers."""
    return store.NewDataset(
        name=name,
        source=rel.display,
        features=list(features),
        label=label,
        task=task,
        classes=packed.classes,
        feature_shape=packed.feature_shape,
        normalization=packed.normalization,
        statistics=packed.statistics,
        num_rows=int(packed.x.shape[0]),
        num_partitions=len(parts),
        buffer_rows=buffer_rows,
        rows_per_partition=[len(p) for p in parts],
        seed=seed,
        like_dataset=like["dataset_id"] if like else None,
        encoding=enc,
        vocabulary=packed.vocabulary,
    )


def _pack(
    plpy: Any,
    rel: Relation,
    feats: _Features,
    label: str,
    task: str,
    like: dict[str, Any] | None,
    like_dataset: str | None,
    normalization: str,
    vocabulary: list[str] | None,
) -> Packed:
    """Read every row of the source once, then encode features and labels and normalise."""
    label_sql = _label_sql(plpy, label, task)
    xs, ys = _read(plpy, READ_SQL.format(x=feats.sql, y=label_sql, rel=rel.qualified))
    if not xs:
        raise CerebroError(f"source {rel.display} has no rows; nothing to load")
    x, feature_shape, vocab = _encode_features(xs, feats, like, vocabulary)
    del xs  # the raw rows can be large: free them early
    is_integer = rel.columns[label].is_integer
    y, classes = _encode_labels(ys, task, is_integer, like, label, rel.display)
    del ys
    stats = _statistics(x)
    norm = _normalization(x, feature_shape, feats.enc["kind"], like, like_dataset, normalization)
    x = _apply_normalization(x, norm)
    return Packed(x, y, feature_shape, classes, stats, norm, vocab)


# ------------------------------------------------------------------------- the arguments


def _check_name(plpy: Any, name: str) -> None:
    """A valid and unused name, checked before any work (the catalog's constraint would only
    say so after the rows were read)."""
    if not isinstance(name, str) or not names.DATASET_NAME.match(name):
        raise CerebroError(f"dataset name {name!r} is not valid", hint=names.DATASET_NAME_HINT)
    if store.dataset_exists(plpy, name):
        raise CerebroError(
            f"dataset {name!r} already exists",
            hint=f"drop it first: SELECT cerebro.drop_dataset('{name}')",
        )


def _like(plpy: Any, like_name: str | None) -> dict[str, Any] | None:
    """The ``like_dataset`` row (features, label, classes, normalisation and encoding are
    reused from it), or None when none is named."""
    if not like_name:
        return None
    like = store.find_dataset(plpy, like_name, full=True)
    if like is None:
        raise CerebroError(f"like_dataset {like_name!r} does not exist")
    return like.row()


def _feature_and_label_names(
    rel: Relation, features: list[str] | None, label: str | None, like: dict[str, Any] | None
) -> tuple[list[str], str]:
    """The features and label asked for (or the like_dataset's), checked against ``rel``."""
    if like:
        features = features or like["features"]
        label = label or like["label"]
    if not features:
        raise CerebroError(
            "features must list at least one column or expression",
            hint="features => ARRAY['col1', 'log(1 + col2)']",
        )
    if not label:
        raise CerebroError("label must name the label column")
    if label not in rel.columns:
        raise CerebroError(
            f"label column {label!r} does not exist in {rel.display}",
            hint=f"columns: {', '.join(rel.columns)}",
        )
    return features, label


def _check_choices(task: str, normalization: str) -> None:
    """``task`` and ``normalization`` are one of their words (named as the SQL arguments)."""
    if task not in TASKS:
        raise CerebroError(
            f"task {task!r} is not known", hint="task is 'auto', 'classification' or 'regression'"
        )
    if normalization not in NORMALIZATIONS:
        raise CerebroError(
            f"normalization {normalization!r} is not known",
            hint="normalization is 'auto', 'standard' or 'none'",
        )


def _task(
    col: Column, label: str, task: str, like: dict[str, Any] | None, like_name: str | None
) -> str:
    """The task (``auto`` decided by the label's type), checked against the label column."""
    if task == "auto":
        task = "regression" if col.category == "N" and not col.is_integer else "classification"
    if like and like["task"] != task:
        raise CerebroError(
            f"dataset {like_name!r} is a {like['task']} dataset, this one would be {task}"
        )
    if task == "regression" and col.category != "N":
        raise CerebroError(
            f"label {label!r} has type {col.type_name}; a regression label must be numeric"
        )
    if col.category == "A":
        raise CerebroError(f"label {label!r} is an array; labels are scalars")
    return task


def _label_sql(plpy: Any, label: str, task: str) -> str:
    """The label as read: float8 for regression, text (classes) for classification."""
    return plpy.quote_ident(label) + ("::float8" if task == "regression" else "::text")


def _row_bytes(x_row_bytes: int) -> int:
    """Bytes of one packed row: its features and its 4-byte label."""
    return max(1, x_row_bytes + 4)


def _check_limits(
    plpy: Any,
    num_partitions: int | None,
    enc: dict[str, Any],
    like: dict[str, Any] | None,
    vocabulary: list[str] | None,
    buffer_rows: int | None,
) -> dict[str, float]:
    """Partitions, image sides, text length, vocabulary and (when the row size is known from
    the encoding alone) buffer bytes against ``cerebro.limits``, before the source is read.
    Returns the caps (the layout is checked again once the rows are decoded)."""
    caps = limits.caps(plpy)
    limits.check_value(caps, "max_partitions", num_partitions, "num_partitions")
    if not like and enc["kind"] == "image":
        limits.check_value(caps, "max_image_side", max(enc["size"]), "image_size side")
    if not like and enc["kind"] == "text":
        limits.check_value(caps, "max_text_length", enc["max_length"], "max_length")
        limits.check_value(caps, "max_vocabulary_size", enc["vocabulary_size"], "vocabulary_size")
        if vocabulary is not None:
            limits.check_value(
                caps, "max_vocabulary_size", len(vocabulary), "the vocabulary's length"
            )
    if enc["kind"] == "image":
        h, w = enc["size"]
        row = _row_bytes(4 * h * w * enc["channels"])
    elif enc["kind"] == "text":
        row = _row_bytes(4 * enc["max_length"])
    else:
        return caps  # numeric: the row size is known once the rows are decoded (_layout)
    if buffer_rows is not None and buffer_rows >= 1:
        _check_buffer_bytes(caps, buffer_rows, row)
    return caps


def _check_buffer_bytes(caps: dict[str, float], buffer_rows: int, row_bytes: int) -> None:
    limits.check_value(
        caps,
        "max_buffer_bytes",
        buffer_rows * row_bytes,
        f"a buffer of {buffer_rows} rows x {row_bytes} bytes =",
        instead="give a smaller buffer_rows",
    )


def _layout(
    x: np.ndarray, num_partitions: int | None, buffer_rows: int | None, caps: dict[str, float]
) -> tuple[int, int]:
    """Partitions (default: one per CPU, within the cap) and rows per buffer (default:
    ~16 MB buffers, or the cap's size if smaller); both within ``cerebro.limits``."""
    n = x.shape[0]
    if num_partitions is None:
        num_partitions = min(os.cpu_count() or 1, int(caps["max_partitions"]))
    if num_partitions < 1:
        raise CerebroError(f"num_partitions must be at least 1, got {num_partitions}")
    if num_partitions > n:
        raise CerebroError(f"num_partitions ({num_partitions}) exceeds the number of rows ({n})")
    row_bytes = _row_bytes(x[0].nbytes)
    if buffer_rows is None:
        target = min(TARGET_BUFFER_BYTES, int(caps["max_buffer_bytes"]))
        buffer_rows = int(max(1, min(100_000, target // row_bytes)))
    if buffer_rows < 1:
        raise CerebroError(f"buffer_rows must be positive, got {buffer_rows}")
    _check_buffer_bytes(caps, buffer_rows, row_bytes)
    return num_partitions, buffer_rows


def _write_buffers(
    plpy: Any,
    dataset_id: int,
    parts: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    buffer_rows: int,
    keys: list[int],
) -> None:
    """One ``cerebro.buffers`` row per ``buffer_rows`` rows of each partition, partition p
    under ``__dist_key__`` ``keys[p]``."""
    insert = plpy.prepare(INSERT_BUFFER_SQL, INSERT_BUFFER_TYPES)
    for p, idx in enumerate(parts):
        for b, start in enumerate(range(0, len(idx), buffer_rows)):
            sel = idx[start : start + buffer_rows]
            plpy.execute(
                insert,
                [
                    dataset_id,
                    keys[p],
                    b,
                    len(sel),
                    np.ascontiguousarray(x[sel]).tobytes(),
                    np.ascontiguousarray(y[sel]).tobytes(),
                ],
            )


# ------------------------------------------------------------------------- the features


def _encoding(
    rel: Relation,
    features: list[str],
    like: dict | None,
    like_name: str | None,
    image_size: list[int] | None,
    channels: int | None,
    max_length: int | None,
    vocabulary_size: int | None,
    lowercase: bool | None,
    vocabulary: list[str] | None,
) -> dict[str, Any]:
    """How source rows become tensors: numeric, image (one bytea column), text (one text)."""
    kind = _feature_kind(rel, features)
    given = {
        "image_size": image_size,
        "channels": channels,
        "max_length": max_length,
        "vocabulary": vocabulary,
        "vocabulary_size": vocabulary_size,
        "lowercase": lowercase,
    }
    allowed = {
        "numeric": set(),
        "image": {"image_size", "channels"},
        "text": {"max_length", "vocabulary", "vocabulary_size", "lowercase"},
    }[kind]
    stray = [k for k, v in given.items() if v is not None and k not in allowed]
    if like:
        stray = [k for k, v in given.items() if v is not None]
        enc = dict(like.get("encoding") or {"kind": "numeric"})
        if enc["kind"] != kind:
            raise CerebroError(
                f"dataset {like_name!r} has {enc['kind']} features but "
                f"{features[0] if kind != 'numeric' else 'these'} are {kind}"
            )
        if stray:
            raise CerebroError(
                f"{', '.join(stray)} cannot be given with like_dataset",
                hint=f"the encoding of {like_name!r} is reused as it is",
            )
        return enc
    if stray:
        what = "numeric features" if kind == "numeric" else f"{kind} feature {features[0]!r}"
        raise CerebroError(
            f"{', '.join(stray)} does not apply to {what}",
            hint="image_size/channels are for one bytea column of images; "
            "max_length/vocabulary/vocabulary_size/lowercase for one text "
            "column",
        )
    if kind == "image":
        return encoding.image_encoding(image_size, channels, features[0])
    if kind == "text":
        return encoding.text_encoding(max_length, vocabulary_size, lowercase, features[0])
    return {"kind": "numeric"}


def _feature_kind(rel: Relation, features: list[str]) -> str:
    """``image`` for one bytea column, ``text`` for one text column, else ``numeric`` (and
    then no feature may be bytea or text)."""
    col = rel.columns.get(features[0]) if len(features) == 1 else None
    if col is not None and col.type_name == "bytea":
        return "image"
    if col is not None and col.category == "S":
        return "text"
    for f in features:
        c = rel.columns.get(f)
        if c is not None and (c.type_name == "bytea" or c.category == "S"):
            raise CerebroError(
                f"feature {f!r} has type {c.type_name}; image and text features must be the "
                "only feature of a dataset",
                hint=f"load it alone: features => ARRAY['{f}']",
            )
    return "numeric"


def _features(plpy: Any, rel: Relation, features: list[str], enc: dict[str, Any]) -> _Features:
    """The features' SQL; array features are checked for NULL arrays first (a NULL array has
    no elements to flag, so the decoder could not name the feature)."""
    if enc["kind"] != "numeric":
        return _Features(features, enc, plpy.quote_ident(features[0]), [])
    feature_sql, arrays = _feature_sql(rel, features)
    for f in arrays:
        n_null = plpy.execute(NULL_COUNT_SQL.format(rel=rel.qualified, col=plpy.quote_ident(f)))[
            0
        ]["n"]
        if n_null:
            raise CerebroError(
                f"feature {f!r} is NULL in {n_null} rows of {rel.display}",
                hint="filter or fill NULLs in a view and load that",
            )
    return _Features(features, enc, f"array_send({feature_sql})", arrays)


def _encode_features(
    xs: list[Any], feats: _Features, like: dict[str, Any] | None, vocabulary: list[str] | None
) -> tuple[np.ndarray, list[int], list[str] | None]:
    """The raw values as model input: (x, feature shape, vocabulary of a text dataset).

    A text dataset's vocabulary is the like_dataset's, the one given, or learnt from these
    rows; the encoding records its size.
    """
    enc, first = feats.enc, feats.names[0]
    if enc["kind"] == "numeric":
        x, shape = _decode_features(xs, feats.names, feats.arrays)
        return x, shape, None
    if enc["kind"] == "image":
        x = encoding.decode_images(xs, enc, first)
        return x, list(x.shape[1:]), None
    if like:
        vocab = like["vocabulary"]
    elif vocabulary is not None:
        vocab = encoding.check_vocabulary(list(vocabulary))
    else:
        encoding.check_present(xs, "text", first)
        vocab = encoding.build_vocabulary(xs, enc)
    enc["vocabulary_size"] = len(vocab)
    x = encoding.tokenize(xs, enc, vocab, first)
    return x, list(x.shape[1:]), vocab


def _normalization(
    x: np.ndarray,
    feature_shape: list[int],
    kind: str,
    like: dict[str, Any] | None,
    like_name: str | None,
    method: str,
) -> dict[str, Any]:
    """The like_dataset's normalisation (its shape must match), or one fitted to ``x``:
    ``auto`` standardises flat numeric features and leaves images, text and shaped arrays."""
    if like:
        if list(like["feature_shape"]) != feature_shape:
            raise CerebroError(
                f"features have shape {feature_shape} but dataset {like_name!r} has "
                f"{list(like['feature_shape'])}"
            )
        return like["normalization"]
    if method == "auto":
        method = "standard" if len(feature_shape) == 1 and kind == "numeric" else "none"
    return _fit_normalization(x, method)


def _feature_sql(rel: Relation, features: list[str]) -> tuple[str, list[str]]:
    """One SQL expression yielding a float4[] per row, and the array-typed features."""
    pieces, arrays = [], []
    mixed = len(features) > 1
    for f in features:
        if f in rel.columns:
            c = rel.columns[f]
            if c.category == "A" and c.elem_category == "N":
                arrays.append(f)
                col_sql = f"({expressions.validate(f, rel.columns)[0]})::float4[]"
                # Next to other features an array is flattened; alone it keeps its shape.
                pieces.append(f"array(select unnest({col_sql}))::float4[]" if mixed else col_sql)
                continue
            if c.category not in ("N", "B"):
                raise CerebroError(
                    f"feature {f!r} has type {c.type_name}; features must be numeric columns, "
                    "numeric arrays or numeric expressions",
                    hint="encode text as numbers in a view first (or use it as the label)",
                )
        sql, used = expressions.validate(f, rel.columns)
        for u in used:
            c = rel.columns[u]
            if c.category not in ("N", "B"):
                raise CerebroError(
                    f"feature {f!r} uses column {u!r} of type {c.type_name}; "
                    "features must be numeric"
                )
        pieces.append(f"({sql})::float4")
    if not arrays:
        # one array constructor for all-scalar features: about twice as fast as joining
        # one-element arrays with ||
        return f"array[{', '.join(pieces)}]", arrays
    return " || ".join(p if p.endswith("[]") else f"array[{p}]" for p in pieces), arrays


def _read(plpy: Any, query: str) -> tuple[list[bytes], list[Any]]:
    xs: list[bytes] = []
    ys: list[Any] = []
    cursor = plpy.cursor(query)
    while True:
        rows = cursor.fetch(FETCH_ROWS)
        if not rows:
            break
        for r in rows:
            xs.append(r["x"])
            ys.append(r["y"])
    return xs, ys


def _decode_features(
    xs: list[bytes], features: list[str], array_features: list[str]
) -> tuple[np.ndarray, list[int]]:
    """Decode ``array_send`` output of every row at once into an (n, *shape) float32 array."""
    n = len(xs)
    if any(x is None for x in xs):
        i = next(i for i, x in enumerate(xs) if x is None)
        raise CerebroError(f"features are NULL in row {i + 1} of the source")
    has_null = np.fromiter((x[7] for x in xs), dtype=np.uint8, count=n)  # array_send flag
    if has_null.any():
        rows = np.flatnonzero(has_null)
        pos = _null_position(xs[int(rows[0])])
        raise CerebroError(
            f"feature {_feature_name(pos, features, array_features)} is NULL in "
            f"row {int(rows[0]) + 1} of the source ({len(rows)} rows with NULLs)",
            hint="filter or fill NULLs in a view and load that",
        )
    lengths = np.fromiter((len(x) for x in xs), dtype=np.int64, count=n)
    if (lengths != lengths[0]).any():
        raise CerebroError(
            "array features have different lengths in different rows",
            hint="every row must give the same number of feature values",
        )
    raw = np.frombuffer(b"".join(xs), dtype=np.uint8).reshape(n, int(lengths[0]))
    ndim = int(raw[0, 0:4].view(">i4")[0])
    hlen = 12 + 8 * ndim
    dims = [int(d) for d in raw[0, 12:hlen].view(">i4")[0::2]] if ndim else [0]
    if ndim and not (raw[:, 12:hlen] == raw[0, 12:hlen]).all():
        raise CerebroError("array features have different shapes in different rows")
    values = raw[:, hlen:].copy().view(_ROW).reshape(n, -1)
    x = values["v"].astype("<f4")
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.argwhere(~finite)
        row, pos = int(bad[0][0]), int(bad[0][1])
        raise CerebroError(
            f"feature {_feature_name(pos, features, array_features)} is NaN or "
            f"infinite in row {row + 1} of the source ({len(bad)} values in all)",
            hint="filter or fill them in a view and load that",
        )
    shape = dims if (len(features) == 1 and array_features) else [x.shape[1]]
    return x.reshape([n, *shape]), shape


def _null_position(row: bytes) -> int:
    """Index of the first NULL element in one ``array_send`` value (NULLs have length -1)."""
    ndim = int.from_bytes(row[0:4], "big")
    off, pos = 12 + 8 * ndim, 0
    while off < len(row):
        length = int.from_bytes(row[off : off + 4], "big", signed=True)
        if length < 0:
            return pos
        off, pos = off + 4 + length, pos + 1
    return pos


def _feature_name(pos: int, features: list[str], array_features: list[str]) -> str:
    if not array_features and pos < len(features):
        return repr(features[pos])
    return f"value #{pos + 1}"


def _encode_labels(
    ys: list[Any], task: str, is_integer: bool, like: dict | None, label: str, display: str
) -> tuple[np.ndarray, list | None]:
    if any(v is None for v in ys):
        i = next(i for i, v in enumerate(ys) if v is None)
        raise CerebroError(
            f"label {label!r} is NULL in row {i + 1} of {display}",
            hint="filter out rows without a label in a view and load that",
        )
    if task == "regression":
        y = np.asarray(ys, dtype=np.float64)
        if not np.isfinite(y).all():
            raise CerebroError(f"label {label!r} has NaN or infinite values")
        return y.astype(np.float32), None
    values = (
        np.asarray([int(v) for v in ys], dtype=np.int64)
        if is_integer
        else np.asarray(ys, dtype=object)
    )
    if like:
        classes = like["classes"]
        index = {c: i for i, c in enumerate(classes)}
        try:
            y = np.fromiter((index[v] for v in values.tolist()), dtype=np.int32, count=len(values))
        except KeyError as e:
            raise CerebroError(
                f"label value {e.args[0]!r} is not a class of the like_dataset",
                hint=f"known classes: {classes}",
            ) from None
        return y, classes
    uniq, inverse = np.unique(values, return_inverse=True)
    classes = [int(c) if is_integer else str(c) for c in uniq.tolist()]
    return inverse.astype(np.int32), classes


def _statistics(x: np.ndarray) -> dict[str, Any]:
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] > 4096:  # images: per-feature statistics would be huge
        flat = flat.reshape(-1, 1)
    f64 = flat.astype(np.float64)
    return {
        "min": f64.min(axis=0).tolist(),
        "max": f64.max(axis=0).tolist(),
        "mean": f64.mean(axis=0).tolist(),
        "std": f64.std(axis=0).tolist(),
    }


def _fit_normalization(x: np.ndarray, method: str) -> dict[str, Any]:
    if method == "none":
        return {"method": "none"}
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    std = flat.std(axis=0)
    std[std == 0] = 1.0
    return {"method": "standard", "mean": flat.mean(axis=0).tolist(), "std": std.tolist()}


def _apply_normalization(x: np.ndarray, norm: dict[str, Any]) -> np.ndarray:
    if norm["method"] == "none":
        return x
    shape = x.shape
    mean = np.asarray(norm["mean"], dtype=np.float32)
    std = np.asarray(norm["std"], dtype=np.float32)
    flat = x.reshape(shape[0], -1)
    return ((flat - mean) / std).astype(np.float32).reshape(shape)


def drop_dataset(plpy: Any, name: str) -> bool:
    """``cerebro.drop_dataset``: the dataset and its buffers (the catalog's foreign keys
    refuse to drop one that a workload or a like_dataset still refers to)."""
    if not store.delete_dataset(plpy, name):
        raise CerebroError(f"dataset {name!r} does not exist")
    return True


def featurizer(
    plpy: Any, ds: dict[str, Any], rel: Relation
) -> tuple[str, Callable[[list[Any], int], np.ndarray]]:
    """Encode new rows of ``rel`` exactly as dataset ``ds`` was encoded (for predict).

    Returns the SQL expression that yields one raw ``x`` per row and a function turning a
    batch of raw values (and the 1-based row number of its first row) into model input.
    """
    features = ds["features"]
    enc = ds.get("encoding") or {"kind": "numeric"}
    missing = [f for f in features if enc["kind"] != "numeric" and f not in rel.columns]
    if missing:
        raise CerebroError(
            f"column {missing[0]!r} does not exist in {rel.display}",
            hint=f"the model was trained on features {features}",
        )
    if enc["kind"] == "numeric":
        feature_sql, arrays = _feature_sql(rel, features)
        x_sql = f"array_send({feature_sql})"
    else:
        col = rel.columns[features[0]]
        want = "bytea" if enc["kind"] == "image" else "text"
        if (want == "bytea") != (col.type_name == "bytea") or (
            want == "text" and col.category != "S"
        ):
            raise CerebroError(
                f"column {features[0]!r} of {rel.display} has type "
                f"{col.type_name}; the model reads {enc['kind']} from it"
            )
        x_sql = plpy.quote_ident(features[0])
    shape = list(ds["feature_shape"])

    def encode(xs: list[Any], first_row: int) -> np.ndarray:
        if enc["kind"] == "numeric":
            try:
                x, got = _decode_features(xs, features, arrays)
            except CerebroError as e:
                raise CerebroError(
                    f"{e.message} (batch starting at row {first_row})", hint=e.hint
                ) from None
            if got != shape:
                raise CerebroError(
                    f"features of {rel.display} have shape {got}, the model was trained on {shape}"
                )
        elif enc["kind"] == "image":
            x = encoding.decode_images(xs, enc, features[0], first_row)
        else:
            x = encoding.tokenize(xs, enc, ds["vocabulary"], features[0], first_row)
        return _apply_normalization(x, ds["normalization"])

    return x_sql, encode
