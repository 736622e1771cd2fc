"""Nodes: a local multi-server deployment (``cerebro up --nodes N``) and the health probe.

A node is a separate PostgreSQL server with the extension, registered on the coordinator
with ``cerebro.add_node``. ``cerebro up --nodes N`` starts N of them next to the embedded
coordinator, each a :class:`NodeServer`: the embedded cluster's own code (initdb as the
server's OS user, ``cerebro_python.path``, the extension) with a data directory under
``$CEREBRO_HOME/nodes/node<i>/`` and, unlike the coordinator, a TCP port on 127.0.0.1 that
only accepts scram-sha-256 passwords, so the deployment is reached the way remote servers
are. The password of the coordinator's login on the nodes is generated here and kept in
``$CEREBRO_HOME/pgpass`` (mode 0600); the catalog never holds it, and every cerebro command
points libpq at that file through PGPASSFILE (:func:`use_pgpass`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from .cluster import DATABASE, Cluster

# the coordinator's login on every node: it runs training there and places data there
NODE_LOGIN = "cerebro_coordinator"
NODE_LOGIN_ROLES = ("cerebro_scheduler", "cerebro_admin")
BASE_PORT = 54330
LISTEN = "127.0.0.1"
CONNECT_TIMEOUT = 3  # seconds: a probe of a dead node must not hold `cerebro status` up
HBA = (
    "# cerebro node: the superuser administers through the Unix socket (its directory is\n"
    "# 0700, so only the server's OS user and root reach it); the network needs a password.\n"
    "local all all trust\n"
    f"host all all {LISTEN}/32 scram-sha-256\n"
)


def nodes_dir(home: Path) -> Path:
    return home / "nodes"


def pgpass_file(home: Path) -> Path:
    return home / "pgpass"


def state_file(home: Path) -> Path:
    """``{"node1": port, ...}``: the ports chosen once, so a restart keeps each node's port."""
    return nodes_dir(home) / "nodes.json"


def use_pgpass(home: Path) -> None:
    """Point libpq at ``$CEREBRO_HOME/pgpass`` unless the user chose a PGPASSFILE: the
    commands and the daemon they start (it inherits the environment) then reach the nodes."""
    f = pgpass_file(home)
    if f.exists() and "PGPASSFILE" not in os.environ:
        os.environ["PGPASSFILE"] = str(f)


@dataclass(frozen=True)
class NodeServer(Cluster):
    """One node server: the embedded cluster, listening on TCP 127.0.0.1 with scram."""

    name: str = "node1"

    def init(self) -> bool:
        created = super().init()
        if created:
            # later settings win: this overrides the coordinator's "listen_addresses = ''"
            with (self.data_dir / "postgresql.conf").open("a") as f:
                f.write(
                    f"\n# cerebro node {self.name}\nlisten_addresses = '{LISTEN}'\n"
                    "password_encryption = 'scram-sha-256'\nshared_buffers = 128MB\n"
                )
            (self.data_dir / "pg_hba.conf").write_text(HBA)
        return created

    def tcp_conninfo(self, user: str = NODE_LOGIN, dbname: str = DATABASE) -> str:
        """What the coordinator registers: no password (that is in the pgpass file)."""
        return f"host={LISTEN} port={self.port} dbname={dbname} user={user}"

    def ensure_login(self, password: str) -> None:
        """Create (or re-password) the coordinator's login on this node."""
        ident = sql.Identifier(NODE_LOGIN)
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [NODE_LOGIN])
            verb = "alter" if exists.fetchone() else "create"
            conn.execute(
                # bypassrls: the coordinator ships datasets and buffers here with COPY, which
                # tables under row-level security refuse to any other role
                sql.SQL(verb + " role {} login bypassrls password {}").format(
                    ident, sql.Literal(password)
                )
            )
            for role in NODE_LOGIN_ROLES:
                conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role), ident))

    def up_node(self) -> None:
        """Idempotent: initialise, start, create the database with the extension."""
        self.init()
        self.start()
        self.wait_ready()
        self.ensure_database()


# -- the pgpass file --------------------------------------------------------------------------
def _read_pgpass(path: Path) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 5 and not line.startswith("#"):
                out[(parts[0], parts[1], parts[3])] = parts[4]
    return out


def node_password(home: Path, port: int) -> str:
    """The login's password for the node on ``port``: the one in the pgpass file, or a new
    one added there (0600: libpq ignores a pgpass file others can read)."""
    path = pgpass_file(home)
    key = (LISTEN, str(port), NODE_LOGIN)
    known = _read_pgpass(path).get(key)
    if known:
        return known
    password = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: nothing to escape in pgpass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{LISTEN}:{port}:*:{NODE_LOGIN}:{password}\n")
    os.chmod(path, 0o600)
    return password


# -- ports --------------------------------------------------------------------------------------
def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LISTEN, port))
        except OSError:
            return False
    return True


def _choose_ports(home: Path, n: int, base_port: int) -> dict[str, int]:
    """Each node's port: the recorded one, else base_port+i if free, else a free one."""
    path = state_file(home)
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    taken = set(ports.values())
    for i in range(1, n + 1):
        name = f"node{i}"
        if name in ports:
            continue
        port = base_port + i if base_port else 0
        if not port or port in taken or not _port_free(port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LISTEN, 0))
                port = s.getsockname()[1]
        ports[name] = port
        taken.add(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ports, indent=1))
    return ports


def node_servers(home: Path, os_user: str) -> list[NodeServer]:
    """The node servers recorded under ``home`` (started or not)."""
    path = state_file(home)
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    return [
        NodeServer(nodes_dir(home) / name, port, os_user, name)
        for name, port in sorted(ports.items())
    ]


def up_nodes(
    home: Path, n: int, coordinator_dsn: str, os_user: str, base_port: int = BASE_PORT
) -> list[NodeServer]:
    """Start nodes node1..nodeN under ``home`` and register them on the coordinator.

    Idempotent: a stopped node starts, a running one is left alone, a missing registration
    is added (and one with another conninfo replaced); nodes created earlier start too, so
    a plain ``cerebro up`` after ``cerebro down`` brings the whole deployment back.
    ``base_port`` 0 takes free ports."""
    n = max(n, len(node_servers(home, os_user)))
    ports = _choose_ports(home, n, base_port)
    servers = [
        s for s in node_servers(home, os_user) if s.name in {f"node{i}" for i in range(1, n + 1)}
    ]
    for server in servers:
        server.up_node()
        server.ensure_login(node_password(home, ports[server.name]))
    register(coordinator_dsn, servers)
    use_pgpass(home)
    return servers


def register(coordinator_dsn: str, servers: list[NodeServer]) -> None:
    """Make the coordinator's catalog name each server with its TCP conninfo."""
    with psycopg.connect(coordinator_dsn, autocommit=True) as conn:
        known: dict[str, str] = dict(
            conn.execute("select name, conninfo from cerebro.nodes").fetchall()
        )
        for s in servers:
            if known.get(s.name) == s.tcp_conninfo():
                continue
            if s.name in known:
                conn.execute("select cerebro.drop_node(%s)", [s.name])
            conn.execute("select cerebro.add_node(%s, %s)", [s.name, s.tcp_conninfo()])


def down_nodes(home: Path, os_user: str) -> list[str]:
    """Stop every node server under ``home``; returns the names stopped."""
    stopped = []
    for s in node_servers(home, os_user):
        if s.is_running():
            s.stop()
            stopped.append(s.name)
    return stopped


# -- health -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeHealth:
    name: str
    conninfo: str
    error: str | None  # None: reachable, with the extension and PL/Python
    extversion: str | None
    last_seen_at: object  # datetime | None, as the catalog has it after this probe


def check_node(conninfo: str) -> tuple[str | None, str | None]:
    """(error, cerebro's extension version) of one node, as seen from here."""
    try:
        with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as c:
            rows: dict[str, str] = dict(
                c.execute(
                    "select extname, extversion from pg_extension "
                    "where extname in ('cerebro', 'plpython3u')"
                ).fetchall()
            )
    except psycopg.Error as e:
        return " ".join(str(e).split()) or type(e).__name__, None
    if "cerebro" not in rows:
        return "the cerebro extension is not installed in this database", None
    if "plpython3u" not in rows:
        return "PL/Python (plpython3u) is not installed", rows["cerebro"]
    return None, rows["cerebro"]


def probe(conn: psycopg.Connection) -> list[NodeHealth]:
    """Connect to every registered node, record what was seen (cerebro._node_seen) and
    return it. Commits on ``conn``: the health must outlive this call for the others."""
    nodes = conn.execute("select name, conninfo from cerebro.nodes order by name").fetchall()
    seen = []
    for name, conninfo in nodes:
        error, version = check_node(conninfo)
        conn.execute("select cerebro._node_seen(%s, %s)", [name, error])
        seen.append((name, conninfo, error, version))
    conn.commit()
    last: dict[str, object] = dict(
        conn.execute("select name, last_seen_at from cerebro.nodes").fetchall()
    )
    return [NodeHealth(n, ci, err, v, last.get(n)) for n, ci, err, v in seen]


def health_lines(health: list[NodeHealth]) -> list[str]:
    """What ``cerebro nodes`` and ``cerebro status`` print."""
    out = ["node:      local (this coordinator)"]
    for h in health:
        seen = f"{h.last_seen_at:%Y-%m-%d %H:%M:%S %Z}" if h.last_seen_at else "never"
        state = f"reachable, cerebro {h.extversion}" if h.error is None else f"DOWN: {h.error}"
        out.append(f"node:      {h.name} ({h.conninfo}): {state}; last seen {seen}")
    return out
