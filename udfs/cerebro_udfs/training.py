"""The segment-safe training and evaluation aggregates (one MOP sub-epoch / one evaluation).

SQL shape (an ordered-set aggregate, so the model state and config are *direct* arguments,
evaluated once per group and handed to the final function, instead of being copied into
Python for every row)::

    SELECT cerebro.train_subepoch(state, model_spec, config)
           WITHIN GROUP (ORDER BY buffer_id, x, y, num_rows)
      FROM cerebro.buffers WHERE dataset_id = 1 AND __dist_key__ = 0;

The transition function only collects the buffers of the partition (kept in ``GD`` under a
token, since PL/Python cannot return an ``internal`` state); the final function puts them in
``buffer_id`` order, trains one pass with ``model.fit(shuffle=False)`` and returns the new
state. The ordering is ours to do: PostgreSQL does not sort ordered-set aggregate input.
Nothing here touches the database (see :mod:`cerebro_udfs.guard`).
"""

from __future__ import annotations

import itertools
import json
import time
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from . import cache, chunks, devices, interrupts, models, state, state_files
from .errors import CerebroError
from .guard import segment_safe

_tokens = itertools.count(1)
MAX_PENDING = 4


def collect(GD: dict, token: int | None, buffer_id: int, x: bytes, y: bytes, num_rows: int) -> int:
    """Transition function: remember one buffer of the group being aggregated."""
    pending: OrderedDict = GD.setdefault("cerebro.pending", OrderedDict())
    if token is None:
        token = next(_tokens)
        pending[token] = []
        while len(pending) > MAX_PENDING:  # groups of statements that failed midway
            pending.popitem(last=False)
    pending[token].append((buffer_id, x, y, num_rows))
    return token


def _take(GD: dict, token: int | None) -> list[tuple]:
    if token is None:
        return []
    return GD.get("cerebro.pending", {}).pop(token, [])


def _partition_arrays(
    GD: dict, buffers: list[tuple], cfg: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    ds = cfg["dataset"]
    key = cfg.get("cache_key")
    parts = cache.partitions(GD, cfg.get("partition_cache_mb"))
    if key is not None:
        hit = parts.get(key)
        if hit is not None:
            return hit
    if not buffers:
        raise CerebroError("the partition has no rows (wrong dataset_id or partition?)")
    buffers.sort(key=lambda b: b[0])
    shape = tuple(ds["feature_shape"])
    ydtype = np.int32 if ds["task"] == "classification" else np.float32
    if len(buffers) == 1:  # no copy
        x = np.frombuffer(buffers[0][1], dtype="<f4").reshape((buffers[0][3], *shape))
        y = np.frombuffer(buffers[0][2], dtype=ydtype)
    else:
        # One copy into the partition's arrays, each buffer's bytes freed once copied: a
        # sub-epoch that decodes its partition peaks at ~1x its size, not 2x (bytes + arrays).
        rows = sum(b[3] for b in buffers)
        x = np.empty((rows, *shape), dtype="<f4")
        y = np.empty(rows, dtype=ydtype)
        at = 0
        for i, (_, bx, by, n) in enumerate(buffers):
            x[at : at + n] = np.frombuffer(bx, dtype="<f4").reshape((n, *shape))
            y[at : at + n] = np.frombuffer(by, dtype=ydtype)
            at += n
            buffers[i] = ()  # its bytes go now
    if key is not None:
        parts.put(key, (x, y))
    return x, y


BATCHES_MAX_BYTES = 32 << 20  # larger partitions train long enough not to notice


def _fit_input(
    GD: dict, x: np.ndarray, y: np.ndarray, batch_size: int, cfg: dict[str, Any]
) -> dict[str, Any]:
    """``model.fit``'s data: for a cached partition of at most 32 MB, a batched ``tf.data``
    pipeline kept across sub-epochs (cache.batches); else the arrays. The batches are the
    same, in the same order (``shuffle=False``), so are the weights, bit for bit (tested);
    a 32-row partition's ``fit`` takes ~10 ms instead of ~80 ms, a 50,000-row one ~15 % less."""
    key = cfg.get("cache_key")
    if key is None or x.nbytes + y.nbytes > BATCHES_MAX_BYTES:
        return {"x": x, "y": y, "batch_size": batch_size}
    lru = cache.batches(GD)
    hit = lru.get((key, batch_size))
    if hit is not None and hit[0] is x and hit[1] is y:
        return {"x": hit[2]}
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    lru.put((key, batch_size), (x, y, data))
    return {"x": data}


def _model_for(GD: dict, spec: dict, cfg: dict, raw: Any) -> tuple[Any, dict[str, Any]]:
    """A compiled model holding the state ``raw`` (or a fresh seeded init when ``raw`` is
    None), and the meta of that state.

    Compiled models are cached per (definition, params, data shape): reusing one keeps its
    traced train function, which costs far more to rebuild than assigning the weights. A
    cached model whose variables already are the state ``raw`` (this backend wrote that state
    file or returned that inline state from it, or restored it, and nothing has trained it
    since) is used as it is: nothing is restored (a file is not even mapped).
    """
    devices.configure(GD, cfg.get("partition"))  # once per backend, before any model
    params = cfg.get("params", {})
    key = (
        models.spec_key(spec),
        json.dumps(params, sort_keys=True),
        json.dumps(cfg["dataset"], sort_keys=True),
        str(cfg.get("steps_per_execution", "auto")),  # fixed when the model is built
    )
    lru = cache.models(GD)
    model = lru.get(key)
    if raw is None or model is None:
        model = models.build_model(spec, params, cfg["dataset"], cfg.get("seed", 0))
        loop_in_graph(model, cfg)
        lru.put(key, model)
        if raw is None:
            return model, {}
    ref = bytes(raw) if state_files.is_ref(raw) else None
    held = _holds(GD).get(model)
    if ref is not None and held is not None and held[0] == ref:
        return model, held[1]
    if ref is None and held is not None and _holds_inline(raw, held[0]):
        return model, held[1]
    _holds(GD).pop(model, None)
    try:
        st = state.decode(_input_state(GD, raw))
        state.restore(model, st)
    except state.StateError as e:
        raise CerebroError(f"cannot use the given model state: {e}") from None
    holds = ref if ref is not None else _inline_key(raw)
    if holds is not None:
        _holds(GD)[model] = (holds, st.meta)
    return model, st.meta


# "auto" runs this many steps per call into TensorFlow for a small model (see loop_in_graph)
AUTO_STEPS = 32
AUTO_MAX_PARAMS = 1_000_000
AUTO_MAX_ROW_VALUES = 4096


def steps_per_execution(model: Any, cfg: dict[str, Any]) -> int:
    """How many training steps one call into TensorFlow runs. ``cfg["steps_per_execution"]``
    (the scheduler's CEREBRO_STEPS_PER_EXECUTION): a number, or "auto" (the default): 32
    for a model of at most 1M parameters on rows of at most 4,096 values, whose steps take a
    few ms, so that Keras's Python around each step is most of them (a 41k-parameter MLP at
    batch 256 fits 50,000 rows in 0.69 s one step per call, 0.29 s 32 per call); 1 for
    larger models, whose steps are long and gain nothing, so that a cancel is noticed after
    at most one step. A model compiled with its own ``steps_per_execution`` keeps it."""
    want = cfg.get("steps_per_execution", "auto")
    if want != "auto":
        if isinstance(want, bool) or not str(want).isdigit() or int(want) < 1:
            raise CerebroError(
                f"steps_per_execution must be 'auto' or a whole number of 1 or more, got {want!r}"
            )
        return int(want)
    row = 1
    for d in cfg.get("dataset", {}).get("feature_shape", []):
        row *= int(d)
    small = model.count_params() <= AUTO_MAX_PARAMS and row <= AUTO_MAX_ROW_VALUES
    return AUTO_STEPS if small else 1


def loop_in_graph(model: Any, cfg: dict[str, Any]) -> None:
    """Run several steps per call into TensorFlow (Keras's ``steps_per_execution``) on a new
    model. The batches, their order and every update are the same, so are the weights,
    optimizer state and epoch metrics, bit for bit (tested); callbacks (the interrupt
    check) run once per call instead of once per step. The saved compile config (export)
    is the model's own."""
    if getattr(model, "steps_per_execution", 1) != 1:
        return
    n = steps_per_execution(model, cfg)
    if n > 1:
        model.steps_per_execution = n
        model.train_function = model.test_function = None


def _holds(GD: dict) -> weakref.WeakKeyDictionary:
    """Cached model -> (state-file reference or inline key, meta) of the state its variables
    are."""
    return GD.setdefault("cerebro.holds", weakref.WeakKeyDictionary())


def _inline_key(blob: Any) -> tuple | None:
    """What names an inline state (not a file or chunk reference): its payload checksum and
    meta. None for anything else."""
    if blob is None or state_files.is_ref(blob) or chunks.is_ref(blob):
        return None
    try:
        header = state.read_header(blob)
    except state.StateError:
        return None
    if "xxh3" not in header:
        return None  # format 1: not worth a fast path
    return ("xxh3", header["xxh3"], json.dumps(header.get("meta"), sort_keys=True))


def _holds_inline(raw: Any, held_key: Any) -> bool:
    """Whether inline state ``raw`` is the one the model's variables already are (this
    backend returned it from them and nothing has trained them since): same checksum and
    meta, and its payload checks out, so a corrupt copy is still refused by ``decode``."""
    key = _inline_key(raw)
    if key is None or key != held_key:
        return False
    header = state.read_header(raw)
    payload = memoryview(raw)[header["_payload_start"] :]
    return len(payload) == header["payload_size"] and state.checksum_ok(header, payload)


def _parse(spec_json: str | dict, cfg_json: str | dict) -> tuple[dict, dict]:
    spec = json.loads(spec_json) if isinstance(spec_json, str) else spec_json
    cfg = json.loads(cfg_json) if isinstance(cfg_json, str) else cfg_json
    if not spec or not cfg or "dataset" not in cfg:
        raise CerebroError(
            "model spec and config are required (see cerebro.model_spec and "
            "cerebro.subepoch_config)"
        )
    return spec, cfg


def _scalar_logs(logs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in logs.items():
        v = v[-1] if isinstance(v, list) else v
        out[k] = float(v)
    return out


def _input_state(GD: dict, blob: Any) -> Any:
    """The state a unit starts from: inline, assembled from chunks, or mapped from its file."""
    if state_files.is_ref(blob):
        return state_files.open_state(blob)
    return chunks.resolve(GD, blob)


def _output_state(GD: dict, model: Any, meta: dict[str, Any], cfg: dict[str, Any]) -> bytes:
    """The new state as the aggregate returns it: a file's reference when the scheduler asks
    for files (one server) and it is large enough, else the bytes (or a chunk reference)."""
    st = state.capture(model, meta)
    size = sum(a.nbytes for _, a in st.model) + sum(a.nbytes for _, a in st.optimizer)
    db = cfg.get("state_files")  # the database's oid: its own directory of state files
    if db and size >= int(cfg.get("state_file_min", state_files.FILE_MIN)):
        return state_files.write(st, int(db), cfg.get("pause_state_write"))
    return chunks.spill(
        GD, st.to_bytes(), cfg.get("state_inline_max"), cfg.get("state_chunk_bytes")
    )


def train_final(
    plpy: Any, GD: dict, token: int | None, blob: bytes | None, spec_json: str, cfg_json: str
) -> dict[str, Any]:
    """Final function of ``cerebro.train_subepoch``: one pass over one partition."""
    buffers = _take(GD, token)
    with segment_safe(plpy):
        spec, cfg = _parse(spec_json, cfg_json)
        x, y = _partition_arrays(GD, buffers, cfg)
        del buffers
        model, prev = _model_for(GD, spec, cfg, blob)
        _holds(GD).pop(model, None)  # training changes it
        batch_size = int(cfg.get("params", {}).get("batch_size", 64))
        data = _fit_input(GD, x, y, batch_size, cfg)
        t0 = time.perf_counter()
        try:
            hist = model.fit(
                **data,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[interrupts.callback()],
            )
        except interrupts.Interrupted as e:
            raise CerebroError(f"sub-epoch interrupted: {e}", sqlstate="57014") from None
        except Exception as e:  # noqa: BLE001 - user models may raise anything
            raise CerebroError(f"training failed: {type(e).__name__}: {e}") from None
        seconds = time.perf_counter() - t0
        logs = _scalar_logs(hist.history)
        loss = logs.pop("loss", None)
        done = (
            list(prev.get("partitions_done", [])) if prev.get("epoch") == cfg.get("epoch") else []
        )
        if "partition" in cfg:
            done.append(cfg["partition"])
        meta = {
            "config_id": cfg.get("config_id"),
            "epoch": cfg.get("epoch"),
            "partitions_done": done,
        }
        new_state = _output_state(GD, model, meta, cfg)
        if state_files.is_ref(new_state):
            _holds(GD)[model] = (new_state, meta)
        elif (key := _inline_key(new_state)) is not None:
            _holds(GD)[model] = (key, meta)
        return {
            "state": new_state,
            "loss": loss,
            "metrics": json.dumps(logs),
            "rows": int(x.shape[0]),
            "seconds": seconds,
        }


def eval_final(
    plpy: Any, GD: dict, token: int | None, blob: bytes | None, spec_json: str, cfg_json: str
) -> dict[str, Any]:
    """Final function of ``cerebro.evaluate_partition``: loss and metrics of a state."""
    buffers = _take(GD, token)
    with segment_safe(plpy):
        spec, cfg = _parse(spec_json, cfg_json)
        if blob is None:
            raise CerebroError("evaluation needs a model state (got NULL)")
        x, y = _partition_arrays(GD, buffers, cfg)
        del buffers
        model, _meta = _model_for(GD, spec, cfg, blob)
        batch_size = int(cfg.get("params", {}).get("batch_size", 64))
        t0 = time.perf_counter()
        try:
            logs = model.evaluate(
                x,
                y,
                batch_size=max(batch_size, 256),
                verbose=0,
                return_dict=True,
                callbacks=[interrupts.callback()],
            )
        except interrupts.Interrupted as e:
            raise CerebroError(f"evaluation interrupted: {e}", sqlstate="57014") from None
        seconds = time.perf_counter() - t0
        logs = _scalar_logs(logs)
        loss = logs.pop("loss", None)
        return {
            "loss": loss,
            "metrics": json.dumps(logs),
            "rows": int(x.shape[0]),
            "seconds": seconds,
        }
