"""Plain-Keras baselines run as separate processes (own TensorFlow thread pools).

    python _plain_worker.py mop-baseline ARRAYS.npz JOB.json   (P2: N configs on one partition)
    python _plain_worker.py optuna JOB.json                      (P7: one Optuna worker)

Both import TensorFlow and build/trace nothing before printing ``ready``, then wait for a line
on stdin (the start signal, so that imports are not timed), run, and print one JSON line with
``rows`` and ``seconds``. ``"loop": "cerebro"`` in the job runs as many steps per call into
TensorFlow as cerebro's training aggregate does (``steps_per_execution``), else one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "udfs"))

SPEC = {"name": "mlp", "kind": "roster", "entry_point": "mlp"}


def main() -> None:
    import numpy as np
    import tensorflow as tf  # noqa: F401  (imported before the start signal)

    from cerebro_udfs import models, training

    def build(params: dict, seed: int) -> object:
        """The model as the job says: Keras's default of one step per call into TensorFlow,
        or (``"loop": "cerebro"``) as many as the training aggregate runs (training.py)."""
        model = models.build_model(SPEC, params, job["dataset"], seed)
        if job.get("loop") == "cerebro":
            training.loop_in_graph(model, {"dataset": job["dataset"]})
        return model

    mode = sys.argv[1]
    job = json.loads(Path(sys.argv[-1]).read_text())
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    rows = 0
    if mode == "mop-baseline":
        data = np.load(sys.argv[2])
        x, y = data["x"], data["y"]
        for i, params in enumerate(job["configs"]):
            model = build(params, i)
            for _ in range(job["epochs"]):
                model.fit(
                    x, y, batch_size=params["batch_size"], epochs=1, shuffle=False, verbose=0
                )
                rows += len(y)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        parts = [np.load(p) for p in job["arrays"]]
        x = np.concatenate([p["x"] for p in parts])
        y = np.concatenate([p["y"] for p in parts])
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(job["journal"])
        )
        study = optuna.load_study(
            study_name="p7",
            storage=storage,
            sampler=optuna.samplers.GridSampler(job["grid"], seed=0),
        )

        def objective(trial: optuna.Trial) -> float:
            nonlocal rows
            params = {
                **job["fixed"],
                **{k: json.loads(trial.suggest_categorical(k, v)) for k, v in job["grid"].items()},
            }
            model = build(params, trial.number)
            hist = model.fit(
                x,
                y,
                batch_size=params["batch_size"],
                epochs=job["epochs"],
                shuffle=False,
                verbose=0,
            )
            rows += len(y) * job["epochs"]
            return float(hist.history["loss"][-1])

        study.optimize(objective, n_trials=job["n_trials"])
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
