"""Model states larger than one PostgreSQL value (1 GB): stored as chunks, moved through GD.

A BERT-base state with Adam is about 1.3 GB (weights + two moments), more than any ``bytea``
value, function argument or result can hold. Such a state is kept as rows of
``cerebro.state_chunks`` and represented everywhere else (``states.state``,
``checkpoints.state``, the aggregates' state argument and result) by a small *reference*:
``b"CRBCHUNK"`` | 16-byte blob id | JSON {size, crc32, chunks}. Blobs are immutable, so a clone
or a checkpoint can share one reference. This module is the one Python place that knows that
layout; in SQL, ``cerebro._chunk_blob`` and ``cerebro._chunk_info`` (030-training.sql) are.

Moving a large state in and out of the training aggregate uses the backend's ``GD``: before the
training statement, ``cerebro._stash_chunk`` (called once per chunk row, in order) assembles the
blob in this backend; the aggregate's final function finds it there by id, and a larger result
goes back into ``GD`` for ``cerebro._unstash_chunks`` (a set-returning function in the same
statement) to write out as rows. The aggregate itself still reads nothing from the database.
This needs the aggregate to run in the backend that stashes, which holds on PostgreSQL (the
embedded default) but not on Greenplum segments: there, states stay under the inline limit.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from .errors import CerebroError

MAGIC = b"CRBCHUNK"  # SQL knows the layout only through cerebro._chunk_blob / _chunk_info
ID_BYTES = 16
# The environment variables that set the two limits, by the config key the aggregate reads
_ENV = {
    "state_inline_max": "CEREBRO_STATE_INLINE_MAX",
    "state_chunk_bytes": "CEREBRO_STATE_CHUNK_BYTES",
    "state_file_min": "CEREBRO_STATE_FILE_MIN",  # state_files.FILE_MIN
}
_STASH = "cerebro_chunk_stash"


def env_limits() -> dict[str, int]:
    """The state limits set in this process's environment, by config key (unset ones left out).

    The one place the variables are read: the server's backends take them as defaults below,
    and the scheduler daemon passes its own in every unit's config, so that a test can force
    small states through the chunked path without restarting the server.
    """
    return {key: int(os.environ[var]) for key, var in _ENV.items() if os.environ.get(var)}


# A result larger than this leaves the aggregate as chunks (PostgreSQL's hard limit is 1 GB a
# value; half of it leaves room for the copies made on the way).
INLINE_MAX = env_limits().get("state_inline_max", 512 << 20)
CHUNK_BYTES = env_limits().get("state_chunk_bytes", 256 << 20)


def is_ref(blob: bytes | memoryview | None) -> bool:
    return blob is not None and bytes(blob[: len(MAGIC)]) == MAGIC


def make_ref(blob_id: bytes, data: bytes | memoryview, chunk_bytes: int) -> bytes:
    info = {
        "size": len(data),
        "crc32": zlib.crc32(data),
        "chunks": max(1, -(-len(data) // chunk_bytes)),
    }
    return MAGIC + blob_id + json.dumps(info).encode()


def parse_ref(ref: bytes) -> tuple[bytes, dict[str, Any]]:
    ref = bytes(ref)
    if not is_ref(ref):
        raise CerebroError("not a chunked-state reference")
    return ref[len(MAGIC) : len(MAGIC) + ID_BYTES], json.loads(ref[len(MAGIC) + ID_BYTES :])


def _stash(GD: dict) -> dict[bytes, Any]:
    return GD.setdefault(_STASH, {})


# ------------------------------------------------------------------ into the aggregate


def stash_chunk(GD: dict, blob_id: bytes, seq: int, data: bytes, chunks: int) -> int:
    """Append chunk ``seq`` of ``blob_id`` (called in ``seq`` order); returns bytes so far."""
    stash = _stash(GD)
    blob_id = bytes(blob_id)
    if seq == 0:
        stash.clear()  # one state at a time: drop what a failed statement left behind
        stash[blob_id] = {"buf": bytearray(), "next": 0, "chunks": chunks}
    entry = stash.get(blob_id)
    if entry is None or entry["next"] != seq:
        raise CerebroError(f"chunk {seq} of state {blob_id.hex()} arrived out of order")
    entry["buf"] += bytes(data)
    entry["next"] += 1
    return len(entry["buf"])


def resolve(GD: dict, blob: bytes | None) -> bytes | None:
    """The full state for ``blob``: itself, or the stashed blob its reference names."""
    if blob is None or not is_ref(blob):
        return blob
    blob_id, info = parse_ref(blob)
    entry = _stash(GD).pop(blob_id, None)
    if entry is None or entry["next"] != info["chunks"]:
        raise CerebroError(
            f"chunked state {blob_id.hex()} was not stashed in this backend",
            hint="run cerebro._stash_state(reference) first, in the same session",
        )
    data = entry["buf"] if isinstance(entry["buf"], bytes) else bytes(entry["buf"])
    if len(data) != info["size"] or zlib.crc32(data) != info["crc32"]:
        raise CerebroError(
            f"chunked state {blob_id.hex()} is incomplete or corrupt "
            f"({len(data)} of {info['size']} bytes)"
        )
    return data


# ------------------------------------------------------------------ out of the aggregate


def spill(
    GD: dict, data: bytes, inline_max: int | None = None, chunk_bytes: int | None = None
) -> bytes:
    """``data`` itself if small enough, else a reference with the data kept in ``GD``."""
    inline_max = INLINE_MAX if inline_max is None else int(inline_max)
    if len(data) <= inline_max:
        return data
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    blob_id = uuid.uuid4().bytes
    stash = _stash(GD)
    for k in [k for k in stash if k.startswith(b"out:")]:
        del stash[k]  # results of earlier statements that never wrote their chunks
    stash[b"out:" + blob_id] = (data, chunk_bytes)
    return make_ref(blob_id, data, chunk_bytes)


def unstash(GD: dict, ref: bytes | None) -> Iterator[tuple[bytes, int, bytes]]:
    """Rows (blob id, seq, data) of a state ``spill`` kept; nothing for an inline state."""
    if ref is None or not is_ref(ref):
        return
    blob_id, _info = parse_ref(ref)
    kept = _stash(GD).pop(b"out:" + blob_id, None)
    if kept is None:
        raise CerebroError(
            f"chunked state {blob_id.hex()} is not in this backend",
            hint="the aggregate and cerebro._unstash_chunks must run in one statement",
        )
    yield from split(ref, kept[0])


def split(ref: bytes, data: bytes | memoryview) -> Iterator[tuple[bytes, int, bytes]]:
    """The rows (blob id, seq, data) that store ``data`` under the reference ``ref``."""
    blob_id, info = parse_ref(ref)
    step = -(-len(data) // info["chunks"]) if info["chunks"] > 1 else max(len(data), 1)
    mv = memoryview(data)
    for seq in range(info["chunks"]):
        yield blob_id, seq, bytes(mv[seq * step : (seq + 1) * step])


def stash_whole(GD: dict, ref: bytes, data: bytes) -> None:
    """Coordinator side: make ``data`` (already fetched) what ``resolve`` finds for ``ref``."""
    blob_id, info = parse_ref(ref)
    stash = _stash(GD)
    stash.clear()
    stash[blob_id] = {"buf": data, "next": info["chunks"], "chunks": info["chunks"]}


def fetch(plpy: Any, blob: bytes | None) -> bytes | None:
    """Coordinator side: the full state for ``blob``, reading its chunks from the table."""
    if blob is None or not is_ref(blob):
        return blob
    blob_id, info = parse_ref(blob)
    rows = plpy.execute(
        plpy.prepare(
            "select seq, data from cerebro.state_chunks where blob = $1 order by seq", ["bytea"]
        ),
        [blob_id],
    )
    data = b"".join(bytes(r["data"]) for r in rows)
    if (
        len(rows) != info["chunks"]
        or len(data) != info["size"]
        or zlib.crc32(data) != info["crc32"]
    ):
        raise CerebroError(
            f"chunked state {blob_id.hex()} is incomplete or corrupt "
            f"({len(rows)} of {info['chunks']} chunks)"
        )
    return data
