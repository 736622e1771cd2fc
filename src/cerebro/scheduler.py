"""The scheduler daemon: runs MOP units on worker connections, one per partition.

It is thin and stateless. Everything it knows is read back from the tables, so it may be
killed at any moment and restarted: a unit in flight is rolled back by PostgreSQL (its
transaction never commits) and is simply run again. Only one scheduler per database is active
(it holds an advisory lock on its leader connection); others wait as hot standbys.

One unit = one config on one partition: a training sub-epoch, or an evaluation on a partition
of the validation set. The unit's state never leaves the server: the training statement reads
the input state from ``cerebro.states`` (or the last checkpoint) and upserts the new one in
the same statement. The last unit of an epoch also commits the checkpoint, the metrics row
and the epoch counter, in the same transaction (exactly-once epoch accounting).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cerebro_udfs.models import DATASET_COLUMNS, training_config

from .schedule import ConfigView, pick

log = logging.getLogger("cerebro.scheduler")

LOCK_KEY = 0x63657262  # "cerb": pg_advisory_lock key of the active scheduler
CHANNEL = "cerebro"
MAX_LOST_UNITS = 3
EPOCH_PROCEDURES = ("asha", "hyperband", "pbt")     # decide when a config's epoch commits

_RUNNABLE = """
select c.config_id, c.workload_id, c.params, c.epoch, c.partitions_done, c.seed,
       c.priority + w.priority as priority, w.seed as workload_seed,
       w.train_dataset, w.valid_dataset, m.name as model, w.search,
       coalesce(c.max_epochs, w.max_epochs) as max_epochs,
       (select coalesce(array_agg(distinct u.partition), '{}') from cerebro.units u
         where u.config_id = c.config_id and u.kind = 'valid' and u.outcome = 'ok'
           and u.epoch = c.epoch + 1) as valid_done
  from cerebro.configs c
  join cerebro.workloads w using (workload_id)
  join cerebro.models m on m.model_id = w.model_id
 where c.status = 'active' and w.status = 'active'
   and c.epoch < coalesce(c.max_epochs, w.max_epochs)
"""

# Start a unit only if the config is still active and where we think it is. FOR SHARE makes a
# concurrent stop either wait for this (the unit started first) or win (no unit starts).
_START = """
insert into cerebro.units (config_id, epoch, partition, kind, worker, backend_pid)
select c.config_id, %(epoch)s, %(partition)s, %(kind)s, %(worker)s, pg_backend_pid()
  from cerebro.configs c join cerebro.workloads w using (workload_id)
 where c.config_id = %(config_id)s and c.status = 'active' and w.status = 'active'
   and c.epoch = %(epoch)s - 1 and c.partitions_done = %(done)s::int[]
   for share of c
returning unit_id
"""

_TRAIN = """
insert into cerebro.states (config_id, epoch, partitions_done, state, result, updated_at)
select %(config_id)s, %(epoch)s, %(new_done)s::int[], (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select cerebro.train_subepoch({state}, %(spec)s, %(cfg)s)
               within group (order by buffer_id, x, y, num_rows) as res
          from cerebro.buffers where dataset_id = {dataset} and __dist_key__ = {partition}) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8,
          substring(state from 1 for 8) = '\\x4352424348554e4b'::bytea
"""
# a state too large for one value came back as a reference: write its chunk rows (the bytes
# wait in this backend's GD; same transaction as the states row)
_WRITE_CHUNKS = """
insert into cerebro.state_chunks (blob, seq, data)
select u.blob, u.seq, u.data
  from cerebro.states s, lateral cerebro._unstash_chunks(s.state) u
 where s.config_id = %(config_id)s
"""
# the input state when it is a chunked reference (NULL for an inline state)
_INPUT_REF = """
select state from (select {state} as state) s
 where substring(state from 1 for 8) = '\\x4352424348554e4b'::bytea
"""
_STATE_FROM_STATES = ("(select state from cerebro.states where config_id = %(config_id)s "
                      "and epoch = %(epoch)s and partitions_done = %(done)s::int[])")
_STATE_FROM_CHECKPOINT = ("(select state from cerebro.checkpoints where config_id = "
                          "%(config_id)s and epoch = %(epoch)s - 1)")

_EVAL = """
select (res).loss, (res).metrics, (res).rows, (res).seconds from (
  select cerebro.evaluate_partition({state}, %(spec)s, %(cfg)s)
         within group (order by buffer_id, x, y, num_rows) as res
    from cerebro.buffers where dataset_id = {dataset} and __dist_key__ = {partition}) r
"""


# States above CEREBRO_STATE_INLINE_MAX bytes are stored as chunks of
# CEREBRO_STATE_CHUNK_BYTES (defaults in cerebro_udfs.chunks); read from this process's
# environment so that a test can force small states through the chunked path.
_STATE_LIMITS = {k: int(os.environ[e]) for k, e in (
    ("state_inline_max", "CEREBRO_STATE_INLINE_MAX"),
    ("state_chunk_bytes", "CEREBRO_STATE_CHUNK_BYTES")) if os.environ.get(e)}


class StateLost(Exception):
    """The sub-epoch state this unit needs is gone (unlogged table truncated by a crash)."""


@dataclass
class Unit:
    view: ConfigView
    kind: str
    partition: int
    worker: int

    @property
    def epoch(self) -> int:
        return self.view.epoch + 1


class Scheduler:
    def __init__(self, dsn: str, workers: int | None = None, once: bool = False,
                 poll: float = 1.0, seed: int = 0,
                 on_epoch: Callable[[dict], None] | None = None) -> None:
        self.dsn = dsn
        self.fixed_workers = workers
        self.once = once
        self.poll = poll
        self.rng = random.Random(seed)
        self.on_epoch = on_epoch or (lambda info: None)
        self.stop_event = threading.Event()
        self.conn: psycopg.Connection | None = None
        self.worker_conns: dict[int, psycopg.Connection] = {}
        self.datasets: dict[int, dict[str, Any]] = {}
        self.specs: dict[str, str] = {}
        self.automl_seen: dict[int, int] = {}      # workload -> last event id stepped on

    # -- connections -------------------------------------------------------------------------
    def _connect(self, name: str) -> psycopg.Connection:
        # Steering triggers record who acted: everything this daemon does is 'system'.
        return psycopg.connect(self.dsn, autocommit=True, application_name=name,
                               options="-c cerebro.actor=system")

    def _worker(self, j: int) -> psycopg.Connection:
        conn = self.worker_conns.get(j)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect(f"cerebro worker {j}")
            self.worker_conns[j] = conn
        return conn

    # -- leadership --------------------------------------------------------------------------
    def acquire_leadership(self) -> None:
        """Block until this process holds the scheduler lock (hot standby until then)."""
        assert self.conn is not None
        announced = False
        while not self.stop_event.is_set():
            got = self.conn.execute("select pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]
            self._heartbeat("leader" if got else "standby")
            if got:
                return
            if not announced:
                log.info("another scheduler is active; waiting as standby")
                announced = True
            self.stop_event.wait(1.0)

    def _heartbeat(self, role: str) -> None:
        assert self.conn is not None
        self.conn.execute(
            "insert into cerebro.schedulers (pid, host, os_pid, role, workers) "
            "values (pg_backend_pid(), %s, %s, %s, %s) on conflict (pid) do update "
            "set role = excluded.role, workers = excluded.workers, heartbeat_at = now()",
            [socket.gethostname(), os.getpid(), role, len(self.worker_conns)])

    def recover(self) -> None:
        """Make the tables consistent after whatever happened to the previous scheduler."""
        assert self.conn is not None
        c = self.conn
        c.execute("delete from cerebro.schedulers s where not exists (select 1 from "
                  "pg_stat_activity a where a.pid = s.pid)")
        # Backends of a dead scheduler may still be finishing a unit; they can never commit
        # (their client is gone), but end them so they stop using CPU and locks.
        c.execute("select pg_terminate_backend(pid) from pg_stat_activity where "
                  "datname = current_database() and application_name like 'cerebro worker %%' "
                  "and pid <> pg_backend_pid()")
        n = c.execute("update cerebro.units set outcome = 'lost', ended_at = clock_timestamp(), "
                      "error = 'scheduler or backend ended before the unit committed' "
                      "where ended_at is null").rowcount
        if n:
            log.info("recovered: %d unit(s) in flight were lost and will run again", n)
        # chunks of states lost with the unlogged states table (crash) or left by a unit
        # that died between writing them and committing are unreferenced now
        gone = c.execute("select cerebro._drop_unreferenced_chunks()").fetchone()[0]
        if gone:
            log.info("recovered: removed %d unreferenced state chunk(s)", gone)

    # -- reading the tables --------------------------------------------------------------
    def _dataset(self, dataset_id: int) -> dict[str, Any]:
        ds = self.datasets.get(dataset_id)
        if ds is None:
            assert self.conn is not None
            with self.conn.cursor(row_factory=dict_row) as cur:
                ds = cur.execute(f"select {DATASET_COLUMNS} from cerebro.datasets "
                                 "where dataset_id = %s", [dataset_id]).fetchone()
            if ds is None:
                raise RuntimeError(f"dataset {dataset_id} vanished")
            self.datasets[dataset_id] = ds
        return ds

    def _spec(self, model: str) -> str:
        if model not in self.specs:
            assert self.conn is not None
            self.specs[model] = json.dumps(self.conn.execute(
                "select cerebro.model_spec(%s)", [model]).fetchone()[0])
        return self.specs[model]

    def automl(self) -> None:
        """Step the AutoML procedures whose workloads saw new events (suggest, promote)."""
        assert self.conn is not None
        rows = self.conn.execute(
            "select w.workload_id, max(e.event_id) from cerebro.workloads w join "
            "cerebro.events e using (workload_id) where w.status = 'active' and w.search in "
            "('hyperopt', 'asha', 'hyperband') group by 1").fetchall()
        for wid, last in rows:
            if self.automl_seen.get(wid) == last:
                continue
            try:
                self.conn.execute("select cerebro.automl_step(%s)", [wid])
            except psycopg.Error as e:
                log.error("automl step of workload %s failed: %s", wid, _message(e))
            self.automl_seen[wid] = last

    def runnable(self) -> list[ConfigView]:
        assert self.conn is not None
        self.automl()
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_RUNNABLE).fetchall()
        out = []
        for r in rows:
            train = self._dataset(r["train_dataset"])
            valid = self._dataset(r["valid_dataset"]) if r["valid_dataset"] else None
            out.append(ConfigView(
                config_id=r["config_id"], workload_id=r["workload_id"], epoch=r["epoch"],
                partitions_done=list(r["partitions_done"]), valid_done=list(r["valid_done"]),
                priority=r["priority"], workload_seed=r["workload_seed"],
                n_train=train["num_partitions"],
                n_valid=valid["num_partitions"] if valid else 0,
                extra={"params": r["params"], "seed": r["seed"], "spec": self._spec(r["model"]),
                       "search": r["search"],
                       "train": train, "valid": valid}))
        return out

    # -- running one unit ------------------------------------------------------------------
    def run_unit(self, unit: Unit) -> str:
        """Run one unit on its worker connection; returns its outcome."""
        v = unit.view
        conn = self._worker(unit.worker)
        args = {"config_id": v.config_id, "epoch": unit.epoch, "partition": unit.partition,
                "kind": unit.kind, "worker": unit.worker, "done": v.partitions_done}
        row = conn.execute(_START, args).fetchone()
        if row is None:
            return "skipped"            # stopped, paused or moved on since we planned it
        unit_id = row[0]
        try:
            with conn.transaction():
                result = self._train(conn, unit) if unit.kind == "train" else \
                    self._evaluate(conn, unit)
                conn.execute("update cerebro.units set ended_at = clock_timestamp(), "
                             "outcome = 'ok', result = %s where unit_id = %s",
                             [json.dumps(result), unit_id])
                if self._epoch_complete(unit):
                    self._commit_epoch(conn, unit)
            return "ok"
        except StateLost:
            self._restart_epoch(unit, unit_id)
            return "lost"
        except psycopg.errors.QueryCanceled as e:
            # cerebro.stop(..., immediate => true) or statement_timeout: the state of the
            # last finished sub-epoch stays; a config still active will simply run it again
            self._unit_cancelled(unit, unit_id, _message(e))
            return "cancelled"
        except psycopg.OperationalError as e:
            if not conn.broken:
                raise
            self._unit_lost(unit, unit_id, str(e))
            return "lost"
        except psycopg.Error as e:
            self._unit_failed(unit, unit_id, _message(e))
            return "failed"

    def _cfg(self, unit: Unit, dataset: dict[str, Any]) -> str:
        v = unit.view
        cfg = training_config(dataset, v.extra["params"], v.extra["seed"], unit.partition,
                              unit.epoch, v.config_id)
        cfg.update(_STATE_LIMITS)
        return json.dumps(cfg)

    def _train(self, conn: psycopg.Connection, unit: Unit) -> dict[str, Any]:
        v = unit.view
        args = {"config_id": v.config_id, "epoch": unit.epoch, "done": v.partitions_done,
                "new_done": v.partitions_done + [unit.partition],
                "spec": v.extra["spec"], "cfg": self._cfg(unit, v.extra["train"])}
        if v.partitions_done:
            ok = conn.execute("select 1 from cerebro.states where config_id = %(config_id)s "
                              "and epoch = %(epoch)s and partitions_done = %(done)s::int[]",
                              args).fetchone()
            if not ok:
                raise StateLost()
            state_sql = _STATE_FROM_STATES
        else:
            state_sql = _STATE_FROM_CHECKPOINT
        ref = self._stash_input(conn, state_sql, args)
        query = sql.SQL(_TRAIN).format(state=sql.SQL(state_sql),
                                       dataset=sql.Literal(v.extra["train"]["dataset_id"]),
                                       partition=sql.Literal(unit.partition))
        loss, metrics, rows, seconds, chunked = conn.execute(query, args).fetchone()
        if chunked:
            conn.execute(_WRITE_CHUNKS, args)
        if ref is not None:     # the previous sub-epoch's chunks, unless a checkpoint keeps them
            conn.execute("select cerebro._drop_unreferenced_chunks(substring(%s from 9 for 16))",
                         [ref])
        if self._epoch_complete(unit):
            self._lock_workload(conn, v)
        conn.execute("update cerebro.configs set partitions_done = %s::int[], lost_units = 0, "
                     "updated_at = now() where config_id = %s",
                     [args["new_done"], v.config_id])
        return {"loss": loss, "metrics": metrics, "rows": rows, "seconds": seconds}

    def _evaluate(self, conn: psycopg.Connection, unit: Unit) -> dict[str, Any]:
        v = unit.view
        args = {"config_id": v.config_id, "epoch": unit.epoch, "done": v.partitions_done,
                "spec": v.extra["spec"], "cfg": self._cfg(unit, v.extra["valid"])}
        if not conn.execute("select 1 from cerebro.states where config_id = %(config_id)s and "
                            "epoch = %(epoch)s and partitions_done = %(done)s::int[]",
                            args).fetchone():
            raise StateLost()
        self._stash_input(conn, _STATE_FROM_STATES, args)
        query = sql.SQL(_EVAL).format(state=sql.SQL(_STATE_FROM_STATES),
                                      dataset=sql.Literal(v.extra["valid"]["dataset_id"]),
                                      partition=sql.Literal(unit.partition))
        loss, metrics, rows, seconds = conn.execute(query, args).fetchone()
        return {"loss": loss, "metrics": metrics, "rows": rows, "seconds": seconds}

    @staticmethod
    def _stash_input(conn: psycopg.Connection, state_sql: str, args: dict[str, Any]
                     ) -> bytes | None:
        """A chunked input state is assembled in the worker's backend before the unit runs
        (the bytes stay in the server); returns its reference, or None for an inline state."""
        row = conn.execute(sql.SQL(_INPUT_REF).format(state=sql.SQL(state_sql)), args
                           ).fetchone()
        if row is None:
            return None
        conn.execute("select cerebro._stash_state(%s)", [row[0]])
        return row[0]

    @staticmethod
    def _epoch_complete(unit: Unit) -> bool:
        v = unit.view
        if unit.kind == "train":
            return v.n_valid == 0 and len(set(v.partitions_done) | {unit.partition}) >= v.n_train
        return len(set(v.valid_done) | {unit.partition}) >= v.n_valid

    @staticmethod
    def _lock_workload(conn: psycopg.Connection, v: ConfigView) -> None:
        """Lock order workload -> config, as AutoML steps take them: no deadlock between an
        epoch commit (whose AutoML hook locks the workload) and a concurrent step."""
        conn.execute("select 1 from cerebro.workloads where workload_id = %s "
                     "for no key update", [v.workload_id])

    def _commit_epoch(self, conn: psycopg.Connection, unit: Unit) -> None:
        v, e = unit.view, unit.epoch
        self._lock_workload(conn, v)
        row = conn.execute(
            "update cerebro.configs c set epoch = %(e)s, partitions_done = '{}', "
            "updated_at = now(), status = case when c.status = 'active' and %(e)s >= "
            "coalesce(c.max_epochs, w.max_epochs) then 'completed' else c.status end "
            "from cerebro.workloads w where w.workload_id = c.workload_id "
            "and c.config_id = %(c)s and c.epoch = %(e)s - 1 returning c.status",
            {"e": e, "c": v.config_id}).fetchone()
        if row is None:
            raise RuntimeError(f"config {v.config_id}: epoch {e} was already committed")
        conn.execute("insert into cerebro.checkpoints (config_id, epoch, state) "
                     "select config_id, %s, state from cerebro.states where config_id = %s",
                     [e, v.config_id])
        results = conn.execute(
            "select kind, result from cerebro.units where config_id = %s and epoch = %s "
            "and outcome = 'ok'", [v.config_id, e]).fetchall()
        train = _weighted([r for k, r in results if k == "train"])
        valid = _weighted([r for k, r in results if k == "valid"])
        conn.execute(
            "insert into cerebro.metrics (config_id, epoch, train_loss, train_metrics, "
            "valid_loss, valid_metrics, rows, seconds) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [v.config_id, e, train["loss"], json.dumps(train["metrics"]), valid["loss"],
             json.dumps(valid["metrics"]), train["rows"], train["seconds"] + valid["seconds"]])
        # AutoML procedures decide at epoch boundaries, atomically with the epoch's commit
        if v.extra.get("search") in EPOCH_PROCEDURES:
            conn.execute("select cerebro._on_epoch(%s, %s)", [v.config_id, e])
        self.on_epoch({"config_id": v.config_id, "epoch": e, "train_loss": train["loss"],
                       "valid_loss": valid["loss"], "valid_metrics": valid["metrics"],
                       "status": row[0]})

    def _side_conn(self, unit: Unit) -> psycopg.Connection:
        """A connection for bookkeeping after a unit went wrong (never the main one: this
        runs on a worker thread)."""
        conn = self.worker_conns.get(unit.worker)
        if conn is None or conn.broken or conn.closed:
            conn = self._worker(unit.worker)
        return conn

    def _restart_epoch(self, unit: Unit, unit_id: int) -> None:
        v = unit.view
        conn = self._side_conn(unit)
        with conn.transaction():
            conn.execute("update cerebro.units set outcome = 'lost', ended_at = "
                              "coalesce(ended_at, clock_timestamp()), error = 'state lost' "
                              "where config_id = %s and epoch = %s and "
                              "(outcome = 'ok' or unit_id = %s)",
                              [v.config_id, unit.epoch, unit_id])
            conn.execute("update cerebro.configs set partitions_done = '{}' "
                              "where config_id = %s and epoch = %s",
                              [v.config_id, v.epoch])
            conn.execute("insert into cerebro.events (actor, workload_id, config_id, "
                              "action, detail) values ('system', %s, %s, 'epoch_restarted', %s)",
                              [v.workload_id, v.config_id,
                               json.dumps({"epoch": unit.epoch,
                                           "reason": "sub-epoch state lost in a crash"})])
        log.warning("config %d: sub-epoch state lost; epoch %d restarts from its checkpoint",
                    v.config_id, unit.epoch)

    def _unit_lost(self, unit: Unit, unit_id: int, error: str) -> None:
        v = unit.view
        conn = self._side_conn(unit)
        with conn.transaction():
            conn.execute("update cerebro.units set outcome = 'lost', ended_at = "
                              "clock_timestamp(), error = %s where unit_id = %s",
                              [error[:2000], unit_id])
            n = conn.execute("update cerebro.configs set lost_units = lost_units + 1 "
                                  "where config_id = %s returning lost_units",
                                  [v.config_id]).fetchone()[0]
            if n >= MAX_LOST_UNITS:
                self._fail_config(conn, v, f"{n} sub-epochs in a row lost their backend "
                                     f"(last: {error})")
        log.warning("config %d: unit lost on worker %d: %s", v.config_id, unit.worker, error)

    def _unit_cancelled(self, unit: Unit, unit_id: int, error: str) -> None:
        conn = self._side_conn(unit)
        with conn.transaction():
            conn.execute("update cerebro.units set outcome = 'cancelled', ended_at = "
                         "clock_timestamp(), error = %s where unit_id = %s", [error, unit_id])
            n = conn.execute("update cerebro.configs set lost_units = lost_units + 1 where "
                             "config_id = %s and status = 'active' returning lost_units",
                             [unit.view.config_id]).fetchone()
            if n and n[0] >= MAX_LOST_UNITS:
                self._fail_config(conn, unit.view, f"cancelled {n[0]} times in a row ({error})")
        log.info("config %d: unit on worker %d cancelled", unit.view.config_id, unit.worker)

    def _unit_failed(self, unit: Unit, unit_id: int, error: str) -> None:
        conn = self._side_conn(unit)
        with conn.transaction():
            conn.execute("update cerebro.units set outcome = 'failed', ended_at = "
                         "clock_timestamp(), error = %s where unit_id = %s", [error, unit_id])
            self._fail_config(conn, unit.view, error)
        log.warning("config %d failed: %s", unit.view.config_id, error)

    @staticmethod
    def _fail_config(conn: psycopg.Connection, v: ConfigView, error: str) -> None:
        # the steering trigger records the 'failed' event (actor: system)
        conn.execute("update cerebro.configs set status = 'failed', error = %s, "
                     "updated_at = now() where config_id = %s and status = 'active'",
                     [error, v.config_id])

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        self.conn = self._connect("cerebro scheduler")
        listener = self._connect("cerebro listener")
        listener.execute(sql.SQL("listen {}").format(sql.Identifier(CHANNEL)))
        try:
            self.acquire_leadership()
            if self.stop_event.is_set():
                return
            self.recover()
            self._loop(listener)
        finally:
            for c in self.worker_conns.values():
                c.close()
            listener.close()
            if self.conn is not None:
                self.conn.close()

    def _loop(self, listener: psycopg.Connection) -> None:
        running: dict[int, tuple[Future, Unit]] = {}      # worker -> unit in flight
        pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cerebro-worker")
        dirty, last_refresh, last_beat = True, 0.0, 0.0
        configs: list[ConfigView] = []
        try:
            while True:
                now = time.monotonic()
                if now - last_beat > 5:
                    self._heartbeat("leader")
                    last_beat = now
                if self.stop_event.is_set() and not running:
                    break
                if (dirty or now - last_refresh > self.poll) and not self.stop_event.is_set():
                    configs = self.runnable()
                    dirty, last_refresh = False, now
                    busy = {u.view.config_id for _, u in running.values()}
                    for j in range(self._worker_count(configs)):
                        if j in running:
                            continue
                        choice = pick(configs, j, busy, self.rng)
                        if choice is None:
                            continue
                        view, kind = choice
                        unit = Unit(view, kind, j, j)
                        busy.add(view.config_id)
                        running[j] = (pool.submit(self.run_unit, unit), unit)
                if self.once and not running and not configs and not dirty:
                    break
                if running:
                    done, _ = wait([f for f, _ in running.values()], timeout=0.05,
                                   return_when=FIRST_COMPLETED)
                    for j in [j for j, (f, _) in running.items() if f in done]:
                        fut, unit = running.pop(j)
                        outcome = fut.result()          # unexpected errors stop the daemon
                        log.debug("unit %s %s", unit, outcome)
                        dirty = True
                    if list(listener.notifies(timeout=0, stop_after=1)):
                        dirty = True
                else:
                    if self.once and configs:
                        # runnable configs but none fits an idle worker: replan shortly
                        dirty = True
                    wait_s = 0.05 if dirty else self.poll
                    if list(listener.notifies(timeout=wait_s, stop_after=1)):
                        dirty = True
        finally:
            pool.shutdown(wait=True)

    def _worker_count(self, configs: list[ConfigView]) -> int:
        if self.fixed_workers:
            return self.fixed_workers
        return max([max(c.n_train, c.n_valid) for c in configs] or [0])

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()


def _weighted(results: list[dict[str, Any]]) -> dict[str, Any]:
    rows = sum(r["rows"] for r in results)
    if not results or rows == 0:
        return {"loss": None, "metrics": {}, "rows": rows,
                "seconds": sum(r["seconds"] for r in results)}
    loss = sum(r["loss"] * r["rows"] for r in results) / rows
    names = set().union(*(r["metrics"].keys() for r in results))
    metrics = {k: sum(r["metrics"].get(k, 0.0) * r["rows"] for r in results) / rows
               for k in sorted(names)}
    return {"loss": loss, "metrics": metrics, "rows": rows,
            "seconds": sum(r["seconds"] for r in results)}


def _message(e: psycopg.Error) -> str:
    msg = e.diag.message_primary or str(e)
    return msg[len("cerebro: "):] if msg.startswith("cerebro: ") else msg


def serve(dsn: str, workers: int | None = None, once: bool = False, poll: float = 1.0) -> None:
    """Run a scheduler in the foreground until SIGTERM/SIGINT (or, with ``once``, done)."""
    sched = Scheduler(dsn, workers=workers, once=once, poll=poll,
                      on_epoch=lambda i: log.info(
                          "config %(config_id)s epoch %(epoch)s: train_loss %(train_loss).4f "
                          "valid_loss %(valid_loss)s %(status)s", i))
    signal.signal(signal.SIGTERM, sched.request_stop)
    signal.signal(signal.SIGINT, sched.request_stop)
    sched.run()
