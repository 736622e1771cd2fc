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
