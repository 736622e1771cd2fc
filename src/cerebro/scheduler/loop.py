"""The loop: plan units onto idle workers, collect finished ones, wake up on NOTIFY.

``Scheduler.run`` takes leadership, recovers, then loops: every turn it beats its heart,
re-plans when something changed (a unit finished, a NOTIFY arrived, or the poll interval
passed), hands each idle worker the unit ``schedule.pick`` chooses, and waits for the first
of: a unit finishing, a notification, the poll timeout. Units run on a thread pool, one per
worker at most; an unexpected error in a unit stops the daemon (a supervisor restarts it and
recovery makes the tables consistent).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..schedule import ConfigView, pick
from . import leadership
from . import statements as S
from .connections import Workers, connect
from .planning import Planner
from .recovery import recover
from .runner import UnitRunner
from .unit import Unit

log = logging.getLogger("cerebro.scheduler")

HEARTBEAT_S = 5.0
SHORT_WAIT_S = 0.05  # while units run, or a re-plan is due soon


@dataclass
class _Turn:
    """What the loop carries from one turn to the next."""

    running: dict[int, tuple[Future[str], Unit]] = field(default_factory=dict)  # worker -> unit
    configs: list[ConfigView] = field(default_factory=list)
    dirty: bool = True  # something changed since the last plan
    last_refresh: float = 0.0
    last_beat: float = 0.0


class Scheduler:
    def __init__(
        self,
        dsn: str,
        workers: int | None = None,
        once: bool = False,
        poll: float = 1.0,
        seed: int = 0,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.fixed_workers = workers
        self.once = once
        self.poll = poll
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.conn: psycopg.Connection | None = None
        self.workers = Workers(dsn)
        self.runner = UnitRunner(self.workers, on_epoch or (lambda info: None))

    def run(self) -> None:
        self.conn = connect(self.dsn, "cerebro scheduler")
        listener = connect(self.dsn, "cerebro listener")
        listener.execute(S.LISTEN)
        try:
            leadership.acquire(self.conn, self.stop_event, len(self.workers))
            if self.stop_event.is_set():
                return
            recover(self.conn)
            self._loop(Planner(self.conn), listener)
        finally:
            self.workers.close()
            listener.close()
            self.conn.close()

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()

    def _loop(self, planner: Planner, listener: psycopg.Connection) -> None:
        turn = _Turn()
        pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cerebro-worker")
        try:
            while True:
                now = time.monotonic()
                self._beat(turn, now)
                if self.stop_event.is_set() and not turn.running:
                    break
                if (
                    turn.dirty or now - turn.last_refresh > self.poll
                ) and not self.stop_event.is_set():
                    self._plan(turn, planner, pool, now)
                if self.once and not turn.running and not turn.configs and not turn.dirty:
                    break
                if turn.running:
                    self._collect(turn, listener)
                else:
                    self._idle(turn, listener)
        finally:
            pool.shutdown(wait=True)

    def _beat(self, turn: _Turn, now: float) -> None:
        if now - turn.last_beat > HEARTBEAT_S:
            assert self.conn is not None
            leadership.heartbeat(self.conn, "leader", len(self.workers))
            turn.last_beat = now

    def _plan(self, turn: _Turn, planner: Planner, pool: ThreadPoolExecutor, now: float) -> None:
        """Re-read the runnable configs and start a unit on every idle worker that has one."""
        turn.configs = planner.runnable()
        turn.dirty, turn.last_refresh = False, now
        busy = {u.view.config_id for _, u in turn.running.values()}
        for j in range(self._worker_count(turn.configs)):
            if j in turn.running:
                continue
            choice = pick(turn.configs, j, busy, self.rng)
            if choice is None:
                continue
            view, kind = choice
            unit = Unit(view, kind, j, j)
            busy.add(view.config_id)
            turn.running[j] = (pool.submit(self.runner.run, unit), unit)

    def _collect(self, turn: _Turn, listener: psycopg.Connection) -> None:
        """Wait briefly for a unit to finish; a finished unit or a notification means
        re-plan."""
        done, _ = wait(
            [f for f, _ in turn.running.values()],
            timeout=SHORT_WAIT_S,
            return_when=FIRST_COMPLETED,
        )
        for j in [j for j, (f, _) in turn.running.items() if f in done]:
            fut, unit = turn.running.pop(j)
            outcome = fut.result()  # unexpected errors stop the daemon
            log.debug("unit %s %s", unit, outcome)
            turn.dirty = True
        if list(listener.notifies(timeout=0, stop_after=1)):
            turn.dirty = True

    def _idle(self, turn: _Turn, listener: psycopg.Connection) -> None:
        """Nothing runs: sleep until a notification, or the poll interval."""
        if self.once and turn.configs:
            # runnable configs but none fits an idle worker: replan shortly
            turn.dirty = True
        wait_s = SHORT_WAIT_S if turn.dirty else self.poll
        if list(listener.notifies(timeout=wait_s, stop_after=1)):
            turn.dirty = True

    def _worker_count(self, configs: list[ConfigView]) -> int:
        if self.fixed_workers:
            return self.fixed_workers
        return max([max(c.n_train, c.n_valid) for c in configs] or [0])


def serve(dsn: str, workers: int | None = None, once: bool = False, poll: float = 1.0) -> None:
    """Run a scheduler in the foreground until SIGTERM/SIGINT (or, with ``once``, done)."""
    sched = Scheduler(
        dsn,
        workers=workers,
        once=once,
        poll=poll,
        on_epoch=lambda i: log.info(
            "config %(config_id)s epoch %(epoch)s: train_loss %(train_loss).4f "
            "valid_loss %(valid_loss)s %(status)s",
            i,
        ),
    )
    signal.signal(signal.SIGTERM, sched.request_stop)
    signal.signal(signal.SIGINT, sched.request_stop)
    sched.run()
