"""cerebro.params_text: a config's params as one short line (pure: no server)."""

from __future__ import annotations

import itertools

import pytest

from cerebro.params_text import ELLIPSIS, abbreviate, summarise, value_text, varying_keys

DEMO = {"hidden": [128, 64], "learning_rate": 0.01, "batch_size": 32}
# what _prepare_params leaves in a roster config: the searched keys and the model's fixed ones
FULL = {
    "hidden": [128, 64],
    "learning_rate": 0.001,
    "batch_size": 128,
    "optimizer": "adam",
    "activation": "relu",
    "dropout": 0.0,
    "warmup_steps_ratio": 0.1,
    "loss": "sparse_categorical_crossentropy",
}


def test_the_demo_example_reads_as_expected():
    assert summarise(DEMO, 40, first=["hidden", "learning_rate", "batch_size"]) == (
        "hidden=[128,64] lr=0.01 bs=32"
    )
    assert abbreviate("warmup_steps_ratio") == "wsr"
    assert abbreviate("hidden") == "hidden"


@pytest.mark.parametrize("width", [1, 2, 5, 12, 20, 29, 33, 50, 80, 200])
def test_every_summary_fits_its_width_on_one_line(width):
    for params in (DEMO, FULL, {}, {"x": "a" * 300}, {"deep": {"a": [1.123456789] * 40}}):
        text = summarise(params, width, first=["hidden", "learning_rate"])
        assert len(text) <= width
        assert "\n" not in text
        if params and width >= 1:
            assert text  # never silently empty


def test_distinguishing_values_survive_a_narrow_width():
    """A grid of 8 configs summarised at 32 characters: every row still says which config it
    is (distinct texts), and the constant keys are what went."""
    grid = [
        {**FULL, "hidden": h, "learning_rate": lr, "batch_size": bs}
        for h, lr, bs in itertools.product([[32], [128, 64]], [0.001, 0.01], [32, 128])
    ]
    first = varying_keys(grid)
    assert first == ["batch_size", "hidden", "learning_rate"]
    texts = [summarise(p, 32, first=first) for p in grid]
    assert len(set(texts)) == len(grid), texts
    for p, t in zip(grid, texts):
        assert f"lr={p['learning_rate']:g}" in t
        assert f"bs={p['batch_size']}" in t
        assert "hidden=" + value_text(p["hidden"]) in t
        assert "optimizer" not in t and "opt=" not in t  # constant: dropped first
        # a little more room: the ellipsis says that keys were left out
        assert summarise(p, 36, first=first).endswith(" " + ELLIPSIS)
    # with room, the constant keys are shown too (abbreviated), after the varying ones
    wide = summarise(grid[0], 200, first=first)
    assert wide.startswith("bs=32 hidden=[32] lr=0.001 ")
    assert "opt=adam" in wide and "act=relu" in wide and ELLIPSIS not in wide


def test_summaries_are_stable():
    """Same params, any key order, any call: the same text (rows line up in a table)."""
    shuffled = dict(reversed(list(FULL.items())))
    for width in (25, 40, 120):
        assert summarise(FULL, width) == summarise(shuffled, width)
        assert summarise(FULL, width, first=["dropout"]) == summarise(
            dict(FULL), width, first=["dropout"]
        )
    assert summarise(FULL, 25).startswith("act=relu")  # no first: sorted keys


def test_values_are_compact():
    assert value_text([128, 64]) == "[128,64]"
    assert value_text(1e-05) == "1e-05"
    assert value_text(0.0031234567) == "0.00312346"
    assert value_text(0.0031234567, short=True) == "0.00312"
    assert value_text(True) == "true" and value_text(None) == "null"
    assert value_text("adam") == "adam" and value_text("a b") == '"a b"'
    assert value_text("x" * 40, short=True) == "x" * 9 + ELLIPSIS
    # a long float value is shortened only when the full line does not fit
    p = {"learning_rate": 0.0031234567, "batch_size": 32}
    assert summarise(p, 40) == "bs=32 lr=0.00312346"
    assert summarise(p, 16) == "bs=32 lr=0.00312"


def test_colliding_abbreviations_keep_full_names():
    p = {"lr": 0.1, "learning_rate": 0.2}
    assert summarise(p, 80) == "learning_rate=0.2 lr=0.1"
    p2 = {"weight_decay_rate": 1, "warmup_delay_ratio": 2}
    assert summarise(p2, 80) == "warmup_delay_ratio=2 weight_decay_rate=1"
