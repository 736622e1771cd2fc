"""Which device a worker backend trains on (issue 15, item 4: GPU ready).

TensorFlow takes every GPU it sees and, by default, all of each GPU's memory, at the first
operation of the process. A server with several GPUs runs one worker backend per partition,
so each backend must claim one GPU, and only the memory it uses: ``configure`` gives the
backend of worker j GPU ``j mod n``, with memory growth on. It runs on the backend's first
unit, which the scheduler makes worker j's own partition j (its later units may train any
partition on one server: the backend keeps the GPU it took). On a machine without a GPU it
does nothing, and CPU training is unchanged. ``CEREBRO_GPU=off`` in the server's environment
keeps TensorFlow on the CPU even when GPUs exist.

It runs once per backend, before the first model is built there; a backend whose TensorFlow
was already initialised (e.g. by ``cerebro.predict`` earlier in the session) keeps TensorFlow's
default placement, and says so in the result of ``configure``.
"""

from __future__ import annotations

import os
from typing import Any

_DONE = "cerebro.device"


def choose(n_gpus: int, partition: int | None) -> int | None:
    """The GPU index for the worker of ``partition`` among ``n_gpus``; None: the CPU."""
    if n_gpus <= 0:
        return None
    return (partition or 0) % n_gpus


def configure(GD: dict, partition: int | None) -> str:
    """Pick this backend's device once (see the module docstring); returns what it chose:
    'cpu', 'gpu:<i>', or 'default: <why>' when TensorFlow was already running."""
    done = GD.get(_DONE)
    if done is not None:
        return str(done)
    GD[_DONE] = chosen = _configure(partition)
    return chosen


def _configure(partition: int | None) -> str:
    if os.environ.get("CEREBRO_GPU", "").lower() == "off":
        return "cpu"
    import tensorflow as tf

    gpus: list[Any] = tf.config.list_physical_devices("GPU")
    i = choose(len(gpus), partition)
    if i is None:
        return "cpu"
    try:
        tf.config.set_visible_devices(gpus[i], "GPU")
        tf.config.experimental.set_memory_growth(gpus[i], True)
    except RuntimeError as e:  # TensorFlow already initialised its devices in this process
        return f"default: {e}"
    return f"gpu:{i}"
