"""The unit runner: runs one unit on its worker connection and books its outcome.

Runs on a worker thread. The unit's state never leaves the server: the training statement
reads the input state from ``cerebro.states`` (or the last checkpoint) and upserts the new one
in the same statement. A unit that commits is 'ok' (and the last of an epoch commits the epoch
in the same transaction); one that does not is booked by ``_finish_unit``, the one path for
every other outcome.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from . import statements as S
from .connections import Workers, durable, error_message, one
from .epoch import commit_epoch, lock_workload
from .hops import Hops
from .unit import CheckpointMissing, NodeDown, StateLost, Unit, UnitFailed

log = logging.getLogger("cerebro.scheduler")

MAX_LOST_UNITS = 3
STATE_LOST = "state lost"  # the outcome 'lost', with the epoch restarted (see below)


@dataclass(frozen=True)
class _Booking:
    """How a unit that did not commit is booked."""

    outcome: str  # units.outcome, and what run() reports
    count: str | None  # statement counting it in configs.lost_units; None: fail now
    give_up: str  # configs.error once the count reaches MAX_LOST_UNITS
    level: int  # log level and message (keys: config, worker, epoch, error)
    message: str
    clip: int | None = None  # longest units.error kept (a broken connection's text is long)
    fails: bool = True  # False: never counted against the config (retried after a pause)


_BOOKINGS = {
    STATE_LOST: _Booking(
        "lost",
        None,
        "",
        logging.WARNING,
        "config %(config)d: sub-epoch state lost; epoch %(epoch)d restarts from its checkpoint",
    ),
    "lost": _Booking(
        "lost",
        S.COUNT_LOST,
        "{n} sub-epochs in a row lost their backend (last: {error})",
        logging.WARNING,
        "config %(config)d: unit lost on worker %(worker)d: %(error)s",
        clip=2000,
    ),
    # cerebro.stop(..., immediate => true) or statement_timeout: the state of the last
    # finished sub-epoch stays; a config still active will simply run it again
    "cancelled": _Booking(
        "cancelled",
        S.COUNT_CANCELLED,
        "cancelled {n} times in a row ({error})",
        logging.INFO,
        "config %(config)d: unit on worker %(worker)d cancelled",
    ),
    "failed": _Booking(
        "failed", None, "{error}", logging.WARNING, "config %(config)d failed: %(error)s"
    ),
    # an error of this daemon's own code: counted like a lost backend, so a persistent one
    # fails the config (with its message) instead of retrying it for ever
    "crashed": _Booking(
        "lost",
        S.COUNT_LOST,
        "{n} sub-epochs in a row ended with an internal error (last: {error})",
        logging.ERROR,
        "config %(config)d: unit on worker %(worker)d ended with an internal error: %(error)s",
        clip=2000,
    ),
    # not the config's fault and gone when the condition is (a full disk, too many
    # connections, a lock held past lock_timeout by someone's open transaction): the unit is
    # tried again after a pause, and never fails the config
    "deferred": _Booking(
        "cancelled",
        None,
        "",
        logging.WARNING,
        "config %(config)d: unit on worker %(worker)d deferred: %(error)s",
        clip=2000,
        fails=False,
    ),
}

# errors that say "not now" rather than "this config is broken"
_TRANSIENT = (
    psycopg.errors.LockNotAvailable,  # lock_timeout
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.InsufficientResources,  # class 53: disk full, out of memory, connections
)


class UnitRunner:
    """Runs units on the worker connections; ``on_epoch`` hears of every epoch committed."""

    def __init__(self, workers: Workers, on_epoch: Callable[[dict[str, Any]], None]) -> None:
        self.workers = workers
        self.on_epoch = on_epoch
        self.last_deferral = ""  # why the last deferred unit was (the loop reports it)
        self.hops = Hops(workers)
        # (node, error or None when it answers again), for the loop to record and plan by
        self.node_news: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
        self.nodes_up: set[str] = set()
        self.mpp = False  # Greenplum/Cloudberry: statements grouped by key (the loop sets it)
        self._db_oid: int | None = None  # the database's oid: its directory of state files

    def run(self, unit: Unit) -> str:
        """Run one unit on its worker connection; returns its outcome (the booking's key).

        Raises only when the unit could not be booked (the server went away): the loop then
        starts a new session, whose recovery books it as lost."""
        try:
            self._reach_nodes(unit)
        except NodeDown as e:
            self._node_down(e)
            self.last_deferral = f"config {unit.view.config_id}: waits: {e}"
            return "deferred"
        try:
            conn = self.workers.get(unit.worker)
            row = conn.execute(S.START_UNIT, unit.args()).fetchone()
        except psycopg.Error as e:
            if not isinstance(e, _TRANSIENT) and not _too_many_connections(e):
                raise  # the server is unreachable: the loop starts a new session
            self.last_deferral = f"worker {unit.worker}: unit not started: {_explain(e)}"
            log.warning("%s", self.last_deferral)
            return "deferred"
        if row is None:
            return "skipped"  # stopped, paused or moved on since we planned it
        unit_id = row[0]
        try:
            if unit.node is not None:
                self.hops.run_remote(conn, unit, unit_id, self.on_epoch)
            else:
                hop = None
                if unit.source is not None:
                    hop = self.hops.fetch_to_coordinator(conn, unit)
                replaced = self._commit(conn, unit, unit_id, hop)
                if replaced is not None:  # after the commit: the old row named it till then
                    conn.execute(S.DROP_STATE_FILE, [replaced])
        except Exception as e:
            if isinstance(e, NodeDown):
                self._node_down(e)
            outcome, error = _classify(e, conn)
            if outcome == "crashed":
                log.exception("unit %s: internal error", unit)
            return self._finish_unit(outcome, unit, unit_id, error)
        if unit.node is not None or unit.source is not None:
            self.hops.tidy(conn, unit)
        return "ok"

    def _reach_nodes(self, unit: Unit) -> None:
        """Connect to the nodes the unit needs before it starts (NodeDown if one is away),
        and tell the loop about a node that answers again."""
        for name in {unit.node, unit.source} - {None}:
            assert name is not None
            self.workers.node(unit.worker, name)
            if name not in self.nodes_up:
                self.nodes_up.add(name)
                self.node_news.put((name, None))

    def _node_down(self, e: NodeDown) -> None:
        self.nodes_up.discard(e.node)
        self.node_news.put((e.node, e.error))

    def _commit(
        self, conn: psycopg.Connection, unit: Unit, unit_id: int, hop: dict[str, Any] | None
    ) -> bytes | None:
        """The unit, its 'ok' and (if it is the last) its epoch, in one transaction. ``hop``:
        what moving its input state here cost, for its result. Returns the state-file
        reference the unit's new state replaced, if any."""
        with conn.transaction():
            result = (
                self._train(conn, unit) if unit.kind == "train" else self._evaluate(conn, unit)
            )
            replaced = result.pop("replaced", None)
            result.update(hop or {})
            conn.execute(S.UNIT_OK, [json.dumps(result), unit_id])
            if unit.completes_epoch:
                self.on_epoch(commit_epoch(conn, unit))
        return replaced

    def _train(self, conn: psycopg.Connection, unit: Unit) -> dict[str, Any]:
        v = unit.view
        args = {
            **unit.args(),
            "new_done": [*v.partitions_done, unit.partition],
            "spec": v.extra["spec"],
            "cfg": unit.config(v.extra["train"], files=self._state_files(conn)),
        }
        if v.partitions_done:
            state_sql = S.STATE_FROM_STATES
        else:  # the golden statements of Greenplum/Cloudberry read the checkpoint
            state_sql = S.STATE_FROM_CHECKPOINT if self.mpp else S.STATE_FROM_LAST_EPOCH
        got = _inputs(conn, state_sql, args)
        if v.partitions_done and not got.present:
            raise StateLost()
        if not v.partitions_done and unit.epoch > 1 and not got.checkpoint:
            raise CheckpointMissing(
                f"the checkpoint of epoch {unit.epoch - 1} is missing, so epoch "
                f"{unit.epoch} cannot continue from it; clone the config with "
                "fresh => true to train it again from the start"
            )
        if got.chunked:
            conn.execute(S.STASH_STATE, [got.ref])
        query = S.train(state_sql, v.extra["train"]["dataset_id"], unit.key, mpp=self.mpp)
        loss, metrics, rows, seconds, chunked = one(conn, query, args)
        if chunked:
            conn.execute(S.WRITE_CHUNKS, args)
        if got.chunked:
            conn.execute(S.DROP_CHUNKS_OF, [got.ref])
        if unit.completes_epoch:
            lock_workload(conn, v.workload_id)  # before the config row below
        conn.execute(S.SUBEPOCH_DONE, [args["new_done"], v.config_id])
        return {
            "loss": loss,
            "metrics": metrics,
            "rows": rows,
            "seconds": seconds,
            "replaced": got.current,  # the file the states row named until the upsert
        }

    def _state_files(self, conn: psycopg.Connection) -> int | None:
        """Where this database's states may be files (state_files.py): on one PostgreSQL
        server, its oid; None on Greenplum/Cloudberry (states travel as arguments there)."""
        if self.mpp:
            return None
        if self._db_oid is None:
            self._db_oid = one(conn, S.DATABASE_OID)[0]
        return self._db_oid

    def _evaluate(self, conn: psycopg.Connection, unit: Unit) -> dict[str, Any]:
        v = unit.view
        args = {**unit.args(), "spec": v.extra["spec"], "cfg": unit.config(v.extra["valid"])}
        got = _inputs(conn, S.STATE_FROM_STATES, args)
        if not got.present:
            raise StateLost()
        if got.chunked:  # a file is mapped where it lies
            conn.execute(S.STASH_STATE, [got.ref])
        ds = v.extra["valid"]["dataset_id"]
        query = S.evaluate(S.STATE_FROM_STATES, ds, unit.key, mpp=self.mpp)
        loss, metrics, rows, seconds = one(conn, query, args)
        return {"loss": loss, "metrics": metrics, "rows": rows, "seconds": seconds}

    def _finish_unit(self, outcome: str, unit: Unit, unit_id: int, error: str) -> str:
        """Book a unit that did not commit, in one transaction on its worker's connection
        (reopened if the unit broke it); returns the outcome ``run`` reports."""
        b = _BOOKINGS[outcome]
        conn = self.workers.get(unit.worker)
        conn.execute(S.COLLECT_STATE_FILES)  # a state file the unit wrote is nobody's
        with conn.transaction():
            durable(conn)  # a failed config stays failed after a crash
            if outcome == STATE_LOST:
                _restart_epoch(conn, unit, unit_id)
            else:
                conn.execute(
                    S.UNIT_ENDED,
                    {
                        "outcome": b.outcome,
                        "unit_id": unit_id,
                        "error": error[: b.clip] if b.clip else error,
                    },
                )
                _count_against_config(conn, b, unit, error)
        if not b.fails:
            self.last_deferral = f"config {unit.view.config_id}: deferred: {error}"
        log.log(
            b.level,
            b.message,
            {
                "config": unit.view.config_id,
                "worker": unit.worker,
                "epoch": unit.epoch,
                "error": error,
            },
        )
        return "deferred" if not b.fails else b.outcome


def _classify(e: Exception, conn: psycopg.Connection) -> tuple[str, str]:
    """(booking, error text) for a unit that did not commit."""
    if isinstance(e, StateLost):
        return STATE_LOST, "state lost"
    if isinstance(e, UnitFailed):
        return "failed", str(e)
    if isinstance(e, NodeDown):  # the config waits for the node; it is not its fault
        return "deferred", str(e)
    if conn.broken:  # its backend ended: terminated, crashed, server restarted
        return "lost", str(e)
    if isinstance(e, psycopg.errors.QueryCanceled):
        return "cancelled", error_message(e)
    if isinstance(e, (*_TRANSIENT, psycopg.OperationalError)):
        return "deferred", _explain(e)
    if isinstance(e, psycopg.Error):
        return "failed", error_message(e)
    return "crashed", f"{type(e).__name__}: {e}"


def _explain(e: Exception) -> str:
    """A transient error's text, with what to do about it when that is not obvious."""
    if not isinstance(e, psycopg.Error):
        return str(e)
    msg = error_message(e)
    if _too_many_connections(e):
        msg += (
            " (the scheduler needs one connection per partition plus two: raise the "
            "server's max_connections, or use fewer partitions)"
        )
    elif isinstance(e, psycopg.errors.DiskFull):
        msg += " (retried when space returns)"
    elif isinstance(e, psycopg.errors.LockNotAvailable):
        msg += " (another session holds a lock on the config; retried)"
    return msg


def _too_many_connections(e: Exception) -> bool:
    """The server refused a connection for want of slots (max_connections, or the role's
    CONNECTION LIMIT). A refused connection carries its SQLSTATE only in its message."""
    text = str(e)
    return isinstance(e, psycopg.errors.TooManyConnections) or (
        isinstance(e, psycopg.OperationalError)
        and ("too many clients" in text or "too many connections" in text)
    )


@dataclass(frozen=True)
class _Inputs:
    """What a unit knows of its input before it runs (statements._INPUTS)."""

    present: bool  # the sub-epoch state it continues from is there, and readable
    checkpoint: bool  # the checkpoint an epoch starts from is there
    ref: bytes | None  # the input state when it is a reference (chunked or a file)
    chunked: bool  # ... a chunked one: assembled in the worker's backend before the unit
    current: bytes | None  # the state file the config's states row names now


def _inputs(conn: psycopg.Connection, state_sql: str, args: dict[str, Any]) -> _Inputs:
    row = conn.execute(S.inputs(state_sql), args).fetchone()
    assert row is not None  # one row, whatever the state
    return _Inputs(bool(row[0]), bool(row[1]), row[2], bool(row[3]), row[4])


def _count_against_config(conn: psycopg.Connection, b: _Booking, unit: Unit, error: str) -> None:
    """Count the unit in the config's run of lost units; fail the config when the run is
    too long (or at once, for an outcome that is not counted)."""
    if not b.fails:
        return
    if b.count is None:
        n = None
    else:
        row = conn.execute(b.count, [unit.view.config_id]).fetchone()
        if not row or row[0] < MAX_LOST_UNITS:
            return
        n = row[0]
    conn.execute(S.FAIL_CONFIG, [b.give_up.format(n=n, error=error), unit.view.config_id])


def _restart_epoch(conn: psycopg.Connection, unit: Unit, unit_id: int) -> None:
    """The sub-epoch state is gone (crash): the epoch's units so far are lost with this one
    and the config restarts the epoch from its checkpoint, recorded as an event."""
    v = unit.view
    conn.execute(S.LOSE_EPOCH_UNITS, [v.config_id, unit.epoch, unit_id])
    conn.execute(S.RESTART_EPOCH, [v.config_id, v.epoch])
    conn.execute(
        S.EPOCH_RESTARTED_EVENT,
        [
            v.workload_id,
            v.config_id,
            json.dumps({"epoch": unit.epoch, "reason": "sub-epoch state lost in a crash"}),
        ],
    )
