"""Supervision: ``cerebro up`` runs the scheduler under a small process that restarts it.

The scheduler already survives broken connections, server restarts and errors of its own
(a new session starts after a backoff); the supervisor covers what it cannot: the process
itself ending (``kill -9``, the OOM killer, a bug in the interpreter). It starts
``cerebro scheduler`` as its child, restarts it whenever it exits (with a backoff while it
keeps exiting quickly), and forwards SIGTERM/SIGINT so that ``cerebro down`` stops both.
What it knows is in a small JSON file next to the log, which ``cerebro status`` reads.
On a server that is not the embedded one, systemd plays this part
(contrib/systemd/cerebro-scheduler@.service).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_S = 60.0  # a child that ran this long restarts after the shortest pause
STOP_GRACE_S = 20.0  # after forwarding SIGTERM, how long the child may take to finish


def read_state(path: Path) -> dict[str, Any] | None:
    """The supervisor's state file, or None when there is none (never started)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    except (OSError, ValueError):
        return None


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def supervise(dsn: str, state_file: Path) -> None:
    """Run ``cerebro scheduler --dsn DSN`` for ever, restarting it whenever it exits, until
    SIGTERM/SIGINT (forwarded to the child)."""
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state: dict[str, Any] = {"supervisor_pid": os.getpid(), "since": _now(), "restarts": 0}
    failures = 0
    while not stop.is_set():
        began = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "cerebro.cli", "scheduler", "--dsn", dsn],
            stdin=subprocess.DEVNULL,
        )
        state.update(pid=child.pid, started_at=_now())
        _write_state(state_file, state)
        rc = _wait(child, stop)
        if stop.is_set():
            break
        failures = 0 if time.monotonic() - began > STEADY_S else failures
        delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
        failures += 1
        state.update(restarts=state["restarts"] + 1, last_exit=rc, last_exit_at=_now())
        _write_state(state_file, state)
        print(
            f"{_now()} cerebro.supervisor WARNING scheduler (pid {child.pid}) exited with "
            f"{_describe(rc)}; restarting it in {delay:.0f} s",
            flush=True,
        )
        stop.wait(delay)
    state.update(pid=None, stopped_at=_now())
    _write_state(state_file, state)


def _wait(child: subprocess.Popen[bytes], stop: threading.Event) -> int:
    """The child's exit code; once a stop is requested, it gets STOP_GRACE_S to finish its
    units before it is killed."""
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set():
            try:
                return child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()


def _describe(rc: int) -> str:
    if rc < 0:
        return f"signal {signal.Signals(-rc).name}"
    return f"status {rc}"
