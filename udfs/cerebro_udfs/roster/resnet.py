"""``resnet50``: ResNet-50 v1 (He et al. 2015) for image classification, with size knobs.

The layer structure is keras.applications.ResNet50's (bottleneck blocks [3, 4, 6, 3], biases
in convolutions, batch-norm epsilon 1.001e-5), so at full size on 224x224x3 with 1000 classes
it has the same 25,636,712 parameters; ``width`` and ``blocks`` shrink it for small runs.
Written here rather than taken from keras.applications so that it can shrink, and so that
nothing is ever downloaded: initialisation is random unless ``weights`` names a file.
"""

from __future__ import annotations

from typing import Any

from . import heads

PARAMS = {
    "width": {"type": "int", "min": 4, "max": 256, "default": 64},
    "blocks": {"type": "int_list", "default": [3, 4, 6, 3]},
    "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
    "bn_momentum": heads.bn_momentum(0.99),
    "optimizer": heads.OPTIMIZER,
    "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 1e-3},
    "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32},
    "weights": heads.WEIGHTS,
}
_EPS = 1.001e-5


def _bottleneck(x: Any, filters: int, stride: int, shortcut_conv: bool, name: str) -> Any:
    from keras import layers

    if shortcut_conv:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=_EPS, name=name + "_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = layers.BatchNormalization(epsilon=_EPS, name=name + "_1_bn")(x)
    x = layers.Activation("relu", name=name + "_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=name + "_2_conv")(x)
    x = layers.BatchNormalization(epsilon=_EPS, name=name + "_2_bn")(x)
    x = layers.Activation("relu", name=name + "_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    x = layers.BatchNormalization(epsilon=_EPS, name=name + "_3_bn")(x)
    x = layers.Add(name=name + "_add")([shortcut, x])
    return layers.Activation("relu", name=name + "_out")(x)


def build(config: dict[str, Any]) -> Any:
    import keras
    from keras import layers

    ds = config["dataset"]
    shape = heads.image_shape(ds, "resnet50")
    width = int(config.get("width", 64))
    blocks = [int(b) for b in config.get("blocks", [3, 4, 6, 3])]
    inputs = keras.Input(shape)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(width, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=_EPS, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for s, n in enumerate(blocks):
        for b in range(n):
            x = _bottleneck(
                x,
                width * 2**s,
                stride=(1 if s == 0 or b else 2),
                shortcut_conv=(b == 0),
                name=f"conv{s + 2}_block{b + 1}",
            )
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if config.get("dropout"):
        x = layers.Dropout(float(config["dropout"]))(x)
    model = keras.Model(inputs, heads.head(x, ds), name="resnet50")
    heads.set_bn_momentum(model, config.get("bn_momentum", 0.99))
    return heads.finish(model, config, ds, default_lr=1e-3)


def _conv_bn(n_in: int, n_out: int, kernel: int) -> int:
    """A Conv2D with bias and its BatchNormalization (gamma, beta and the moving mean and
    variance, which ``count_params`` counts too)."""
    return kernel * kernel * n_in * n_out + n_out + 4 * n_out


def widths(params: dict[str, Any]) -> list[int]:
    """Channels of each stage's widest convolution (4 x width x 2^stage)."""
    width = int(params.get("width", 64))
    return [4 * width * 2**s for s in range(len(params.get("blocks", [3, 4, 6, 3])))]


def estimate_params(params: dict[str, Any], ds: dict[str, Any]) -> int:
    """Exact for :func:`build`: the stem, every bottleneck block and the head."""
    shape = list(ds["feature_shape"])
    width = int(params.get("width", 64))
    channels = int(shape[-1]) if len(shape) == 3 else 3
    total = _conv_bn(channels, width, 7)
    n_in = width
    for s, n in enumerate(int(b) for b in params.get("blocks", [3, 4, 6, 3])):
        f = width * 2**s
        for b in range(n):
            if b == 0:
                total += _conv_bn(n_in, 4 * f, 1)
            total += _conv_bn(n_in, f, 1) + _conv_bn(f, f, 3) + _conv_bn(f, 4 * f, 1)
            n_in = 4 * f
    return total + heads.dense_params(n_in, heads.outputs(ds))
