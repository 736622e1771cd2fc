"""What every roster model shares: the task head, the optimizer, compiling, initial weights."""

from __future__ import annotations

import os
from typing import Any

OPTIMIZER = {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}
WEIGHTS = {"type": "path", "default": None}


def bn_momentum(default: float) -> dict[str, Any]:
    """Schema of the batch-norm moving-average momentum. The references use 0.99 (ResNet50)
    and 0.999 (MobileNetV2): fine over ImageNet's ~10^5 steps, but after a few hundred steps
    the moving statistics are still mostly their initial values and validation, which uses
    them, sees a different network than training did. Lower it for small datasets."""
    return {"type": "float", "min": 0.0, "max": 0.9999, "default": default}


def set_bn_momentum(model: Any, momentum: float) -> None:
    """Every BatchNormalization layer uses ``momentum`` (read at call time, saved in the
    layer config, so a .keras export keeps it)."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)


def make_optimizer(name: str, learning_rate: float) -> Any:
    import keras

    factories = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    if name not in factories:
        raise ValueError(f"optimizer {name!r} is not known; use one of {sorted(factories)}")
    return factories[name](learning_rate=learning_rate)


def head(features: Any, ds: dict[str, Any]) -> Any:
    """Softmax over the dataset's classes, or one linear output for regression."""
    import keras

    if ds["task"] == "classification":
        return keras.layers.Dense(ds["num_classes"], activation="softmax", name="predictions")(
            features
        )
    return keras.layers.Dense(1, name="prediction")(features)


def finish(model: Any, config: dict[str, Any], ds: dict[str, Any], default_lr: float) -> Any:
    """Compile for the task, then load initial weights from ``config['weights']`` if given."""
    if ds["task"] == "classification":
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        loss, metrics = "mse", ["mae"]
    model.compile(
        optimizer=make_optimizer(
            config.get("optimizer", "adam"), float(config.get("learning_rate", default_lr))
        ),
        loss=loss,
        metrics=metrics,
    )
    path = config.get("weights")
    if path:
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ValueError(f"weights {path!r} is not a file the server can read")
        if not path.endswith((".weights.h5", ".keras")):
            raise ValueError(f"weights {path!r} must be a .weights.h5 or .keras file")
        try:
            model.load_weights(path)
        except Exception as e:  # noqa: BLE001 - say which file did not fit
            raise ValueError(f"weights {path!r} do not fit this model: {e}") from None
    return model


def image_shape(ds: dict[str, Any], model: str) -> tuple[int, int, int]:
    shape = tuple(ds["feature_shape"])
    if len(shape) != 3 or shape[0] < 32 or shape[1] < 32 or shape[2] not in (1, 3):
        raise ValueError(
            f"{model} needs images of at least 32x32 with 1 or 3 channels "
            f"(feature shape [h, w, c]); the dataset has {list(shape)}"
        )
    return shape


def outputs(ds: dict[str, Any]) -> int:
    """Units of the head: the number of classes, or 1 for regression (see :func:`head`)."""
    if ds.get("task") != "classification":
        return 1
    n = ds.get("num_classes")
    if n is None:
        n = len(ds.get("classes") or []) or 1
    return int(n)


def dense_params(n_in: int, n_out: int) -> int:
    """Weights and biases of one Dense layer."""
    return n_in * n_out + n_out
