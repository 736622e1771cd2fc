"""bench/timeline.py: attributing a workload's wall time from hand-made unit rows (pure)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "timeline.py"
_SPEC = importlib.util.spec_from_file_location("bench_timeline", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
timeline = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = timeline  # dataclasses look their module up
_SPEC.loader.exec_module(timeline)
U = timeline.UnitRow


def _check_sums(att):
    for w, t in att.items():
        total = sum(t[c] for c in timeline.CATEGORIES)
        assert total == pytest.approx(t["wall"] if w != "all" else att["all"]["wall"]), w


def test_two_configs_on_two_workers_hop_without_waiting():
    # config 1: w0 then w1; config 2: w1 then w0; one epoch, no validation
    units = [
        U(0, 1, "train", 1, 0, 0.5, 1.5, 0.9),
        U(1, 2, "train", 1, 1, 0.6, 1.6, 0.8),
        U(1, 1, "train", 1, 1, 1.7, 2.7, 0.95),
        U(0, 2, "train", 1, 0, 1.62, 2.5, 0.8),
    ]
    att = timeline.attribute(units, 0.0, 3.0)
    w0, w1 = att[0], att[1]
    assert w0["startup"] == pytest.approx(0.5)
    assert w0["fit"] == pytest.approx(1.7)
    assert w0["overhead"] == pytest.approx(0.1 + 0.08)
    # w0 free at 1.5, config 2 free at 1.6, started 1.62: 0.1 s waiting, 0.02 s turnaround
    assert w0["mop_wait"] == pytest.approx(0.1)
    assert w0["turnaround"] == pytest.approx(0.02)
    assert w0["tail"] == pytest.approx(0.5)
    # w1 free at 1.6, config 1 free since 1.5: all 0.1 s is turnaround
    assert w1["mop_wait"] == 0
    assert w1["turnaround"] == pytest.approx(0.1)
    assert w1["tail"] == pytest.approx(0.3)
    assert att["all"]["units"] == 4
    _check_sums(att)


def test_epoch_boundary_eval_and_lost_units():
    units = [
        U(0, 1, "train", 1, 0, 0.1, 1.0, 0.8),
        U(1, 1, "valid", 1, 1, 1.05, 1.3, 0.2),
        # a lost unit, then the config's epoch 2 waits on w0 for its valid unit on w1
        U(1, 2, "train", 1, 1, 0.2, 0.4, 0.0, ok=False),
        U(0, 1, "train", 2, 0, 1.5, 2.0, 0.4),
    ]
    att = timeline.attribute(units)  # end = last unit end
    w0, w1 = att[0], att[1]
    assert w0["wall"] == pytest.approx(2.0)
    # w0 free at 1.0; config 1 free at 1.3 (its valid unit), a new epoch: 0.3 s epoch wait
    assert w0["epoch_wait"] == pytest.approx(0.3)
    assert w0["turnaround"] == pytest.approx(0.2)
    assert w1["lost"] == pytest.approx(0.2)
    assert w1["eval"] == pytest.approx(0.25)
    # w1's second unit: config 1 was busy on w0 until 1.0, w1 free at 0.4
    assert w1["mop_wait"] == pytest.approx(0.6)
    assert w1["turnaround"] == pytest.approx(0.05)
    assert w1["tail"] == pytest.approx(0.7)
    _check_sums(att)


def test_startup_split_and_table():
    # one config, two workers: worker 1 can only start once the config left worker 0
    units = [U(0, 7, "train", 1, 0, 0.3, 1.3, 1.0), U(1, 7, "train", 1, 1, 1.35, 2.35, 1.0)]
    att = timeline.attribute(units)
    assert att[0]["startup"] == pytest.approx(0.3)
    assert att[1]["startup"] == pytest.approx(0.05)
    assert att[1]["mop_wait"] == pytest.approx(1.3)
    assert att[0]["tail"] == pytest.approx(1.05)
    _check_sums(att)
    text = timeline.table(units)
    assert "mop_wait" in text and "share" in text
    assert timeline.gaps_ms(units) == []
