"""``mobilenet``: MobileNetV2 (Sandler et al. 2018) for image classification.

keras.applications.MobileNetV2 with ``weights=None`` (random initialisation, nothing
downloaded) and our own head; at full size (``alpha`` 1.0, 224x224x3, 1000 classes) it has the
reference 3,538,984 parameters. ``alpha`` (the width multiplier) shrinks it.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import heads

PARAMS = {
    "alpha": {"type": "choice", "values": [0.35, 0.5, 0.75, 1.0, 1.3, 1.4], "default": 1.0},
    "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
    "bn_momentum": heads.bn_momentum(0.999),
    "optimizer": heads.OPTIMIZER,
    "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 1e-3},
    "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32},
    "weights": heads.WEIGHTS,
}


def build(config: dict[str, Any]) -> Any:
    import keras

    ds = config["dataset"]
    shape = heads.image_shape(ds, "mobilenet")
    with warnings.catch_warnings():  # "input shape is not 224": irrelevant without weights
        warnings.simplefilter("ignore")
        base = keras.applications.MobileNetV2(
            input_shape=shape,
            alpha=float(config.get("alpha", 1.0)),
            include_top=False,
            weights=None,
            pooling="avg",
        )
    heads.set_bn_momentum(base, config.get("bn_momentum", 0.999))
    x = base.output
    if config.get("dropout"):
        x = keras.layers.Dropout(float(config["dropout"]))(x)
    model = keras.Model(base.input, heads.head(x, ds), name="mobilenet")
    return heads.finish(model, config, ds, default_lr=1e-3)
