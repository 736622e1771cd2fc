"""GPU readiness (issue 15, item 4): which device a worker backend takes, and bench/gpu.sh.

This machine has no GPU: the tests check the CPU path for real (TensorFlow's own device list)
and that the GPU benchmark refuses clearly instead of printing CPU figures.
"""

from __future__ import annotations

import subprocess

import pytest

from cerebro_udfs import devices
from helpers import ROOT


def test_each_worker_takes_one_gpu_round_robin_and_none_without_gpus():
    assert devices.choose(0, 3) is None
    assert [devices.choose(2, p) for p in range(5)] == [0, 1, 0, 1, 0]
    assert devices.choose(4, None) == 0


def _gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def test_configure_takes_the_cpu_here_once_per_backend(monkeypatch):
    monkeypatch.delenv("CEREBRO_GPU", raising=False)
    GD: dict = {}
    n = _gpus()
    expected = "cpu" if n == 0 else f"gpu:{1 % n}"
    assert devices.configure(GD, 1) == expected
    GD["cerebro.device"] = "remembered"  # a second call does not look again
    assert devices.configure(GD, 0) == "remembered"


def test_gpu_off_keeps_the_cpu(monkeypatch):
    monkeypatch.setenv("CEREBRO_GPU", "off")
    assert devices.configure({}, 0) == "cpu"


def test_the_gpu_benchmark_refuses_without_a_gpu():
    if _gpus():
        pytest.skip("this machine has a GPU: bench/gpu.sh would run the benchmarks")
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("bench/gpu.sh: no GPU found: TensorFlow lists no GPU device")
    assert "tensorflow[and-cuda]" in proc.stderr
    assert proc.stdout == ""
