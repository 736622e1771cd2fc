"""A config's params as one short line of text: ``hidden=[128,64] lr=0.01 bs=32``.

Tables (``cerebro top``, the demo's leaderboard, the web UI) give params one column. Dumping
the JSON there either wraps one character per line in a narrow terminal or pushes the other
columns off screen, so every tool summarises through this one pure function: the text never
exceeds the width it is given, the keys that tell configs apart come first and are the last
to go, and the same params always give the same text (rows line up, and a test can compare).

Shortening happens in steps, each only when the previous one does not fit: well-known keys
are always abbreviated (``learning_rate`` -> ``lr``); then long values are shortened (floats
to 3 significant digits, other values cut with an ellipsis); then the keys that are not
distinguishing are dropped from the end (an ellipsis says some were); last, the line is cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ELLIPSIS = "…"

# the params of the roster models and of the usual Keras training loops
KNOWN = {
    "learning_rate": "lr",
    "batch_size": "bs",
    "optimizer": "opt",
    "dropout": "drop",
    "activation": "act",
    "momentum": "mom",
    "weight_decay": "wd",
    "l2_regularization": "l2",
    "l2_reg": "l2",
    "num_layers": "layers",
    "embedding_dim": "emb",
    "epochs": "ep",
}
LONG_KEY = 10  # longer snake_case keys become their initials (``warmup_steps_ratio`` -> wsr)
SHORT_VALUE = 10  # the longest value kept whole once values must shrink


def abbreviate(key: str) -> str:
    """A short, stable name for a key: the known abbreviation, else the initials of a long
    snake_case key, else the key itself."""
    if key in KNOWN:
        return KNOWN[key]
    parts = [p for p in key.split("_") if p]
    if len(key) > LONG_KEY and len(parts) > 1:
        return "".join(p[0] for p in parts)
    return key


def value_text(value: Any, short: bool = False) -> str:
    """A value as compact text: numbers without noise, lists without spaces, strings bare.
    ``short`` trades precision for width (3 significant digits, long values cut)."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, float):
        text = format(value, ".3g" if short else ".6g")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value if value and " " not in value and "=" not in value else json.dumps(value)
    else:
        text = json.dumps(_shorter_floats(value, short), separators=(",", ":"), sort_keys=True)
    if short and len(text) > SHORT_VALUE:
        text = text[: SHORT_VALUE - 1] + ELLIPSIS
    return text


def _shorter_floats(value: Any, short: bool) -> Any:
    """Floats nested in lists/dicts rounded like top-level ones (json.dumps would print them
    with 17 digits)."""
    if isinstance(value, float) and not isinstance(value, bool):
        return float(format(value, ".3g" if short else ".6g"))
    if isinstance(value, list | tuple):
        return [_shorter_floats(v, short) for v in value]
    if isinstance(value, dict):
        return {k: _shorter_floats(v, short) for k, v in value.items()}
    return value


def ordered_keys(params: Mapping[str, Any], first: Sequence[str] = ()) -> list[str]:
    """The distinguishing keys (``first``, in their order) then the others, sorted."""
    head = [k for k in first if k in params]
    return head + sorted(k for k in params if k not in head)


def _names(keys: Sequence[str]) -> dict[str, str]:
    """Each key's display name; keys whose abbreviations collide keep their full names."""
    short = {k: abbreviate(k) for k in keys}
    taken: dict[str, int] = {}
    for name in short.values():
        taken[name] = taken.get(name, 0) + 1
    return {k: (s if (taken[s] == 1 and s not in keys) or s == k else k) for k, s in short.items()}


def summarise(params: Mapping[str, Any], width: int = 40, first: Sequence[str] = ()) -> str:
    """``params`` as one line of at most ``width`` characters; ``first`` names the keys that
    distinguish this config from its neighbours (see ``varying_keys``): shown first, dropped
    last."""
    if width <= 0:
        return ""
    keys = ordered_keys(params, first)
    names = _names(keys)
    for short in (False, True):
        items = [f"{names[k]}={value_text(params[k], short)}" for k in keys]
        line = " ".join(items)
        if len(line) <= width:
            return line
    keep = len([k for k in first if k in params])
    while len(items) > max(keep, 1):
        items.pop()
        line = " ".join([*items, ELLIPSIS])
        if len(line) <= width:
            return line
    line = " ".join(items)
    return line if len(line) <= width else line[: width - 1] + ELLIPSIS


def varying_keys(all_params: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys whose values differ between the given configs (or that only some have),
    sorted: what a summary must keep to tell the rows of a table apart."""
    rows = list(all_params)
    keys = sorted({k for p in rows for k in p})
    return [
        k
        for k in keys
        if len({json.dumps(p.get(k, ELLIPSIS), sort_keys=True) for p in rows}) > 1
        or any(k not in p for p in rows)
    ]
