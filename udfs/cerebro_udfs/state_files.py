"""Sub-epoch model states kept as files in the server's data directory while they hop.

Why files: a state in ``cerebro.states`` went through TOAST on every hop (written in 2 kB
pieces, read back at ~0.5 GB/s, one more copy each way); a file in the page cache is written
and mapped at memory speed (bench/README.md, "State path"). What stays in the table is a small
*reference*, ``b"CRBSFILE"`` | 16-byte file id | JSON {size, db}, in the same row, upserted in the
same transaction as before, so the row is still the truth: a file no committed row names is
an orphan and is collected (``collect``), a row whose file is gone is a lost state (the epoch
restarts from its checkpoint, as after a crash). Files are immutable and named by a fresh id,
so a half-written file is never a committed one, and no reader sees a file change. Each
database has its own subdirectory (``db``, its oid): its rows name only its own files.

No fsync: ``cerebro.states`` is unlogged, so a server crash forgets every sub-epoch state
anyway (the epoch restarts from its checkpoint); checkpoints never refer to files, they hold
the bytes (``materialize``), in the table, logged, dumped with the database.

Only on one PostgreSQL server: the training statement then runs in the worker backend whose
working directory is the data directory. On Greenplum segments and on nodes the state still
travels as the aggregate's argument (the daemon does not ask for files there).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from typing import Any

from . import interrupts, state
from .errors import CerebroError

MAGIC = b"CRBSFILE"  # SQL knows the layout only through cerebro._state_file (032-state-files)
ID_BYTES = 16
DIRECTORY = "cerebro_states"  # relative to the data directory, every backend's working dir
SUFFIX = ".state"
# states smaller than this stay in the table (a file costs a few syscalls: more than TOAST
# for a tiny model); the daemon passes CEREBRO_STATE_FILE_MIN as the unit's state_file_min
FILE_MIN = 1 << 20


def is_ref(blob: Any) -> bool:
    return blob is not None and bytes(blob[: len(MAGIC)]) == MAGIC


def parse_ref(ref: Any) -> tuple[bytes, dict[str, Any]]:
    ref = bytes(ref)
    if not is_ref(ref):
        raise CerebroError("not a state-file reference")
    return ref[len(MAGIC) : len(MAGIC) + ID_BYTES], json.loads(ref[len(MAGIC) + ID_BYTES :])


def directory(db: int) -> str:
    return os.path.join(DIRECTORY, str(int(db)))


def path_of(file_id: bytes, db: int) -> str:
    return os.path.join(directory(db), file_id.hex() + SUFFIX)


def _path(ref: Any) -> tuple[str, dict[str, Any]]:
    file_id, info = parse_ref(ref)
    return path_of(file_id, info["db"]), info


def write(st: state.ModelState, db: int, pause: str | None = None) -> bytes:
    """Write ``st`` to a new file of database ``db`` and return its reference. The arrays go
    from the model's buffers to the page cache with no copy in Python. ``pause`` (tests
    only): after half the bytes, wait while that file exists, so a test can kill the writer
    mid-write."""
    bufs, size = state.parts(st)
    os.makedirs(directory(db), mode=0o700, exist_ok=True)
    file_id = uuid.uuid4().bytes
    path = path_of(file_id, db)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        written = 0
        for buf in bufs:
            written += _write_all(fd, memoryview(buf).cast("B"))
            if pause and written >= size // 2:
                _wait_while(pause)
                pause = None
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return MAGIC + file_id + json.dumps({"size": size, "db": int(db)}).encode()


def _write_all(fd: int, mv: memoryview) -> int:
    n = 0
    while n < len(mv):
        n += os.write(fd, mv[n : n + (1 << 30)])
    return n


def _wait_while(path: str) -> None:
    """Test hook: hold the half-written file until ``path`` goes away or we are cancelled
    or terminated (the backend's own interrupt flags, as during training)."""
    while os.path.exists(path):
        if interrupts.pending():
            raise CerebroError("state write interrupted", sqlstate="57014")
        time.sleep(0.01)


def open_state(ref: Any) -> memoryview:
    """The state a reference names, mapped from its file (private copy-on-write mapping: the
    arrays decoded from it are writable and the file never changes). Raises StateLost-style
    CerebroError if the file is missing or is not the size the reference says."""
    path, info = _path(ref)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CerebroError(f"model state file {path} is missing", sqlstate="58P01") from None
    try:
        size = os.fstat(fd).st_size
        if size != info["size"]:
            raise CerebroError(
                f"model state file {path} has {size} bytes, its reference says "
                f"{info['size']} (an unfinished write)"
            )
        # private and writable, not populated: pages are mapped from the page cache as they
        # are read (no copy; MAP_POPULATE would copy them all, as if written)
        mm = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return memoryview(mm)


def present(ref: Any) -> bool:
    """Whether the file a reference names is there, whole."""
    path, info = _path(ref)
    try:
        return os.stat(path).st_size == info["size"]
    except FileNotFoundError:
        return False


def materialize(ref: Any) -> bytes:
    """The bytes of the state a reference names (a checkpoint keeps them in its row)."""
    mv = open_state(ref)
    try:
        return bytes(mv)
    finally:
        mv.release()


def remove(ref: Any) -> bool:
    """Delete a reference's file (after the row naming it has gone); False if already gone."""
    path, _info = _path(ref)
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def collect(db: int, referenced: Iterable[bytes], older_than: float) -> int:
    """Delete the files of database ``db`` no reference in ``referenced`` names, if last
    written before ``older_than`` (epoch seconds). The caller takes ``older_than`` before
    reading ``referenced``, no later than the start of any transaction open then: a file
    written later may belong to a transaction that has not committed yet."""
    keep = {parse_ref(r)[0].hex() + SUFFIX for r in referenced if is_ref(r)}
    try:
        names = os.listdir(directory(db))
    except FileNotFoundError:
        return 0
    gone = 0
    for name in names:
        if name in keep or not name.endswith(SUFFIX):
            continue
        path = os.path.join(directory(db), name)
        try:
            if os.stat(path).st_mtime < older_than:
                os.unlink(path)
                gone += 1
        except FileNotFoundError:
            continue
    return gone


def collect_databases(existing: Iterable[int]) -> int:
    """Delete the directories of databases that no longer exist (dropped with their rows)."""
    keep = {str(int(d)) for d in existing}
    try:
        names = os.listdir(DIRECTORY)
    except FileNotFoundError:
        return 0
    gone = 0
    for name in names:
        if name.isdigit() and name not in keep:
            shutil.rmtree(os.path.join(DIRECTORY, name), ignore_errors=True)
            gone += 1
    return gone
