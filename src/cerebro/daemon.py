"""Running the scheduler as a background daemon of the embedded default: the supervisor
(``cerebro supervise``) detached, which runs and restarts ``cerebro scheduler``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .cluster import Cluster
from .supervisor import STOP_GRACE_S


def _pid_file(cluster: Cluster) -> Path:
    """The supervisor's pid (the scheduler's own is in the state file)."""
    return cluster.home / "scheduler.pid"


def state_file(cluster: Cluster) -> Path:
    return cluster.home / "scheduler.json"


def running_pid(cluster: Cluster) -> int | None:
    f = _pid_file(cluster)
    try:
        pid = int(f.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_background(cluster: Cluster) -> int:
    """Start the supervised scheduler detached (idempotent: returns the running supervisor's
    pid)."""
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
                "supervise",
                "--dsn",
                cluster.scheduler_conninfo(),
                "--state",
                str(state_file(cluster)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pid_file(cluster).write_text(str(proc.pid))
    return proc.pid


def stop_background(cluster: Cluster, timeout: float = STOP_GRACE_S + 10) -> None:
    """SIGTERM to the supervisor (it stops the scheduler, which finishes its units); the
    whole process group is killed if that takes longer than ``timeout``."""
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
        os.killpg(pid, signal.SIGKILL)  # started with start_new_session: pgid == pid
    _pid_file(cluster).unlink(missing_ok=True)
