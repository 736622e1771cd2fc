"""P8 (state path): what each stage of a hop costs, and which store is fastest.

(a) Stages, in a plain process, for the ResNet50 + Adam state (283 MB): the path 0.3 took
    (``np.array`` copies at capture, ``tobytes`` + ``join`` + CRC32 at encode, CRC32 at decode,
    Keras ``assign``) against today's (TensorFlow's own reads at capture, one ``join`` or a
    file write with no copy, XXH3-64, a private mapping of the file, TensorFlow ``assign``).
(b) Stores, inside a backend (PL/Python, as the training aggregate runs), for the same
    number of bytes: a ``bytea`` value upserted into an unlogged table and read back (TOAST,
    storage external, as ``cerebro.states``), a large object, and a file in the data
    directory (written, then mapped), each written and read once per hop.

    .venv/bin/python bench/p8_state_path.py [--model resnet50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "udfs"))
import _workload as wl

DB = "cerebro_bench_state_path"
REPS = 3


def _best(f: Any, reps: int = REPS) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _model(name: str) -> Any:
    import keras

    if name == "resnet50":
        m = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    else:
        dense = keras.layers.Dense
        m = keras.Sequential([keras.Input((2,)), dense(2900), dense(2900), dense(2)])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    m.optimizer.build(m.trainable_variables)
    return m


def _old_encode(arrays: list[np.ndarray]) -> bytes:
    raw = [a.tobytes() for a in arrays]
    payload = b"".join(raw)
    zlib.crc32(payload)
    return b"".join([b"HEADER", payload])


def stages(model_name: str, tmp: Path) -> list[tuple[str, float, float]]:
    """(stage, old seconds, new seconds) for one hop of the model's state."""
    from cerebro_udfs import state, state_files

    m = _model(model_name)
    variables = list(m.variables) + list(m.optimizer.variables)
    old_cap, old_arrays = _best(lambda: [np.array(v.numpy()) for v in variables])
    new_cap, st = _best(lambda: state.capture(m, {}))
    old_enc, old_blob = _best(lambda: _old_encode(old_arrays))
    new_enc, blob = _best(lambda: state.encode(st))
    old_dec, _ = _best(lambda: zlib.crc32(old_blob))
    new_dec, back = _best(lambda: state.decode(blob))
    arrays = [a for _, a in back.model] + [a for _, a in back.optimizer]
    old_res, _ = _best(lambda: [v.assign(a) for v, a in zip(variables, arrays, strict=True)])
    new_res, _ = _best(lambda: state.restore(m, back))
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        refs: list[bytes] = []

        def write() -> bytes:
            for r in refs:  # the scheduler deletes the file a hop replaced
                state_files.remove(r)
            refs[:] = [state_files.write(st, 1)]
            return refs[0]

        write_s, ref = _best(write)
        map_s, _ = _best(lambda: state.decode(state_files.open_state(ref)))
        state_files.remove(ref)
    finally:
        os.chdir(cwd)
    return [
        ("capture (variables to arrays)", old_cap, new_cap),
        ("encode to one value (+ checksum)", old_enc, new_enc),
        ("write a state file (+ checksum)", float("nan"), write_s),
        ("decode a value (checksum)", old_dec, new_dec),
        ("map a state file + decode (checksum)", float("nan"), map_s),
        ("restore (arrays to variables)", old_res, new_res),
    ], len(blob)


STORE_PROBE = """
import os, time, uuid
n = {size}
data = os.urandom(1 << 20) * (n >> 20)
out = {{}}
def best(f):
    b = 1e9
    for _ in range({reps}):
        t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
    return b
up = plpy.prepare("insert into bench_states values (1, $1) on conflict (id) do update "
                  "set state = excluded.state", ["bytea"])
out["table write"] = best(lambda: plpy.execute(up, [data]))
rd = "select state from bench_states where id = 1"
out["table read"] = best(lambda: plpy.execute(rd)[0]["state"])
lo = plpy.prepare("select lo_from_bytea(0, $1) as o", ["bytea"])
oids = []
out["large object write"] = best(lambda: oids.append(plpy.execute(lo, [data])[0]["o"]))
get = plpy.prepare("select lo_get($1) as d", ["oid"])
out["large object read"] = best(lambda: plpy.execute(get, [oids[-1]])[0]["d"])
for o in oids:
    plpy.execute(plpy.prepare("select lo_unlink($1)", ["oid"]), [o])
import mmap
path = "cerebro_states/bench-" + uuid.uuid4().hex
os.makedirs("cerebro_states", exist_ok=True)
def w():
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    mv = memoryview(data)
    done = 0
    while done < len(mv):
        done += os.write(fd, mv[done:])
    os.close(fd)
import xxhash
def r():
    fd = os.open(path, os.O_RDONLY)
    mm = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fd)
    xxhash.xxh3_64_intdigest(mm)  # touches every page, as decoding a state does
    mm.close()
def w_fresh():
    if os.path.exists(path):
        os.unlink(path)
    w()
out["file write"] = best(w_fresh)
out["file map"] = best(r)
os.unlink(path)
import json
plpy.notice(json.dumps(out))
"""


def stores(dsn: str, size: int) -> dict[str, float]:
    notices: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        c.execute("create unlogged table bench_states (id int primary key, state bytea)")
        c.execute("alter table bench_states alter column state set storage external")
        body = STORE_PROBE.format(size=size, reps=REPS)
        c.execute(f"do $body$\n{body}\n$body$ language plpython3u")
    import json

    return json.loads(notices[-1])


def run(server: str | None = None, model: str = "resnet50") -> dict:
    import tempfile

    server = server or wl.server_dsn()
    with tempfile.TemporaryDirectory() as tmp:
        rows, size = stages(model, Path(tmp))
    print(f"P8 state path, {model} + Adam state {size / 1e6:.0f} MB (best of {REPS})")
    print(f"{'stage':<36}{'0.3 s':>9}{'now s':>9}{'now MB/s':>10}")
    for name, old, new in rows:
        print(f"{name:<36}{old:>9.3f}{new:>9.3f}{size / 1e6 / new:>10.0f}")
    dsn = wl.fresh_db(server, DB)
    try:
        st = stores(dsn, size)
    finally:
        wl.drop_db(server, DB)
    print(f"stores inside a backend, {size / 1e6:.0f} MB (best of {REPS})")
    for name, s in st.items():
        print(f"{name:<36}{s:>9.3f} s {size / 1e6 / s:>8.0f} MB/s")
    hop_table = st["table write"] + st["table read"]
    hop_file = st["file write"] + st["file map"]
    print(
        f"store per hop: table {hop_table:.3f} s, large object "
        f"{st['large object write'] + st['large object read']:.3f} s, file {hop_file:.3f} s"
    )
    return {
        "id": "P8s",
        "what": "state store per hop, file ÷ table (seconds)",
        "ratio": hop_file / hop_table,
        "target": 1.0,
        "lower_is_better": True,
        "stages": rows,
        "stores": st,
        "bytes": size,
        "median_stage_s": statistics.median(r[2] for r in rows),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50", choices=["resnet50", "mlp"])
    run(model=ap.parse_args().model)
