"""The built-in model roster: name -> build(config) returning a compiled keras.Model, and each
model's parameter schema (stored in ``cerebro.models.param_schema``; a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import mlp, mobilenet, resnet, transformer

ROSTER: dict[str, Callable[[dict[str, Any]], Any]] = {
    "mlp": mlp.build,
    "resnet50": resnet.build,
    "mobilenet": mobilenet.build,
    "bert_base": transformer.build_bert,
    "distilbert": transformer.build_distilbert,
}
PARAMS: dict[str, dict[str, Any]] = {
    "mlp": mlp.PARAMS,
    "resnet50": resnet.PARAMS,
    "mobilenet": mobilenet.PARAMS,
    "bert_base": transformer.BERT_PARAMS,
    "distilbert": transformer.DISTILBERT_PARAMS,
}
# Sizes of a config, before anything is built (launch checks them against cerebro.limits):
# the estimated parameter count for a dataset (feature_shape, task, num_classes,
# vocabulary_size as models.dataset_meta gives them) and the units of each layer.
ESTIMATES: dict[str, Callable[[dict[str, Any], dict[str, Any]], int]] = {
    "mlp": mlp.estimate_params,
    "resnet50": resnet.estimate_params,
    "mobilenet": mobilenet.estimate_params,
    "bert_base": transformer.estimate_bert,
    "distilbert": transformer.estimate_distilbert,
}
WIDTHS: dict[str, Callable[[dict[str, Any]], list[int]]] = {
    "mlp": mlp.widths,
    "resnet50": resnet.widths,
    "mobilenet": mobilenet.widths,
    "bert_base": transformer.widths,
    "distilbert": transformer.widths,
}
