"""Binary streaming between two real PostgreSQL servers (issue 14: the state-hop path).

Two node servers on 127.0.0.1 with scram passwords, started by the function ``cerebro up
--nodes`` calls; states are moved with ``cerebro.transfer.stream_rows`` and compared on the
servers themselves (md5 computed by each server), so a lost, reordered or re-encoded byte
fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql

from cerebro.nodes import NODE_LOGIN, NodeServer
from cerebro.transfer import stream_rows
from helpers import fresh_database, local_nodes

MB = 1 << 20
TABLE = "hop_states"


@pytest.fixture(scope="module")
def two_nodes(server_dsn: str) -> Iterator[list[NodeServer]]:
    coordinator = fresh_database(server_dsn, "cerebro_transfer")
    with local_nodes(coordinator, 2) as (_, servers):
        for s in servers:
            # the superuser over the node's socket; the hop itself runs as the node login
            with psycopg.connect(s.conninfo(), autocommit=True) as c:
                t = sql.Identifier(TABLE)
                c.execute(sql.SQL("drop table if exists {}").format(t))
                c.execute(
                    sql.SQL("create unlogged table {} (id int, part int, state bytea)").format(t)
                )
                c.execute(sql.SQL("grant all on {} to {}").format(t, sql.Identifier(NODE_LOGIN)))
        yield servers


def _put(conn: psycopg.Connection, state_id: int, blob: bytes, parts: int) -> None:
    """Store ``blob`` on a server as ``parts`` rows (a chunked state when parts > 1)."""
    size = -(-len(blob) // parts)
    with conn.cursor().copy(f"copy {TABLE} (id, part, state) from stdin") as cp:
        for i in range(parts):
            cp.write_row([state_id, i, blob[i * size : (i + 1) * size]])


def _md5(conn: psycopg.Connection, state_id: int) -> tuple[str, int]:
    row = conn.execute(
        f"select md5(string_agg(state, ''::bytea order by part)), "
        f"sum(length(state))::bigint from {TABLE} where id = %s",
        [state_id],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("parts", [1, 24])
def test_a_state_streams_between_servers_bit_for_bit(two_nodes, parts):
    src_node, dst_node = two_nodes
    blob = np.random.default_rng(parts).bytes(24 * MB + 7)  # odd size: no lucky alignment
    state_id = 100 + parts
    with (
        psycopg.connect(src_node.tcp_conninfo(), autocommit=True) as src,
        psycopg.connect(dst_node.tcp_conninfo()) as dst,
    ):
        _put(src, state_id, blob, parts)
        query = sql.SQL("select id, part, state from {} where id = {} order by part").format(
            sql.Identifier(TABLE), sql.Literal(state_id)
        )
        moved = stream_rows(src, query, dst, TABLE, ["id", "part", "state"])
        # not committed yet: another session on the destination sees nothing
        with psycopg.connect(dst_node.tcp_conninfo(), autocommit=True) as other:
            assert _md5(other, state_id) == (None, None)
        dst.commit()
        assert _md5(dst, state_id) == _md5(src, state_id)
        assert _md5(dst, state_id)[1] == len(blob)
    assert moved.chunks == parts + 1  # one COPY message per row, then the trailer
    assert moved.bytes > len(blob)  # the binary COPY framing around the payload
    # what the relay held at once: one row, never the whole state when it is chunked
    assert moved.max_chunk < len(blob) / parts + 64 * 1024


def test_a_failed_stream_leaves_nothing_on_the_destination(two_nodes):
    src_node, dst_node = two_nodes
    with (
        psycopg.connect(src_node.tcp_conninfo(), autocommit=True) as src,
        psycopg.connect(dst_node.tcp_conninfo()) as dst,
    ):
        _put(src, 300, b"\x00\x01" * 1000, 2)
        # a bytea where the destination expects an int: the binary COPY refuses the row
        query = sql.SQL("select state, part, state from {} where id = 300").format(
            sql.Identifier(TABLE)
        )
        with pytest.raises(psycopg.Error):
            stream_rows(src, query, dst, TABLE, ["id", "part", "state"])
        dst.rollback()
        assert _md5(dst, 300) == (None, None)
