"""Turning image bytes and text into fixed-shape float32 feature tensors.

A dataset remembers its encoding (``cerebro.datasets.encoding`` and ``vocabulary``) so that a
validation set loaded ``like_dataset``, ``cerebro.evaluate`` and ``cerebro.predict`` encode new
rows exactly as the training rows were encoded. Images are decoded with Pillow (PNG, JPEG and
whatever else Pillow reads), converted to RGB or grayscale, resized and scaled to [0, 1]. Text
goes through a BERT-style WordPiece tokenizer (Hugging Face ``tokenizers``): lower-casing,
punctuation splitting, ``[CLS] ... [SEP]``, truncation and ``[PAD]`` = 0 padding, so a model
can mask padding by testing ``id != 0``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from .errors import CerebroError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEFAULT_MAX_LENGTH = 128
DEFAULT_VOCABULARY_SIZE = 8000


def check_present(values: list[Any], what: str, column: str, first_row: int = 1) -> None:
    """One clear error for the first NULL image or text."""
    for i, v in enumerate(values):
        if v is None:
            raise CerebroError(
                f"{what} {column!r} is NULL in row {first_row + i} of the source",
                hint="filter those rows (or coalesce them) in a view and load that",
            )


# ---------------------------------------------------------------- images


def image_encoding(
    image_size: list[int] | None, channels: int | None, column: str
) -> dict[str, Any]:
    if image_size is None:
        raise CerebroError(
            f"feature {column!r} holds image bytes; say what size to decode to",
            hint="image_size => ARRAY[height, width], e.g. ARRAY[64, 64]",
        )
    # the largest side is a cap in cerebro.limits (max_image_side), checked by packing
    if len(image_size) != 2 or any(v is None or int(v) < 8 for v in image_size):
        raise CerebroError(
            f"image_size must be [height, width], each at least 8, got {list(image_size)}"
        )
    channels = 3 if channels is None else int(channels)
    if channels not in (1, 3):
        raise CerebroError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    return {
        "kind": "image",
        "size": [int(v) for v in image_size],
        "channels": channels,
        "scale": "1/255",
    }


def decode_images(
    values: Iterable[bytes | None], enc: dict[str, Any], column: str, first_row: int = 1
) -> np.ndarray:
    """Decode, convert and resize every image; returns (n, h, w, c) float32 in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    h, w = enc["size"]
    mode = "RGB" if enc["channels"] == 3 else "L"
    out: list[np.ndarray] = []
    given = list(values)
    check_present(given, "image", column, first_row)
    for i, raw in enumerate(cast(list[bytes], given)):  # none is NULL: checked above
        try:
            with Image.open(io.BytesIO(bytes(raw))) as opened:
                img = opened.convert(mode)
                if img.size != (w, h):
                    img = img.resize((w, h), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise CerebroError(
                f"image {column!r} in row {first_row + i} of the source cannot be decoded: {e}",
                hint="images are PNG, JPEG, GIF, BMP, TIFF or WebP bytes",
            ) from None
        out.append(arr.reshape(h, w, enc["channels"]))
    if not out:
        return np.zeros((0, h, w, enc["channels"]), dtype=np.float32)
    return np.stack(out).astype(np.float32) / np.float32(255.0)


# ---------------------------------------------------------------- text


def text_encoding(
    max_length: int | None, vocabulary_size: int | None, lowercase: bool | None, column: str
) -> dict[str, Any]:
    # the upper bounds are caps in cerebro.limits (max_text_length, max_vocabulary_size),
    # checked by packing
    max_length = DEFAULT_MAX_LENGTH if max_length is None else int(max_length)
    if max_length < 4:
        raise CerebroError(f"max_length must be at least 4 tokens, got {max_length}")
    vocabulary_size = DEFAULT_VOCABULARY_SIZE if vocabulary_size is None else int(vocabulary_size)
    if vocabulary_size < 100:
        raise CerebroError(f"vocabulary_size must be at least 100, got {vocabulary_size}")
    return {
        "kind": "text",
        "max_length": max_length,
        "vocabulary_size": vocabulary_size,
        "lowercase": True if lowercase is None else bool(lowercase),
    }


def build_vocabulary(texts: list[str], enc: dict[str, Any]) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``enc['vocabulary_size']`` tokens.

    The texts are sorted first so the vocabulary does not depend on the order a table's rows
    happened to come back in.
    """
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=enc["lowercase"])
    tok.train_from_iterator(
        sorted(texts),
        vocab_size=enc["vocabulary_size"],
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    vocab = tok.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def check_vocabulary(vocabulary: list[str]) -> list[str]:
    """A user's vocabulary (one token per entry, id = position)."""
    if not vocabulary:
        raise CerebroError(
            "vocabulary is empty", hint="pass one token per array element, '[PAD]' first"
        )
    if any(not isinstance(t, str) or not t for t in vocabulary):
        raise CerebroError("vocabulary entries must be non-empty strings")
    if len(set(vocabulary)) != len(vocabulary):
        dup = next(t for t in vocabulary if vocabulary.count(t) > 1)
        raise CerebroError(f"vocabulary has token {dup!r} more than once")
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocabulary]
    if missing or vocabulary[0] != "[PAD]":
        raise CerebroError(
            "vocabulary must start with '[PAD]' and contain '[UNK]', '[CLS]' "
            "and '[SEP]'" + (f" (missing {missing})" if missing else ""),
            hint="a BERT vocab.txt has them; padding is id 0",
        )
    return list(vocabulary)


def tokenize(
    texts: list[str | None],
    enc: dict[str, Any],
    vocabulary: list[str],
    column: str,
    first_row: int = 1,
) -> np.ndarray:
    """Token ids, (n, max_length) float32 (ids < 2**24 are exact in float32)."""
    from tokenizers import BertWordPieceTokenizer

    check_present(texts, "text", column, first_row)
    n = enc["max_length"]
    tok = BertWordPieceTokenizer(
        vocab={t: i for i, t in enumerate(vocabulary)}, lowercase=enc["lowercase"]
    )
    tok.enable_truncation(max_length=n)
    tok.enable_padding(length=n, pad_id=0, pad_token="[PAD]")
    ids = [e.ids for e in tok.encode_batch(list(texts))]
    if not ids:
        return np.zeros((0, n), dtype=np.float32)
    return np.asarray(ids, dtype=np.float32)
