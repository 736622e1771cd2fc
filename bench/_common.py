"""Shared helpers of the benchmarks: the DSN, medians, the server's thread settings."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# one polling helper for tests and benchmarks, tests/helpers.py (its timeout error is both
# a TimeoutError and an AssertionError)
sys.path.insert(0, str(ROOT / "tests"))
from helpers import fresh_database as fresh_database  # noqa: E402  (re-exported)
from helpers import scheduler_dsn as scheduler_dsn  # noqa: E402  (re-exported)
from helpers import wait_for as wait_for  # noqa: E402  (re-exported)

# Environment variables that decide TensorFlow's / BLAS's thread pools. The embedded server
# passes these through to PL/Python (see cerebro.cluster._SERVER_ENV_KEYS).
THREAD_KEYS = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "KERAS_BACKEND",
    "TF_CPP_MIN_LOG_LEVEL",
)


def dsn() -> str:
    """CEREBRO_DSN if set, else the embedded default cluster's conninfo."""
    env = os.environ.get("CEREBRO_DSN")
    if env:
        return env
    sys.path.insert(0, str(ROOT / "src"))
    from cerebro.cluster import Cluster

    return Cluster.default().conninfo()


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def server_env(conn) -> dict | None:
    """The thread-related environment and CPU count of a server backend (None if unknown).

    Needs plpython3u in pg_temp, i.e. a superuser connection; other users get None.
    """
    keys = json.dumps(list(THREAD_KEYS))
    try:
        conn.execute(
            "create or replace function pg_temp.bench_server_env() returns text "
            "language plpython3u as $$\nimport os, json\n"
            f"keys = {keys}\n"
            "aff = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None\n"
            "return json.dumps({'env': {k: os.environ[k] for k in keys if k in os.environ},\n"
            "                   'cpu_count': os.cpu_count(), 'affinity': aff,\n"
            "                   'nice': os.nice(0)})\n$$"
        )
        return json.loads(conn.execute("select pg_temp.bench_server_env()").fetchone()[0])
    except Exception:  # noqa: BLE001 - not a superuser, or no plpython3u
        return None


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def _proc_jiffies(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads
    except (OSError, ValueError, IndexError):
        return None


def backend_pid(conn) -> int | None:
    """The server backend's pid if it is a process of this machine, else None."""
    pid = conn.execute("select pg_backend_pid()").fetchone()[0]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().startswith(b"postgres"):
                return int(pid)
    except OSError:
        pass
    return None


def server_aux_pids() -> list[int]:
    """Local PostgreSQL background processes (WAL writer, checkpointer, background writer).

    They work for our loads too, so their CPU does not count as competing work.
    """
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"postgres: ") and any(
            k in cmd for k in (b"walwriter", b"checkpointer", b"background writer")
        ):
            out.append(int(d))
    return out


class CpuWatch:
    """CPU time used by *other* processes while the benchmark runs (Linux /proc only).

    ``pids`` are ours (client, server backend, helper processes); everything else the
    machine did in the meantime competed with the measurement.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._sample()

    def _sample(self) -> tuple[int, int, int] | None:
        try:
            busy, total = _cpu_times()
        except (OSError, ValueError, IndexError):
            return None
        ours = 0
        for pid in self.pids:
            j = _proc_jiffies(pid)
            if j is None:
                return None
            ours += j
        return busy, total, ours

    def report(self) -> str | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        cpus = os.cpu_count() or 1
        wall = (end[1] - self.start[1]) / cpus / self.hz
        foreign = max(0, (end[0] - self.start[0]) - (end[2] - self.start[2])) / self.hz
        share = foreign / max(1e-9, wall * cpus)
        text = (
            f"other processes used {foreign:.1f} CPU-s during the {wall:.0f} s of runs "
            f"({share:.0%} of the machine)"
        )
        if share > 0.05:
            text += ": the figures are disturbed by concurrent work"
        return text
