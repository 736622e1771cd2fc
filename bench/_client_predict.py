"""The client side of P9, run as its own process (its own TensorFlow thread pools): what a
user does without in-database predict.

    python _client_predict.py DSN MODEL.keras NORM.json OUTPUT_TABLE

Loads the exported ``.keras`` file, then answers commands on stdin, one per line:

    run   -> COPY (select id, f0..) TO STDOUT (binary) into numpy, normalise as the dataset
             does, one ``model.predict`` over all rows, COPY the key, class, probability and
             probabilities into a new OUTPUT_TABLE, commit; replies the seconds
    quit  -> exits

The first ``run`` happens before ``ready`` (imports, tracing). Replies are stdout lines
starting with ``@@`` followed by JSON.
"""

from __future__ import annotations

import json
import sys
import time

import _protocol  # this directory is the script's: sys.path[0]


def main() -> None:
    dsn, model_path, norm_path, table = sys.argv[1:5]
    import keras
    import numpy as np
    import psycopg

    model = keras.models.load_model(model_path)
    with open(norm_path) as f:
        norm = json.loads(f.read())
    mean = np.asarray(norm["mean"], np.float32)
    std = np.asarray(norm["std"], np.float32)
    features = norm["features"]
    cols = ", ".join(features)

    def run() -> float:
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as c:
            c.execute(f"drop table if exists {table}")
            c.execute(
                f"create table {table} (id int, lbl bigint, probability float8, "
                "probabilities float8[])"
            )
            keys, rows = [], []
            with c.cursor().copy(
                f"copy (select id, {cols} from src) to stdout (format binary)"
            ) as cp:
                cp.set_types(["int4"] + ["float4"] * len(features))
                for r in cp.rows():
                    keys.append(r[0])
                    rows.append(r[1:])
            x = (np.asarray(rows, np.float32) - mean) / std
            y = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float64)
            best = y.argmax(axis=1)
            with c.cursor().copy(f"copy {table} from stdin (format binary)") as cp:
                cp.set_types(["int4", "int8", "float8", "float8[]"])
                for k, b, p in zip(keys, best.tolist(), y.tolist(), strict=True):
                    cp.write_row((k, norm["classes"][b], p[b], p))
        return time.perf_counter() - t0

    warm = run()
    _protocol.reply({"ready": True, "warmup_seconds": warm})
    _protocol.serve({"run": lambda: {"seconds": run()}})


if __name__ == "__main__":
    main()
