"""The versioned model-state blob that hops between partitions as ``bytea``.

Layout: ``b"CRBSTATE"`` | u32 header length | JSON header | payload. The header carries the
format version, config id, epoch, partitions done, the array table (section, name, dtype,
shape, offset, size) and a checksum of the payload. Sections are ``model`` (every model
variable, including dropout seed-generator state) and ``optimizer`` (iteration counter,
learning rate, moments): dropping the optimizer section at a hop is the MADlib bug we must not
repeat.

A hop must run at memory speed (DESIGN.md, "State path"), so the payload is never assembled
array by array: ``parts`` gives the header and a zero-copy byte view of every array, which
``encode`` joins with one copy and ``state_files.write`` writes to a file with none in Python.
Format 2 checks the payload with XXH3-64 (~18 GB/s here, against ~3 GB/s for zlib's CRC32,
which was a third of a ResNet50 hop's budget); format 1 states (CRC32) are still read.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

MAGIC = b"CRBSTATE"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # 1: CRC32 of the payload (0.2, 0.3); 2: XXH3-64
_LEN = struct.Struct("<I")


class StateError(ValueError):
    pass


@dataclass
class ModelState:
    model: list[tuple[str, np.ndarray]]
    optimizer: list[tuple[str, np.ndarray]]
    meta: dict[str, Any] = field(default_factory=dict)  # config_id, epoch, partitions_done

    def to_bytes(self) -> bytes:
        return encode(self)


def _bytes_of(arr: Any) -> memoryview:
    """A flat little-endian byte view of ``arr`` (a copy only if it is not C-ordered LE)."""
    a = np.ascontiguousarray(arr)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return memoryview(a.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def parts(state: ModelState) -> tuple[list[Any], int]:
    """The encoded state as buffers (prefix + header, then each array's bytes, no copies)
    and its total size."""
    arrays = []
    views = []
    digest = xxhash.xxh3_64()
    offset = 0
    for section, items in (("model", state.model), ("optimizer", state.optimizer)):
        for name, arr in items:
            raw = _bytes_of(arr)
            dtype = np.asarray(arr).dtype.newbyteorder("<")
            arrays.append(
                {
                    "section": section,
                    "name": name,
                    "dtype": dtype.str,
                    "shape": list(np.shape(arr)),
                    "offset": offset,
                    "size": raw.nbytes,
                }
            )
            digest.update(raw)
            views.append(raw)
            offset += raw.nbytes
    header = {
        "format": FORMAT_VERSION,
        "meta": state.meta,
        "arrays": arrays,
        "xxh3": digest.intdigest(),
        "payload_size": offset,
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    prefix = MAGIC + _LEN.pack(len(hbytes)) + hbytes
    return [prefix, *views], len(prefix) + offset


def encode(state: ModelState) -> bytes:
    """The state as one ``bytes`` value: the arrays are copied once, into the result."""
    bufs, _size = parts(state)
    return b"".join(bufs)


def read_header(blob: bytes | memoryview) -> dict[str, Any]:
    mv = memoryview(blob)
    if len(mv) < len(MAGIC) + 4 or bytes(mv[: len(MAGIC)]) != MAGIC:
        raise StateError("not a cerebro model state (bad magic bytes)")
    (hlen,) = _LEN.unpack_from(mv, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(bytes(mv[start : start + hlen]))
    except ValueError as e:
        raise StateError("corrupt model state header") from e
    if header.get("format") not in READABLE_FORMATS:
        raise StateError(
            f"model state format {header.get('format')} is not supported "
            f"(this cerebro reads formats {', '.join(map(str, READABLE_FORMATS))})"
        )
    header["_payload_start"] = start + hlen
    return header


def checksum_ok(header: dict[str, Any], payload: Any) -> bool:
    """Whether ``payload`` is what the header's checksum says (XXH3-64, or CRC32 in format 1)."""
    if header["format"] == 1:
        return zlib.crc32(payload) == header["crc32"]
    return xxhash.xxh3_64_intdigest(payload) == header["xxh3"]


def decode(blob: bytes | memoryview, verify: bool = True) -> ModelState:
    """The arrays of ``blob`` as read-only views on it (no copy): ``blob`` may be ``bytes``
    or a memory-mapped state file (state_files.open_state)."""
    header = read_header(blob)
    mv = memoryview(blob)[header["_payload_start"] :]
    if len(mv) != header["payload_size"]:
        raise StateError(
            f"model state truncated: payload has {len(mv)} bytes, header says "
            f"{header['payload_size']}"
        )
    if verify and not checksum_ok(header, mv):
        raise StateError("model state checksum mismatch (corrupt state)")
    out: dict[str, list[tuple[str, np.ndarray]]] = {"model": [], "optimizer": []}
    for a in header["arrays"]:
        arr = np.frombuffer(
            mv, dtype=np.dtype(a["dtype"]), count=_count(a), offset=a["offset"]
        ).reshape(a["shape"])
        out[a["section"]].append((a["name"], arr))
    return ModelState(out["model"], out["optimizer"], header.get("meta", {}))


def _count(a: dict[str, Any]) -> int:
    n = 1
    for d in a["shape"]:
        n *= d
    return n


def capture(model: Any, meta: dict[str, Any]) -> ModelState:
    """Snapshot every model variable and every optimizer variable of a Keras model.

    The arrays are TensorFlow's own reads of the variables: a read shares the variable's
    buffer and TensorFlow copies on the next write to it (copy-on-write), so the snapshot
    stays what it was when taken without a copy here."""
    opt = model.optimizer
    return ModelState(
        model=[(v.path, _value(v)) for v in model.variables],
        optimizer=[(v.path, _value(v)) for v in opt.variables] if opt else [],
        meta=meta,
    )


def _value(v: Any) -> np.ndarray:
    backing: Any = getattr(v, "value", None)
    if hasattr(backing, "read_value"):  # the TensorFlow variable behind a Keras 3 variable
        # a view on the tensor TensorFlow read (``.numpy()`` would copy it): the variable's
        # next update copies first while the read is alive (checked in tests/test_state.py)
        return np.asarray(backing.read_value())
    return np.array(v.numpy())


def restore(model: Any, state: ModelState) -> None:
    """Load a snapshot into a model built from the same config.

    The optimizer is built first so that its moment variables exist; then every variable is
    assigned by position, after checking that names and shapes agree (a state from another
    architecture must fail loudly, not half-load).
    """
    _assign(list(model.variables), state.model, "model")
    opt = model.optimizer
    if state.optimizer:
        if opt is None:
            raise StateError("state has optimizer variables but the model is not compiled")
        if len(opt.variables) != len(state.optimizer):
            opt.build(model.trainable_variables)
        _assign(list(opt.variables), state.optimizer, "optimizer")


def _assign(variables: list[Any], saved: list[tuple[str, np.ndarray]], section: str) -> None:
    """Assign saved arrays by position. The optimizer's learning rate is not restored: it comes
    from the config's parameters, so a clone with a new learning_rate really uses it."""
    if len(variables) != len(saved):
        raise StateError(
            f"state does not fit the model: {len(saved)} {section} variables saved, "
            f"model has {len(variables)}"
        )
    for v, (name, arr) in zip(variables, saved, strict=True):
        if tuple(v.shape) != tuple(arr.shape):
            raise StateError(
                f"state does not fit the model: {section} variable {name} has shape "
                f"{tuple(arr.shape)}, model variable {v.path} has {tuple(v.shape)}"
            )
    for v, (name, arr) in zip(variables, saved, strict=True):
        if section == "optimizer" and name.endswith("/learning_rate"):
            continue
        _set(v, arr)


def _set(v: Any, arr: np.ndarray) -> None:
    """Assign to the TensorFlow variable behind a Keras variable when the dtypes agree (Keras's
    own checks, made by ``_assign`` already, cost as much as the copy); else through Keras.
    The array is copied once, into a tensor the variable takes, and nothing is read back."""
    backing: Any = getattr(v, "value", None)
    if hasattr(backing, "assign") and getattr(backing.dtype, "as_numpy_dtype", None) == arr.dtype:
        import tensorflow as tf  # loaded already: the variable is TensorFlow's

        backing.assign(tf.constant(arr), read_value=False)
    else:
        v.assign(arr)
