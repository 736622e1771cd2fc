"""Moving rows between two PostgreSQL servers in binary, streamed (issue 14: state hops).

A model state that trained on one node must reach the node holding the next partition. The
path is PostgreSQL's own binary COPY on both ends: ``COPY (query) TO STDOUT (FORMAT binary)``
on the source streams into ``COPY table FROM STDIN (FORMAT binary)`` on the destination
row by row as libpq receives them: nothing is text- or hex-encoded, the destination checks
the types as it parses, and the client (the scheduler) holds one row at a time — a whole
state when it is one row, one chunk of it when the state is stored chunked.
Both servers must agree on the column types (they run the same extension version).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Moved:
    """What one stream moved: bytes of COPY data, chunks relayed, the largest chunk (what the
    client held at once) and the wall time."""

    bytes: int
    chunks: int
    max_chunk: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


def stream_rows(
    src: psycopg.Connection,
    query: sql.Composable,
    dst: psycopg.Connection,
    table: str,
    columns: list[str],
) -> Moved:
    """Stream the rows of ``query`` on ``src`` into ``table (columns)`` on ``dst`` with binary
    COPY (which binds no ``$n`` parameters: compose values into ``query`` as ``sql.Literal``).
    Runs in the connections' current transactions: the caller commits ``dst`` (and so decides
    whether the moved rows count); a failure midway leaves nothing visible there."""
    copy_out = sql.SQL("copy ({}) to stdout (format binary)").format(query)
    schema, _, name = table.rpartition(".")
    target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    copy_in = sql.SQL("copy {} ({}) from stdin (format binary)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    total = chunks = biggest = 0
    t0 = time.perf_counter()
    with src.cursor().copy(copy_out) as out, dst.cursor().copy(copy_in) as into:
        for data in out:
            into.write(data)
            total += len(data)
            chunks += 1
            biggest = max(biggest, len(data))
    return Moved(total, chunks, biggest, time.perf_counter() - t0)
