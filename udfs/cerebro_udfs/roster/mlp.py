"""``mlp``: a multi-layer perceptron for tabular data (images are flattened first)."""

from __future__ import annotations

from typing import Any

# Parameter schema stored in cerebro.models (launch validates search spaces against it).
PARAMS = {
    "hidden": {"type": "int_list", "default": [64]},
    "activation": {"type": "choice", "values": ["relu", "tanh", "gelu", "elu", "sigmoid"],
                   "default": "relu"},
    "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
    "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"],
                  "default": "adam"},
    "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 1e-3},
    "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 64},
}


def make_optimizer(name: str, learning_rate: float) -> Any:
    import keras

    factories = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
                 "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    if name not in factories:
        raise ValueError(f"optimizer {name!r} is not known; use one of {sorted(factories)}")
    return factories[name](learning_rate=learning_rate)


def build(config: dict[str, Any]) -> Any:
    import keras

    ds = config["dataset"]
    layers: list[Any] = [keras.Input(tuple(ds["feature_shape"]))]
    if len(ds["feature_shape"]) > 1:
        layers.append(keras.layers.Flatten())
    for units in config.get("hidden", PARAMS["hidden"]["default"]):
        layers.append(keras.layers.Dense(int(units),
                                         activation=config.get("activation", "relu")))
        if config.get("dropout", 0.0):
            layers.append(keras.layers.Dropout(float(config["dropout"])))
    if ds["task"] == "classification":
        layers.append(keras.layers.Dense(ds["num_classes"], activation="softmax"))
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        layers.append(keras.layers.Dense(1))
        loss, metrics = "mse", ["mae"]
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=make_optimizer(config.get("optimizer", "adam"),
                                 float(config.get("learning_rate", 1e-3))),
        loss=loss, metrics=metrics)
    return model
