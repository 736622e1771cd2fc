"""``mlp``: a multi-layer perceptron for tabular data (images are flattened first)."""

from __future__ import annotations

import math
from typing import Any

from . import heads

# Parameter schema stored in cerebro.models (launch validates search spaces against it).
PARAMS: dict[str, dict[str, Any]] = {
    "hidden": {"type": "int_list", "default": [64]},
    "activation": {
        "type": "choice",
        "values": ["relu", "tanh", "gelu", "elu", "sigmoid"],
        "default": "relu",
    },
    "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
    "optimizer": heads.OPTIMIZER,
    "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 1e-3},
    "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 64},
    "weights": heads.WEIGHTS,
}


def build(config: dict[str, Any]) -> Any:
    import keras

    ds = config["dataset"]
    layers: list[Any] = [keras.Input(tuple(ds["feature_shape"]))]
    if len(ds["feature_shape"]) > 1:
        layers.append(keras.layers.Flatten())
    for units in config.get("hidden", PARAMS["hidden"]["default"]):
        layers.append(keras.layers.Dense(int(units), activation=config.get("activation", "relu")))
        if config.get("dropout", 0.0):
            layers.append(keras.layers.Dropout(float(config["dropout"])))
    if ds["task"] == "classification":
        layers.append(keras.layers.Dense(ds["num_classes"], activation="softmax"))
    else:
        layers.append(keras.layers.Dense(1))
    return heads.finish(keras.Sequential(layers, name="mlp"), config, ds, default_lr=1e-3)


def widths(params: dict[str, Any]) -> list[int]:
    """Units of every hidden layer."""
    return [int(u) for u in params.get("hidden", PARAMS["hidden"]["default"])]


def estimate_params(params: dict[str, Any], ds: dict[str, Any]) -> int:
    """Exact: weights and biases of the hidden layers and the head."""
    n_in, total = math.prod(int(d) for d in ds["feature_shape"]), 0
    for units in widths(params):
        total += heads.dense_params(n_in, units)
        n_in = units
    return total + heads.dense_params(n_in, heads.outputs(ds))
