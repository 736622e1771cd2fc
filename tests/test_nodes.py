"""Nodes (issue 14, items 1 and 5): the catalog, the health probe, ``cerebro up --nodes``.

The module starts two node servers in a temporary CEREBRO_HOME with the function
``cerebro up --nodes 2`` calls (``nodes.up_nodes``): real PostgreSQL servers on 127.0.0.1
with scram passwords, registered on a fresh coordinator database of the shared server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cerebro.nodes import NODE_LOGIN, NodeServer, probe, up_nodes
from helpers import fetch_all, fresh_database, local_nodes

ADMIN, USER = "nodes_test_admin", "nodes_test_user"
CLI = str(Path(sys.executable).with_name("cerebro"))


class Deployment:
    def __init__(self, home: Path, coordinator: str, servers: list[NodeServer]) -> None:
        self.home, self.coordinator, self.servers = home, coordinator, servers
        self.os_user = servers[0].os_user

    def as_role(self, role: str) -> str:
        return psycopg.conninfo.make_conninfo(self.coordinator, user=role)


@pytest.fixture(scope="module")
def deployment(server_dsn: str) -> Iterator[Deployment]:
    coordinator = fresh_database(server_dsn, "cerebro_nodes")
    with psycopg.connect(coordinator, autocommit=True) as c:
        for role, group in ((ADMIN, "cerebro_admin"), (USER, "cerebro_user")):
            c.execute(
                sql.SQL(
                    "do $$ begin if not exists (select 1 from pg_roles where rolname = {}) "
                    "then create role {} login; end if; end $$"
                ).format(sql.Literal(role), sql.Identifier(role))
            )
            c.execute(
                sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(role))
            )
    with local_nodes(coordinator, 2) as (home, servers):
        yield Deployment(home, coordinator, servers)


def node_conninfo(server: NodeServer, **kw: Any) -> str:
    return psycopg.conninfo.make_conninfo(server.tcp_conninfo(), connect_timeout=3, **kw)


def test_nodes_are_registered_and_reachable_only_with_the_pgpass_password(deployment):
    rows = fetch_all(deployment.coordinator, "select name, conninfo from cerebro.nodes order by 1")
    assert rows == [(s.name, s.tcp_conninfo()) for s in deployment.servers]
    assert {s.port for s in deployment.servers} == {
        int(psycopg.conninfo.conninfo_to_dict(ci)["port"]) for _, ci in rows
    }
    assert all("password" not in ci for _, ci in rows)
    pgpass = deployment.home / "pgpass"
    assert pgpass.stat().st_mode & 0o777 == 0o600
    for s in deployment.servers:
        with psycopg.connect(node_conninfo(s, passfile=str(pgpass))) as c:
            row = c.execute(
                "select current_user, inet_server_addr()::text, "
                "(select extversion from pg_extension where extname = 'cerebro'), "
                "(select count(*) from pg_extension where extname = 'plpython3u')"
            ).fetchone()
        assert row == (NODE_LOGIN, "127.0.0.1/32", "0.4.0", 1)
        # scram is enforced: no password, a wrong one, the superuser over TCP: all refused
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(node_conninfo(s, passfile=str(deployment.home / "absent")))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(node_conninfo(s, password="wrong", passfile="/dev/null"))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(node_conninfo(s, user="postgres", password="x", passfile="/dev/null"))


@pytest.mark.parametrize(
    "conninfo, message",
    [
        ("host=127.0.0.1 port=5432 password=s3cret", r"carries a password.*\.pgpass"),
        ("postgresql://me:s3cret@127.0.0.1:5432/cerebro", r"carries a password.*\.pgpass"),
        ("host=127.0.0.1 sslpassword=s3cret", r"carries a password.*\.pgpass"),
        ("host=127.0.0.1 port", "malformed conninfo"),
        ("hots=127.0.0.1", r"malformed conninfo.*unknown keyword.*hots"),
        ("", "malformed conninfo"),
    ],
)
def test_add_node_refuses_secrets_and_malformed_conninfo(deployment, conninfo, message):
    with psycopg.connect(deployment.as_role(ADMIN), autocommit=True) as c:
        with pytest.raises(psycopg.errors.RaiseException, match=message):
            c.execute("select cerebro.add_node('nodex', %s)", [conninfo])
    assert fetch_all(deployment.coordinator, "select name from cerebro.nodes order by 1") == [
        ("node1",),
        ("node2",),
    ]


def test_add_node_refuses_a_duplicate_and_the_reserved_name(deployment):
    with psycopg.connect(deployment.as_role(ADMIN), autocommit=True) as c:
        with pytest.raises(psycopg.errors.RaiseException, match="node node1 already exists"):
            c.execute("select cerebro.add_node('node1', 'host=127.0.0.1 port=1')")
        with pytest.raises(psycopg.errors.RaiseException, match="invalid node name 'local'"):
            c.execute("select cerebro.add_node('local', 'host=127.0.0.1 port=1')")
        with pytest.raises(psycopg.errors.RaiseException, match="invalid node name"):
            c.execute("select cerebro.add_node('Node 3', 'host=127.0.0.1 port=1')")


def test_a_plain_user_cannot_manage_nodes_nor_read_their_conninfo(deployment):
    with psycopg.connect(deployment.as_role(USER), autocommit=True) as c:
        for call in (
            "select cerebro.add_node('evil', 'host=10.0.0.1')",
            "select cerebro.drop_node('node1')",
            "select conninfo from cerebro.nodes",
            "select cerebro._node_seen('node1', 'forged')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(call)
        health = c.execute("select * from cerebro.node_health order by name").fetchall()
        columns = [d.name for d in c.execute("select * from cerebro.node_health").description]
    assert [h[0] for h in health] == ["local", "node1", "node2"]
    assert "conninfo" not in columns
    assert fetch_all(deployment.coordinator, "select count(*) from cerebro.nodes") == [(2,)]


def test_add_and_drop_are_audited_with_the_admin_as_actor(deployment):
    with psycopg.connect(deployment.as_role(ADMIN), autocommit=True) as c:
        node_id = c.execute(
            "select cerebro.add_node('node9', 'host=127.0.0.1 port=1 dbname=cerebro')"
        ).fetchone()
        dropped = c.execute(
            "select cerebro.drop_node('node9'), cerebro.drop_node('node9')"
        ).fetchone()
    assert dropped == (True, False)
    events = fetch_all(
        deployment.coordinator,
        "select actor, action, detail->>'node', (detail->>'node_id')::int, workload_id "
        "from cerebro.events where detail->>'node' = 'node9' order by event_id",
    )
    assert node_id is not None
    assert events == [
        (f"human:{ADMIN}", "add_node", "node9", node_id[0], None),
        (f"human:{ADMIN}", "drop_node", "node9", node_id[0], None),
    ]


def health(dsn: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(dsn) as c:
        return {h.name: (h.error, h.extversion, h.last_seen_at) for h in probe(c)}


def catalog_health(dsn: str) -> dict[str, tuple[Any, ...]]:
    rows = fetch_all(dsn, "select name, last_error, healthy from cerebro.node_health")
    return {name: (error, ok) for name, error, ok in rows}


def run_cli(deployment: Deployment, *args: str) -> subprocess.CompletedProcess:
    """``cerebro`` as a person runs it: the pgpass file found through CEREBRO_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSFILE", "CEREBRO_DSN")}
    env["CEREBRO_HOME"] = str(deployment.home)
    return subprocess.run(
        [CLI, *args, "--dsn", deployment.coordinator],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_probe_records_a_stopped_node_and_its_return(deployment):
    first = health(deployment.coordinator)
    assert {n: h[:2] for n, h in first.items()} == {
        "node1": (None, "0.4.0"),
        "node2": (None, "0.4.0"),
    }
    assert all(h[2] is not None for h in first.values())
    node2 = deployment.servers[1]
    node2.stop()
    try:
        down = health(deployment.coordinator)
        assert down["node1"][:2] == (None, "0.4.0")
        assert down["node2"][0] is not None and "127.0.0.1" in down["node2"][0]
        assert down["node2"][2] == first["node2"][2]  # last seen: before it stopped
        recorded = catalog_health(deployment.coordinator)
        assert recorded["node1"] == (None, True)
        assert recorded["node2"][0] == down["node2"][0] and recorded["node2"][1] is False
        cli = run_cli(deployment, "nodes")
        assert cli.returncode == 4, cli.stderr
        assert "node2" in cli.stdout and "DOWN" in cli.stdout
    finally:
        # a plain `cerebro up` (n=0) after `up --nodes 2`: starts the stopped node of the
        # recorded deployment, keeps its port, registers nothing twice
        again = up_nodes(deployment.home, 0, deployment.coordinator, deployment.os_user, 0)
    assert [(s.name, s.port) for s in again] == [(s.name, s.port) for s in deployment.servers]
    back = health(deployment.coordinator)
    assert back["node2"][:2] == (None, "0.4.0") and back["node2"][2] > first["node2"][2]
    assert catalog_health(deployment.coordinator)["node2"] == (None, True)
    assert fetch_all(deployment.coordinator, "select count(*) from cerebro.nodes") == [(2,)]


def test_cerebro_nodes_and_status_print_both_nodes(deployment):
    cli = run_cli(deployment, "nodes")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0] == "node:      local (this coordinator)"
    for s in deployment.servers:
        [line] = [x for x in lines if f" {s.name} " in x]
        assert f"port={s.port}" in line and "reachable, cerebro 0.4.0" in line, line
    status = run_cli(deployment, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    # the same lines as `cerebro nodes` (up to the time of the probe)
    node_lines = [x.split("; last seen")[0] for x in status.stdout.splitlines() if "node:" in x]
    assert node_lines == [x.split("; last seen")[0] for x in lines]
