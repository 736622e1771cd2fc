"""The plain-Keras side of P1, run as its own process (its own TensorFlow thread pools).

    python _plain_keras.py ARRAYS.npz CONFIG.json

Builds the same model the database builds (cerebro_udfs.models.build_model with the roster
'mlp', the same params, dataset metadata and seed), runs one warm-up ``fit`` over the arrays
(imports, tracing), then answers commands on stdin, one per line:

    fit   -> one model.fit(x, y, batch_size, epochs=1, shuffle=False); replies the seconds
    quit  -> exits

Replies are stdout lines starting with ``@@`` followed by JSON (anything else is noise).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import _protocol  # this directory is the script's: sys.path[0]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "udfs"))


def main() -> None:
    arrays_path, config_path = sys.argv[1], sys.argv[2]
    cfg = json.loads(Path(config_path).read_text())
    t0 = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    from cerebro_udfs import models

    data = np.load(arrays_path)
    x, y = data["x"], data["y"]
    spec = {"name": "mlp", "kind": "roster", "entry_point": "mlp"}
    model = models.build_model(spec, cfg["params"], cfg["dataset"], cfg["seed"])
    batch_size = int(cfg["params"]["batch_size"])

    def fit() -> float:
        s = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - s

    warm = fit()
    _protocol.reply(
        {
            "ready": True,
            "rows": int(x.shape[0]),
            "params": int(model.count_params()),
            "startup_seconds": time.perf_counter() - t0,
            "warmup_seconds": warm,
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    )
    _protocol.serve({"fit": lambda: {"seconds": fit()}})


if __name__ == "__main__":
    main()
