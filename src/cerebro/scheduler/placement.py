"""Where partitions live, and shipping the ones placed on nodes (issue 14).

``load_dataset(..., nodes => ...)`` packs on the coordinator and records in
``cerebro.placements`` the node each partition belongs on. The daemon, which holds the
nodes' connections (and, through libpq's password file, their secrets), ships such a
partition with binary COPY: on the node, in one transaction, the dataset's row (once) and the
partition's buffers, replacing what an interrupted shipment left; then, on the coordinator,
the partition is marked placed and its buffers here are deleted. Re-running a shipment is
harmless, so a crash anywhere in between only repeats it. Units of a partition not yet
placed wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from ..schedule import ConfigView
from ..transfer import stream_rows
from . import statements as S
from .connections import connect
from .unit import NodeDown

log = logging.getLogger("cerebro.scheduler")


@dataclass
class Placement:
    """The coordinator's placements as last read: (dataset, partition) -> (node, placed)."""

    where: dict[tuple[int, int], tuple[str, bool]] = field(default_factory=dict)
    conninfo: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: psycopg.Connection) -> Placement:
        where = {(d, p): (n, placed) for d, p, n, placed in conn.execute(S.PLACEMENTS)}
        return cls(where, dict(conn.execute(S.NODES).fetchall()))

    @property
    def pending(self) -> list[tuple[int, int, str]]:
        return sorted((d, p, n) for (d, p), (n, placed) in self.where.items() if not placed)

    def node_of(self, dataset_id: int, partition: int) -> str | None:
        """The node holding a partition (None: the coordinator)."""
        got = self.where.get((dataset_id, partition))
        return None if got is None else got[0]

    def locate(self, view: ConfigView, kind: str, partition: int) -> tuple[str | None, str | None]:
        """(node of the unit's partition, node holding the state it continues from)."""
        train = view.extra["train"]["dataset_id"]
        if kind == "train":
            node = self.node_of(train, partition)
            source = (
                self.node_of(train, view.partitions_done[-1]) if view.partitions_done else None
            )
        else:  # validation starts from the epoch's final state, which the coordinator holds
            node, source = self.node_of(view.extra["valid"]["dataset_id"], partition), None
        return node, source

    def ready(self, view: ConfigView, kind: str, partition: int) -> bool:
        """Whether the unit's partition is where it belongs (shipped, if placed on a node)."""
        ds = view.extra["train" if kind == "train" else "valid"]["dataset_id"]
        got = self.where.get((ds, partition))
        return got is None or got[1]


class Shipper:
    """Ships pending partitions to their nodes over its own node connections."""

    def __init__(self, on_node: Callable[[str, str | None], None]) -> None:
        self.conns: dict[str, psycopg.Connection] = {}
        self.on_node = on_node  # (node, error or None): what the loop records

    def ship(self, coord: psycopg.Connection, placement: Placement, skip: set[str]) -> int:
        """Ship every pending partition whose node is not in ``skip``; returns how many."""
        shipped = 0
        for dataset_id, partition, name in placement.pending:
            if name in skip:
                continue
            try:
                node = self._conn(name, placement.conninfo)
                self._ship_one(coord, node, dataset_id, partition)
            except NodeDown as e:
                self.on_node(e.node, e.error)
                skip.add(name)
                continue
            except psycopg.OperationalError as e:
                if coord.broken:
                    raise
                self.on_node(name, str(e).strip())
                skip.add(name)
                continue
            shipped += 1
        return shipped

    def _conn(self, name: str, conninfo: dict[str, str]) -> psycopg.Connection:
        conn = self.conns.get(name)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = connect(conninfo[name], "cerebro shipper")
            except psycopg.OperationalError as e:
                raise NodeDown(name, str(e).strip().splitlines()[-1]) from None
            self.conns[name] = conn
        return conn

    def _ship_one(
        self, coord: psycopg.Connection, node: psycopg.Connection, dataset_id: int, partition: int
    ) -> None:
        with node.transaction():
            here = coord.execute(S.DATASET_STAMP, [dataset_id]).fetchone()
            there = node.execute(S.DATASET_STAMP, [dataset_id]).fetchone()
            if here is None:
                return  # dropped meanwhile: its placements went with it
            if there != here:
                name = coord.execute(S.DATASET_NAME, [dataset_id]).fetchone()
                node.execute(S.FORGET_NODE_DATASET, [dataset_id, name[0] if name else None])
                stream_rows(
                    coord, S.dataset_row(dataset_id), node, "cerebro.datasets", S.DATASET_COLUMNS
                )
            node.execute(S.DELETE_BUFFERS, [dataset_id, partition])
            moved = stream_rows(
                coord,
                S.buffer_rows(dataset_id, partition),
                node,
                "cerebro.buffers",
                S.BUFFER_COLUMNS,
            )
        with coord.transaction():
            coord.execute(S.PLACED, {"d": dataset_id, "p": partition})
            coord.execute(S.DELETE_BUFFERS, [dataset_id, partition])
        log.info(
            "dataset %s partition %s shipped: %.1f MB in %.2f s",
            dataset_id,
            partition,
            moved.bytes / 1e6,
            moved.seconds,
        )

    def collect_garbage(self, coord: psycopg.Connection) -> int:
        """On each node that answers, drop the datasets this coordinator no longer places
        there (dropped, or loaded again under another id; returns how many) and the state
        copies no config can need any more. A node serves one coordinator."""
        placement = Placement.read(coord)
        live = coord.execute(S.LIVE_CONFIGS).fetchone()
        removed = 0
        for name in sorted(placement.conninfo):
            keep = sorted({d for (d, _), (n, _) in placement.where.items() if n == name})
            try:
                node = self._conn(name, placement.conninfo)
                removed += node.execute(S.NODE_DATASETS_GC, [keep]).rowcount
                node.execute(S.NODE_STATES_GC, [live[0] if live else []])
            except NodeDown:
                continue
            except psycopg.OperationalError:
                if coord.broken:
                    raise
        return removed

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()
