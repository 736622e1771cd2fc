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


# keras.applications.MobileNetV2(include_top=False, pooling="avg") on 224x224x3, by alpha;
# the input's size and channels change these by less than 0.1%.
_BASE_PARAMS = {
    0.35: 410_208,
    0.5: 706_224,
    0.75: 1_382_064,
    1.0: 2_257_984,
    1.3: 3_766_048,
    1.4: 4_363_712,
}


def widths(params: dict[str, Any]) -> list[int]:
    """Channels of the last convolution: 1280, or 1280 x alpha (to a multiple of 8) above 1."""
    alpha = float(params.get("alpha", 1.0))
    return [1280 if alpha <= 1.0 else int(1280 * alpha + 4) // 8 * 8]


def estimate_params(params: dict[str, Any], ds: dict[str, Any]) -> int:
    """The base network (exact for the schema's alphas, else scaled by alpha^2) and the head."""
    alpha = float(params.get("alpha", 1.0))
    base = _BASE_PARAMS.get(alpha) or round(_BASE_PARAMS[1.0] * alpha**2)
    return base + heads.dense_params(widths(params)[0], heads.outputs(ds))
