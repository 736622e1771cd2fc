"""Units whose partition or input state is on another server (issue 14: nodes).

The coordinator keeps the truth (configs, units, metrics, checkpoints, the epoch counter);
a node keeps data partitions and, in ``cerebro.hop_states``, the state of the last sub-epoch
each config ran there. A unit on a node:

1. brings its input state there, if it is elsewhere: the checkpoint (first partition of an
   epoch), the coordinator's ``states`` (validation), or another node's ``hop_states`` (the
   previous partition) — streamed with binary COPY (``transfer.stream_rows``);
2. runs the aggregate there, which upserts the new state into the node's ``hop_states``;
3. commits on the coordinator, in one transaction: the unit's outcome, the config's
   partitions done and, for the last training partition, the state itself (so validation
   and the checkpoint read it here), and the epoch when it is the epoch's last unit.

A crash between 2 and 3 leaves a state on the node that the coordinator does not count: the
unit runs again (from the previous copy, or, if the node overwrote it, the epoch restarts from
its checkpoint). Nothing is counted twice because only step 3 counts. A unit on the
coordinator whose input state is on a node fetches it into ``states`` first and then runs as
on a single server. Copies that moved on are dropped afterwards, best effort.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ..transfer import Moved, stream_rows
from . import statements as S
from .connections import Workers, one
from .epoch import commit_epoch, lock_workload
from .unit import CheckpointMissing, NodeDown, StateLost, Unit, UnitFailed

log = logging.getLogger("cerebro.scheduler")

COORDINATOR = None  # a location: None is the coordinator, else a node's name
HOP = "hop_states"


class Hops:
    """Moves states for units and runs the units that train on a node."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def conn_of(self, unit: Unit, where: str | None, coord: psycopg.Connection) -> Any:
        return coord if where is None else self.workers.node(unit.worker, where)

    def fetch_to_coordinator(self, coord: psycopg.Connection, unit: Unit) -> dict[str, Any]:
        """A unit on the coordinator continues from a state on a node: bring it into
        ``states`` (its own transaction: ``states`` is a cache, the unit checks it); returns
        the hop's figures for the unit's result."""
        assert unit.source is not None
        src = self.workers.node(unit.worker, unit.source)
        v = unit.view
        with coord.transaction():
            coord.execute(S.clear_state("states"), [v.config_id])
            moved = _stream(
                src,
                unit.source,
                S.state_row(HOP, v.config_id, unit.epoch, v.partitions_done),
                coord,
                "states",
            )
        return {"hop_from": unit.source, **_hop_figures(moved)}

    def run_remote(
        self,
        coord: psycopg.Connection,
        unit: Unit,
        unit_id: int,
        on_epoch: Callable[[dict[str, Any]], None],
    ) -> None:
        """Steps 1-3 above for a unit on node ``unit.node``."""
        assert unit.node is not None
        node = self.workers.node(unit.worker, unit.node)
        v = unit.view
        args = {**unit.args(), "spec": v.extra["spec"]}
        hop = self._bring_state(coord, node, unit, args)
        state_sql = S.FRESH_STATE if hop is None else S.HOP_STATE
        if hop is not None and not _on_node(node, unit.node, S.HAS_HOP_STATE, args):
            raise StateLost()
        if unit.kind == "train":
            args.update(
                new_done=[*v.partitions_done, unit.partition], cfg=unit.config(v.extra["train"])
            )
            query = S.train(state_sql, v.extra["train"]["dataset_id"], unit.key, HOP)
            loss, metrics, rows, seconds, chunked = _node_one(node, unit.node, query, args)
            if chunked:
                raise UnitFailed(
                    "the model state is too large to hop between servers (over 1 GB); "
                    "place the dataset's partitions on one server"
                )
        else:
            args["cfg"] = unit.config(v.extra["valid"])
            query = S.evaluate(state_sql, v.extra["valid"]["dataset_id"], unit.key)
            loss, metrics, rows, seconds = _node_one(node, unit.node, query, args)
        result = {
            "loss": loss,
            "metrics": metrics,
            "rows": rows,
            "seconds": seconds,
            "node": unit.node,
            **_hop_figures(hop),
        }
        self._commit(coord, node, unit, unit_id, args, result, on_epoch)

    def _bring_state(
        self,
        coord: psycopg.Connection,
        node: psycopg.Connection,
        unit: Unit,
        args: dict[str, Any],
    ) -> Moved | None:
        """Put the unit's input state into the node's ``hop_states``; returns what moved
        (a zero-byte Moved when it was there already), None for a fresh model."""
        v = unit.view
        if unit.kind == "train" and not v.partitions_done:
            if not coord.execute(S.HAS_CHECKPOINT, args).fetchone():
                if unit.epoch > 1:
                    raise CheckpointMissing(
                        f"the checkpoint of epoch {unit.epoch - 1} is missing, so epoch "
                        f"{unit.epoch} cannot continue from it; clone the config with "
                        "fresh => true to train it again from the start"
                    )
                return None
            _refuse_chunked(coord, S.CHECKPOINT_IS_CHUNKED, args)
            query = S.checkpoint_as_state(v.config_id, unit.epoch)
            return self._move(coord, None, query, node, unit.node, v.config_id)
        if unit.source == unit.node:
            return Moved(0, 0, 0, 0.0)
        if unit.source is None:
            _refuse_chunked(coord, S.STATE_IS_CHUNKED, args)
            src = coord
        else:
            src = self.workers.node(unit.worker, unit.source)
        table = "states" if unit.source is None else HOP
        query = S.state_row(table, v.config_id, unit.epoch, v.partitions_done)
        return self._move(src, unit.source, query, node, unit.node, v.config_id)

    def _move(
        self,
        src: psycopg.Connection,
        src_name: str | None,
        query: sql.Composable,
        dst: psycopg.Connection,
        dst_name: str | None,
        config_id: int,
    ) -> Moved:
        """Replace the config's row in the node's ``hop_states`` with ``query``'s row."""
        try:
            with dst.transaction():
                dst.execute(S.clear_state(HOP), [config_id])
                return _stream(src, src_name, query, dst, HOP)
        except psycopg.OperationalError as e:
            if dst.broken and dst_name is not None:
                raise NodeDown(dst_name, str(e)) from None
            raise

    def _commit(
        self,
        coord: psycopg.Connection,
        node: psycopg.Connection,
        unit: Unit,
        unit_id: int,
        args: dict[str, Any],
        result: dict[str, Any],
        on_epoch: Callable[[dict[str, Any]], None],
    ) -> None:
        """Step 3: count the unit on the coordinator."""
        v = unit.view
        with coord.transaction():
            if unit.kind == "train":
                if len(set(args["new_done"])) >= v.n_train:
                    coord.execute(S.clear_state("states"), [v.config_id])
                    moved = _stream(
                        node,
                        unit.node,
                        S.state_row(HOP, v.config_id, unit.epoch, args["new_done"]),
                        coord,
                        "states",
                    )
                    result["hop_out_bytes"], result["hop_out_s"] = moved.bytes, moved.seconds
                if unit.completes_epoch:
                    lock_workload(coord, v.workload_id)
                coord.execute(S.SUBEPOCH_DONE, [args["new_done"], v.config_id])
            coord.execute(S.UNIT_OK, [json.dumps(result), unit_id])
            if unit.completes_epoch:
                on_epoch(commit_epoch(coord, unit))

    def tidy(self, coord: psycopg.Connection, unit: Unit) -> None:
        """After a unit counted: drop the copies of states that moved on (best effort; a
        copy left behind is overwritten by the config's next visit to that node)."""
        v = unit.view
        drops: list[tuple[str, list[int]]] = []
        if unit.source is not None and unit.source != unit.node:
            drops.append((unit.source, v.partitions_done))
        if unit.node is not None:
            if unit.kind == "valid":
                drops.append((unit.node, v.partitions_done))
            elif len(set(v.partitions_done) | {unit.partition}) >= v.n_train:
                drops.append((unit.node, [*v.partitions_done, unit.partition]))
        for where, done in drops:
            try:
                conn = self.workers.node(unit.worker, where)
                conn.execute(S.forget_state(HOP), [v.config_id, unit.epoch, done])
            except (psycopg.Error, NodeDown) as e:
                log.debug("config %s: copy on node %s not dropped: %s", v.config_id, where, e)


def _stream(
    src: psycopg.Connection,
    src_name: str | None,
    query: sql.Composable,
    dst: psycopg.Connection,
    table: str,
) -> Moved:
    """stream_rows, with a node that breaks while it sends turned into NodeDown."""
    try:
        return stream_rows(src, query, dst, f"cerebro.{table}", S.STATE_COLUMNS)
    except psycopg.OperationalError as e:
        if src_name is not None and (src.broken or src.closed):
            raise NodeDown(src_name, str(e)) from None
        raise


def _on_node(conn: psycopg.Connection, name: str, query: str, args: dict[str, Any]) -> bool:
    try:
        return conn.execute(query, args).fetchone() is not None
    except psycopg.OperationalError as e:
        if conn.broken:
            raise NodeDown(name, str(e)) from None
        raise


def _node_one(
    conn: psycopg.Connection, name: str, query: sql.Composed, args: dict[str, Any]
) -> tuple[Any, ...]:
    """The unit's statement on its node; a node that goes away meanwhile is NodeDown."""
    try:
        return one(conn, query, args)
    except psycopg.OperationalError as e:
        if conn.broken:
            raise NodeDown(name, str(e)) from None
        raise


def _refuse_chunked(coord: psycopg.Connection, query: str, args: dict[str, Any]) -> None:
    row = coord.execute(query, args).fetchone()
    if row and row[0]:
        raise UnitFailed(
            "the model state is stored in chunks (over CEREBRO_STATE_INLINE_MAX) and cannot "
            "hop to another server; place the dataset's partitions on one server"
        )


def _hop_figures(hop: Moved | None) -> dict[str, Any]:
    if hop is None:
        return {}
    return {"hop_in_bytes": hop.bytes, "hop_in_s": round(hop.seconds, 6)}
