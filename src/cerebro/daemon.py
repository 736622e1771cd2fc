"""Running the scheduler as a background daemon of the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .cluster import Cluster


def _pid_file(cluster: Cluster) -> Path:
    return cluster.home / "scheduler.pid"


def running_pid(cluster: Cluster) -> int | None:
    f = _pid_file(cluster)
    try:
        pid = int(f.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_background(cluster: Cluster) -> int:
    """Start ``cerebro scheduler`` detached (idempotent: returns the running one's pid)."""
    pid = running_pid(cluster)
    if pid:
        return pid
    # the child keeps its own copy of the log's descriptor; ours is closed once it started
    with open(cluster.home / "log" / "scheduler.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cerebro.cli",
                "scheduler",
                "--dsn",
                cluster.scheduler_conninfo(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pid_file(cluster).write_text(str(proc.pid))
    return proc.pid


def stop_background(cluster: Cluster, timeout: float = 30.0) -> None:
    pid = running_pid(cluster)
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(cluster).unlink(missing_ok=True)
