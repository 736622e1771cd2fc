"""``bert_base`` and ``distilbert``: Transformer encoders for text classification.

Built from Keras' own layers only (Embedding, MultiHeadAttention, LayerNormalization, Dense),
so an exported ``.keras`` file loads in plain Keras with no import of ours. Inputs are the
token ids ``load_dataset`` produced from a text column (float32, ``[PAD]`` = 0): padding is
masked out of attention. Post-layer-norm encoder blocks with GELU feed-forward layers, as in
BERT. At the defaults the encoders are the real sizes — with a 30,522-token vocabulary and
512 positions BERT-base has 109,482,240 parameters (with its pooler) and DistilBERT
66,362,880 — and ``num_layers``, ``hidden_dim``, ``num_heads``, ``intermediate_dim`` shrink
them. The vocabulary size comes from the dataset (its WordPiece vocabulary) unless
``vocabulary_size`` is given. Random initialisation unless ``weights`` names a file.
"""

from __future__ import annotations

from typing import Any

from . import heads


def _params(layers: int, lr: float) -> dict[str, Any]:
    return {
        "num_layers": {"type": "int", "min": 1, "max": 48, "default": layers},
        "num_heads": {"type": "int", "min": 1, "max": 64, "default": 12},
        "hidden_dim": {"type": "int", "min": 8, "max": 4096, "default": 768},
        "intermediate_dim": {"type": "int", "min": 8, "max": 16384, "default": 3072},
        "max_positions": {"type": "int", "min": 8, "max": 8192, "default": 512},
        "vocabulary_size": {"type": "int", "min": 16, "max": 1000000, "default": None},
        "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.1},
        "optimizer": heads.OPTIMIZER,
        "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": lr},
        "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32},
        "weights": heads.WEIGHTS,
    }


BERT_PARAMS = _params(12, 1e-4)
DISTILBERT_PARAMS = _params(6, 1e-4)
DEFAULT_VOCABULARY = 30522


def _with_defaults(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v["default"] for k, v in params.items()}, **config}


def _encoder(
    config: dict[str, Any], ds: dict[str, Any], token_types: bool, name: str
) -> tuple[Any, Any]:
    """Inputs and the encoder's last hidden states (batch, length, hidden)."""
    import keras
    from keras import layers, ops

    shape = list(ds["feature_shape"])
    if len(shape) != 1:
        raise ValueError(
            f"{name} reads token ids (feature shape [length]); the dataset has "
            f"{shape}: load a text column with max_length"
        )
    length = shape[0]
    hidden = int(config.get("hidden_dim", 768))
    n_heads = int(config.get("num_heads", 12))
    if hidden % n_heads:
        raise ValueError(f"hidden_dim {hidden} is not a multiple of num_heads {n_heads}")
    positions = int(config.get("max_positions", 512))
    if length > positions:
        raise ValueError(f"rows have {length} tokens but max_positions is {positions}")
    vocab = int(config.get("vocabulary_size") or ds.get("vocabulary_size") or DEFAULT_VOCABULARY)
    inter = int(config.get("intermediate_dim", 3072))
    rate = float(config.get("dropout", 0.1))

    inputs = keras.Input((length,), name="token_ids")
    ids = ops.cast(inputs, "int32")
    x = layers.Embedding(vocab, hidden, name="token_embedding")(ids)
    pos_ids = ops.cumsum(ops.ones_like(ids), axis=1) - 1
    x = x + layers.Embedding(positions, hidden, name="position_embedding")(pos_ids)
    if token_types:  # one segment: every token has type 0
        x = x + layers.Embedding(2, hidden, name="segment_embedding")(ops.zeros_like(ids))
    x = layers.LayerNormalization(epsilon=1e-12, name="embeddings_layer_norm")(x)
    x = layers.Dropout(rate)(x)
    mask = ops.expand_dims(ops.not_equal(ids, 0), axis=1)  # (batch, 1, length)
    for i in range(int(config.get("num_layers", 12))):
        attn = layers.MultiHeadAttention(
            n_heads, hidden // n_heads, dropout=rate, name=f"layer{i}_attention"
        )(x, x, attention_mask=mask)
        x = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_attention_norm")(
            x + layers.Dropout(rate)(attn)
        )
        ff = layers.Dense(inter, activation="gelu", name=f"layer{i}_intermediate")(x)
        ff = layers.Dense(hidden, name=f"layer{i}_output")(ff)
        x = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_output_norm")(
            x + layers.Dropout(rate)(ff)
        )
    return inputs, x


def build_bert(config: dict[str, Any]) -> Any:
    import keras
    from keras import layers

    ds = config["dataset"]
    config = _with_defaults(config, BERT_PARAMS)
    inputs, x = _encoder(config, ds, token_types=True, name="bert_base")
    pooled = layers.Dense(int(config.get("hidden_dim", 768)), activation="tanh", name="pooler")(
        x[:, 0]
    )  # the [CLS] token
    pooled = layers.Dropout(float(config.get("dropout", 0.1)))(pooled)
    model = keras.Model(inputs, heads.head(pooled, ds), name="bert_base")
    return heads.finish(model, config, ds, default_lr=1e-4)


def build_distilbert(config: dict[str, Any]) -> Any:
    import keras
    from keras import layers

    ds = config["dataset"]
    config = _with_defaults(config, DISTILBERT_PARAMS)
    inputs, x = _encoder(config, ds, token_types=False, name="distilbert")
    h = layers.Dense(int(config.get("hidden_dim", 768)), activation="relu", name="pre_classifier")(
        x[:, 0]
    )
    h = layers.Dropout(float(config.get("dropout", 0.1)))(h)
    model = keras.Model(inputs, heads.head(h, ds), name="distilbert")
    return heads.finish(model, config, ds, default_lr=1e-4)


def widths(params: dict[str, Any]) -> list[int]:
    """The hidden and the feed-forward (intermediate) sizes."""
    return [int(params.get("hidden_dim") or 768), int(params.get("intermediate_dim") or 3072)]


def _estimate(params: dict[str, Any], ds: dict[str, Any], token_types: bool) -> int:
    """Exact for :func:`_encoder` plus the pooler (or pre-classifier) and the head."""
    hidden, inter = widths(params)
    layers = int(params.get("num_layers") or 12)
    positions = int(params.get("max_positions") or 512)
    vocab = int(params.get("vocabulary_size") or ds.get("vocabulary_size") or DEFAULT_VOCABULARY)
    embeddings = (vocab + positions + (2 if token_types else 0)) * hidden + 2 * hidden
    attention = 4 * heads.dense_params(hidden, hidden)
    feed_forward = heads.dense_params(hidden, inter) + heads.dense_params(inter, hidden)
    per_layer = attention + feed_forward + 2 * 2 * hidden  # and two layer norms
    top = heads.dense_params(hidden, hidden) + heads.dense_params(hidden, heads.outputs(ds))
    return embeddings + layers * per_layer + top


def estimate_bert(params: dict[str, Any], ds: dict[str, Any]) -> int:
    return _estimate(_with_defaults(params, BERT_PARAMS), ds, token_types=True)


def estimate_distilbert(params: dict[str, Any], ds: dict[str, Any]) -> int:
    return _estimate(_with_defaults(params, DISTILBERT_PARAMS), ds, token_types=False)
