"""The loop: plan units onto idle workers, collect finished ones, wake up on NOTIFY.

``Scheduler.run`` takes leadership, recovers, then loops: every turn it beats its heart,
re-plans when something changed (a unit finished, a NOTIFY arrived, or the poll interval
passed), hands each idle worker the unit ``schedule.pick`` chooses, and waits for the first
of: a unit finishing, a notification, the poll timeout. Units run on a thread pool, one per
worker at most.

Which worker runs a unit: on Greenplum/Cloudberry and when partitions are placed on nodes,
worker *j* runs partition *j*'s units (MOP: the model hops to the data). On one PostgreSQL
server every backend reads every partition, so once a worker's backend has taken its device
on its own partition, it runs any config's next unit (``schedule.pick_any``), preferring the
configs whose compiled model it holds: a config is then built and traced on few backends
instead of on every one, and a worker never idles while a config that is not running has
work. The order in which a config visits its partitions is the same either way (same seed,
same weights). ``CEREBRO_SCHEDULE=mop`` in the daemon's environment keeps worker *j* on
partition *j* everywhere.

Placements and nodes are read again only after a notification, news of a node, a shipment,
or ``PLACEMENT_S`` (a database without nodes has none to read per unit).

Nothing ends the process but a stop request (or, with ``once``, running out of work). A broken
connection, a server restart or crash, a failed connection attempt or an unexpected exception
ends only the current *session*: the next one reconnects after a backoff, takes leadership
again, recovers from the tables and goes on. The error is logged and reported in the
scheduler's row of ``cerebro.schedulers`` (``last_error``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cerebro_udfs.engine import detect

from ..schedule import ConfigView, pick, pick_any
from . import leadership
from . import statements as S
from .connections import Listener, Workers, connect, error_message, one
from .housekeeping import housekeep
from .placement import Placement, Shipper
from .planning import Planner
from .recovery import recover
from .runner import UnitRunner
from .unit import Unit

log = logging.getLogger("cerebro.scheduler")

HEARTBEAT_S = 5.0
SHORT_WAIT_S = 0.05  # while units run, or a re-plan is due soon
# between sessions: growing while they keep failing before they lead (the server is down),
# from the shortest again after one that led
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
DEFER_S = 5.0  # a deferred unit's config waits this long before it is planned again
# retention and keep_checkpoints (housekeeping.py) run this often; CEREBRO_HOUSEKEEPING_S in
# the environment changes it, 0 turns it off
HOUSEKEEPING_S = 300.0
PLACEMENT_S = 10.0  # placements and nodes are read again at least this often


@dataclass
class _Turn:
    """What the loop carries from one turn to the next."""

    running: dict[int, tuple[Future[str], Unit]] = field(default_factory=dict)  # worker -> unit
    configs: list[ConfigView] = field(default_factory=list)
    dirty: bool = True  # something changed since the last plan
    # the configs must be read again (else a plan uses them as advanced in memory by the
    # units that committed mid-epoch since the last read, at most ``poll`` seconds ago)
    stale: bool = True
    news: bool = True  # a notification (or a new session): read placements and nodes again
    placement: Placement | None = None
    placement_at: float = 0.0
    last_refresh: float = 0.0
    last_beat: float = 0.0
    last_housekeeping: float | None = None  # None: not yet in this session (runs first)
    deferred: dict[int, float] = field(default_factory=dict)  # config -> not before (monotonic)


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
        self.health = leadership.Health()
        self.led = False  # the current session has taken leadership and recovered
        self.housekeeping_s = float(os.environ.get("CEREBRO_HOUSEKEEPING_S", HOUSEKEEPING_S))
        self.runner = UnitRunner(self.workers, on_epoch or (lambda info: None))
        # nodes: which are away (not before this monotonic time are they tried again)
        self.node_retry: dict[str, float] = {}
        self.shipper = Shipper(self._record_node)
        # worker -> (its backend's pid, configs whose model that backend has built): the
        # backends outlive sessions, so this does too
        self.models_on: dict[int, tuple[int, set[int]]] = {}
        self.strict_mop = os.environ.get("CEREBRO_SCHEDULE", "").lower() == "mop"

    def run(self) -> None:
        """Serve until stopped: sessions one after the other, with a growing backoff while
        they fail (with ``once``, an error ends the run instead: it is a tool, not a
        daemon)."""
        failures = 0
        try:
            while not self.stop_event.is_set():
                self.led = False
                try:
                    self._session()
                    return
                except Exception as e:
                    if self.once:
                        raise
                    if self.led:  # the session worked: this is a new fault, not the same one
                        failures = 0
                    delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                    if _server_coming_back(e):
                        delay = BACKOFF_S[0]  # it says so itself: try again soon
                    else:
                        failures += 1
                    self._report(e, delay)
                    self.stop_event.wait(delay)
        finally:
            self.workers.close()
            self.shipper.close()

    def _session(self) -> None:
        """One session: connect, take leadership, recover, loop. Its leader and listener
        connections are closed when it ends, however it ends; the worker connections stay
        open for the next session (warm caches), and ``run`` closes them when it returns."""
        listener = Listener(self.dsn, S.LISTEN)
        try:
            self.conn = connect(self.dsn, "cerebro scheduler")
            self.runner.mpp = detect(one(self.conn, S.VERSION)[0]).mpp
            listener.notified(0)  # LISTEN before the first plan: nothing is missed
            leadership.acquire(self.conn, self.stop_event, self.health, len(self.workers))
            if not self.stop_event.is_set():
                recover(self.conn, self.workers.keep_alive())
                self.led = True
                self._loop(Planner(self.conn), listener)
            self.conn.execute(S.FORGET_ME)  # a clean exit: no stale row for cerebro status
        finally:
            # the workers stay open for the next session (keep_alive); run() closes them
            listener.close()
            if self.conn is not None:
                self.conn.close()

    def _report(self, e: Exception, delay: float) -> None:
        """Log why a session ended; the next heartbeat writes it to cerebro.schedulers."""
        if isinstance(e, psycopg.Error):
            msg = f"{type(e).__name__}: {error_message(e)}"
            log.error("session ended: %s; reconnecting in %.1f s", msg, delay)
        else:
            msg = f"{type(e).__name__}: {e}"
            log.exception("session ended by an unexpected error; reconnecting in %.1f s", delay)
        self.health.error(msg)

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()

    def _loop(self, planner: Planner, listener: Listener) -> None:
        turn = _Turn()
        pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cerebro-worker")
        try:
            while True:
                now = time.monotonic()
                self._beat(turn, now)
                self._housekeep(turn, now)
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
            leadership.heartbeat(self.conn, "leader", len(self.workers), self.health)
            turn.last_beat = now

    def _housekeep(self, turn: _Turn, now: float) -> None:
        """Retention and keep_checkpoints, when due. It skips rows others hold, so it never
        waits; an error postpones it to the next round (unless the connection broke)."""
        due = turn.last_housekeeping is None or now - turn.last_housekeeping > self.housekeeping_s
        if self.housekeeping_s <= 0 or not due:
            return
        turn.last_housekeeping = now
        assert self.conn is not None
        try:
            removed = housekeep(self.conn)
            removed["node datasets"] = self.shipper.collect_garbage(self.conn)
        except psycopg.Error as e:
            if self.conn.broken:
                raise
            log.warning("housekeeping postponed: %s", error_message(e))
            self.health.error(f"housekeeping postponed: {error_message(e)}")
            return
        if any(removed.values()):
            log.info("housekeeping removed %s", removed)

    def _plan(self, turn: _Turn, planner: Planner, pool: ThreadPoolExecutor, now: float) -> None:
        """Start a unit on every idle worker that has one, with the runnable configs read
        again when needed (see ``_Turn.stale``)."""
        try:
            if turn.stale or now - turn.last_refresh > self.poll:
                turn.configs = planner.runnable()
                turn.stale, turn.last_refresh = False, now
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as e:
            # a user's open transaction holds a lock the plan needs: try again next poll
            assert self.conn is not None
            if self.conn.broken:
                raise
            log.warning("plan postponed: %s", error_message(e))
            self.health.error(f"plan postponed: {error_message(e)}")
            turn.dirty, turn.last_refresh = False, now
            return
        turn.dirty = False
        turn.deferred = {c: t for c, t in turn.deferred.items() if t > now}
        busy = {u.view.config_id for _, u in turn.running.values()} | set(turn.deferred)
        placement = self._placement(turn, now)
        shared = not (self.strict_mop or self.runner.mpp or placement.where)
        for j in range(self._worker_count(turn.configs)):
            if j in turn.running:
                continue
            cached = self._models_on(j) if shared else None
            unit = (
                self._any_unit(turn.configs, j, busy, cached)
                if cached is not None
                else self._mop_unit(turn.configs, j, busy, placement, now)
            )
            if unit is None:
                continue
            busy.add(unit.view.config_id)
            if shared:
                (cached if cached is not None else self.models_on[j][1]).add(unit.view.config_id)
            turn.running[j] = (pool.submit(self.runner.run, unit), unit)

    def _mop_unit(
        self, configs: list[ConfigView], j: int, busy: set[int], placement: Placement, now: float
    ) -> Unit | None:
        """MOP: a unit of partition ``j`` (on the node holding it, when it is ready there)."""
        away = {n for n, t in self.node_retry.items() if t > now}

        def usable(c: ConfigView, kind: str) -> bool:
            node, source = placement.locate(c, kind, j)
            return placement.ready(c, kind, j) and not ({node, source} & away)

        choice = pick(configs, j, busy, self.rng, usable)
        if choice is None:
            return None
        view, kind = choice
        return Unit(view, kind, j, j, *placement.locate(view, kind, j))

    def _any_unit(
        self, configs: list[ConfigView], j: int, busy: set[int], cached: set[int]
    ) -> Unit | None:
        """One server: any config's next unit, whatever its partition."""
        choice = pick_any(configs, busy, self.rng, cached)
        if choice is None:
            return None
        view, kind, partition = choice
        return Unit(view, kind, partition, j)

    def _models_on(self, j: int) -> set[int] | None:
        """The configs whose model worker ``j``'s backend has built, or None while it has
        no backend yet (or a new one): its first unit is then its own partition's, on which
        it takes its device (cerebro_udfs.devices: partition j's backend, GPU j mod n)."""
        conn = self.workers.conns.get(j)
        if conn is None or conn.closed or conn.broken:
            self.models_on[j] = (0, set())  # 0: the next backend, opened by its first unit
            return None
        pid, built = self.models_on.get(j, (0, set()))
        if pid != conn.info.backend_pid:
            built = built if pid == 0 else set()
            self.models_on[j] = (conn.info.backend_pid, built)
        return built

    def _placement(self, turn: _Turn, now: float) -> Placement:
        """Where partitions live (read again when something may have changed it); ships
        the ones waiting for a node that is not away."""
        assert self.conn is not None
        news = self._drain_node_news()
        placement = turn.placement
        if placement is None or news or turn.news or now - turn.placement_at > PLACEMENT_S:
            placement = Placement.read(self.conn)
            turn.placement, turn.placement_at, turn.news = placement, now, False
            self.workers.conninfo = placement.conninfo
        if placement.pending:
            away = {n for n, t in self.node_retry.items() if t > now}
            if self.shipper.ship(self.conn, placement, away):
                placement = turn.placement = Placement.read(self.conn)
        return placement

    def _drain_node_news(self) -> bool:
        """What the units learnt about nodes (away, or answering again); True if any."""
        news = False
        while not self.runner.node_news.empty():
            self._record_node(*self.runner.node_news.get())
            news = True
        return news

    def _record_node(self, name: str, error: str | None) -> None:
        """A node is away (its units wait DEFER_S before they try it again) or back;
        recorded in cerebro.nodes for node_health, progress and cerebro status."""
        assert self.conn is not None
        if error is None:
            if self.node_retry.pop(name, None) is not None:
                log.info("node %s answers again", name)
        else:
            if name not in self.node_retry:
                log.warning("node %s is away: %s; its units wait", name, error)
            self.node_retry[name] = time.monotonic() + DEFER_S
        self.conn.execute(S.NODE_SEEN, [name, None if error is None else error[:500]])

    def _collect(self, turn: _Turn, listener: Listener) -> None:
        """Wait briefly for a unit to finish; a finished unit or a notification means
        re-plan. A unit whose booking itself failed (the server went away) ends the
        session: recovery books it when the next one starts."""
        done, _ = wait(
            [f for f, _ in turn.running.values()],
            timeout=SHORT_WAIT_S,
            return_when=FIRST_COMPLETED,
        )
        for j in [j for j, (f, _) in turn.running.items() if f in done]:
            fut, unit = turn.running.pop(j)
            outcome = fut.result()
            log.debug("unit %s %s", unit, outcome)
            if outcome == "deferred":
                turn.deferred[unit.view.config_id] = time.monotonic() + DEFER_S
                self.health.error(self.runner.last_deferral)  # in cerebro.schedulers too
            if outcome != "ok" or not _advance(turn.configs, unit):
                turn.stale = True
            turn.dirty = True
        if listener.notified(0):
            turn.dirty = turn.news = turn.stale = True

    def _idle(self, turn: _Turn, listener: Listener) -> None:
        """Nothing runs: sleep until a notification, or the poll interval."""
        if self.once and turn.configs:
            # runnable configs but none fits an idle worker: replan shortly
            turn.dirty = True
        wait_s = SHORT_WAIT_S if turn.dirty else self.poll
        if turn.deferred:
            wait_s = min(wait_s, DEFER_S)
        if listener.notified(wait_s):
            turn.dirty = turn.news = turn.stale = True

    def _worker_count(self, configs: list[ConfigView]) -> int:
        if self.fixed_workers:
            return self.fixed_workers
        return max([max(c.n_train, c.n_valid) for c in configs] or [0])


def _advance(configs: list[ConfigView], unit: Unit) -> bool:
    """A unit committed mid-epoch: advance its config's view in memory, which saves
    reading every runnable config again after each unit. False when the config must be
    read again (its epoch ended, or the view is not the one the unit started from)."""
    for c in configs:
        if c.config_id == unit.view.config_id:
            return c.epoch == unit.view.epoch and c.advance(unit.kind, unit.partition)
    return False


def _server_coming_back(e: Exception) -> bool:
    """The server refused the connection because it is starting up, in crash recovery or
    shutting down for a restart (SQLSTATE 57P03; a refused connection carries it only in its
    message)."""
    return isinstance(e, psycopg.OperationalError) and (
        e.sqlstate == "57P03" or "the database system is" in str(e)
    )


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
