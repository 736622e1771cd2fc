"""The versioned model-state blob that hops between partitions as ``bytea``.

Layout: ``b"CRBSTATE"`` | u32 header length | JSON header | payload. The header carries the
format version, config id, epoch, partitions done, the array table (section, name, dtype,
shape, offset, size) and a CRC32 of the payload. Sections are ``model`` (every model variable,
including dropout seed-generator state) and ``optimizer`` (iteration counter, learning rate,
moments): dropping the optimizer section at a hop is the MADlib bug we must not repeat.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"CRBSTATE"
FORMAT_VERSION = 1
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


def encode(state: ModelState) -> bytes:
    arrays = []
    chunks = []
    offset = 0
    for section, items in (("model", state.model), ("optimizer", state.optimizer)):
        for name, arr in items:
            a = np.asarray(arr, order="C")
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            raw = a.tobytes()
            arrays.append(
                {
                    "section": section,
                    "name": name,
                    "dtype": a.dtype.str,
                    "shape": list(a.shape),
                    "offset": offset,
                    "size": len(raw),
                }
            )
            chunks.append(raw)
            offset += len(raw)
    payload = b"".join(chunks)
    header = {
        "format": FORMAT_VERSION,
        "meta": state.meta,
        "arrays": arrays,
        "crc32": zlib.crc32(payload),
        "payload_size": len(payload),
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, _LEN.pack(len(hbytes)), hbytes, payload])


def read_header(blob: bytes) -> dict[str, Any]:
    mv = memoryview(blob)
    if len(mv) < len(MAGIC) + 4 or bytes(mv[: len(MAGIC)]) != MAGIC:
        raise StateError("not a cerebro model state (bad magic bytes)")
    (hlen,) = _LEN.unpack_from(mv, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(bytes(mv[start : start + hlen]))
    except ValueError as e:
        raise StateError("corrupt model state header") from e
    if header.get("format") != FORMAT_VERSION:
        raise StateError(
            f"model state format {header.get('format')} is not supported "
            f"(this cerebro reads format {FORMAT_VERSION})"
        )
    header["_payload_start"] = start + hlen
    return header


def decode(blob: bytes, verify: bool = True) -> ModelState:
    header = read_header(blob)
    mv = memoryview(blob)[header["_payload_start"] :]
    if len(mv) != header["payload_size"]:
        raise StateError(
            f"model state truncated: payload has {len(mv)} bytes, header says "
            f"{header['payload_size']}"
        )
    if verify and zlib.crc32(mv) != header["crc32"]:
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
    """Snapshot every model variable and every optimizer variable of a Keras model."""
    opt = model.optimizer
    return ModelState(
        model=[(v.path, np.array(v.numpy())) for v in model.variables],
        optimizer=[(v.path, np.array(v.numpy())) for v in opt.variables] if opt else [],
        meta=meta,
    )


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
        v.assign(arr)
