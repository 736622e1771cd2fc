#!/usr/bin/env bash
# P1, P2 and P8 on a GPU machine, in one command: bash bench/gpu.sh
#
# Prints the same table as `make bench`, for the three benchmarks a GPU changes: training
# throughput in the database vs plain Keras (P1), MOP vs K plain processes (P2) and the state
# hop per roster model (P8). Worker backends pick one GPU each with memory growth on
# (udfs/cerebro_udfs/devices.py). Refuses (exit 3) when TensorFlow sees no GPU, rather than
# printing CPU figures under a GPU heading.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if [ ! -x "$py" ]; then
    echo "bench/gpu.sh: no .venv here: run 'make setup' first" >&2
    exit 3
fi
probe='import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
print(len(tf.config.list_physical_devices("GPU")))'
gpus=$("$py" -c "$probe" 2>/dev/null | tail -n 1 || true)
if [ -z "$gpus" ] || [ "$gpus" = 0 ]; then
    why="TensorFlow lists no GPU device on this machine"
    command -v nvidia-smi >/dev/null 2>&1 || why="$why, and nvidia-smi is not installed"
    echo "bench/gpu.sh: no GPU found: $why. These benchmarks would measure the CPU" \
        "(make bench does that). On a GPU machine: install the NVIDIA driver and a" \
        "TensorFlow with CUDA (.venv/bin/pip install 'tensorflow[and-cuda]'), then run" \
        "bash bench/gpu.sh again." >&2
    exit 3
fi
echo "bench/gpu.sh: TensorFlow sees $gpus GPU(s)"
.venv/bin/cerebro up
exec "$py" bench/run.py P1 P2 P8
