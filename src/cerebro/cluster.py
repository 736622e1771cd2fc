"""The embedded default: a project-managed PostgreSQL cluster with plpython3u and cerebro.

The server runs as an unprivileged OS user (PostgreSQL refuses root) and listens only on a
Unix socket inside the cluster's own directory (no TCP port to collide with or to expose).
Training code inside the database imports the project's Python environment (the same
Keras/TensorFlow the client sees) through ``cerebro_python.path`` in the data directory, which
every PL/Python body of the extension reads before its first import: so the server finds the
code however it was started (``cerebro up``, ``pg_ctl``, ``pg_ctlcluster``, systemd), with no
environment variable to remember.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import paths
from .install import install_extension_files

DEFAULT_PORT = 54329
DATABASE = "cerebro"
SUPERUSER = "postgres"
# the daemon's login (created NOLOGIN by the extension; `cerebro up` lets it log in locally)
SCHEDULER_ROLE = "cerebro_scheduler"


class ClusterError(RuntimeError):
    pass


def _pg_config(flag: str) -> str:
    exe = shutil.which("pg_config") or "/usr/bin/pg_config"
    try:
        return subprocess.check_output([exe, flag], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise ClusterError(
            "pg_config not found: install PostgreSQL >= 14 (Debian: apt-get install postgresql-15)"
        ) from e


@dataclass(frozen=True)
class Cluster:
    home: Path
    port: int
    os_user: str

    @classmethod
    def default(cls) -> Cluster:
        port = int(os.environ.get("CEREBRO_PORT", DEFAULT_PORT))
        if os.geteuid() == 0:
            user = os.environ.get("CEREBRO_OS_USER", "postgres")
        else:
            user = pwd.getpwuid(os.geteuid()).pw_name
        return cls(paths.home(), port, user)

    # -- locations ---------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgresql.log"

    @property
    def bindir(self) -> Path:
        return Path(_pg_config("--bindir"))

    def conninfo(self, dbname: str = DATABASE, user: str = SUPERUSER) -> str:
        return f"host={self.run_dir} port={self.port} user={user} dbname={dbname}"

    def scheduler_conninfo(self, dbname: str = DATABASE) -> str:
        """Where the daemon connects: as ``cerebro_scheduler``, not as a superuser."""
        return self.conninfo(dbname, SCHEDULER_ROLE)

    # -- running commands as the server's OS user ---------------------------------------
    def _as_server_user(
        self, argv: list[str], env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        full_env = dict(os.environ if env is None else env)
        if os.geteuid() == 0 and self.os_user != "root":
            # runuser would reset part of the environment: pass what the server needs.
            pw = pwd.getpwnam(self.os_user)
            passed = {k: v for k, v in full_env.items() if k in _SERVER_ENV_KEYS}
            passed["HOME"] = pw.pw_dir
            argv = [
                "runuser",
                "-u",
                self.os_user,
                "--",
                "env",
                *(f"{k}={v}" for k, v in passed.items()),
                *argv,
            ]
        proc = subprocess.run(argv, env=full_env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def _server_env(self) -> dict[str, str]:
        """The server's environment: the caller's, minus anything that would make it import
        another Python than the one ``cerebro_python.path`` names (a restart by pg_ctl or
        systemd does not have ours either, and must behave the same)."""
        env = dict(os.environ)
        for key in ("PGDATA", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(key, None)
        return env

    # -- state ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        proc = self._as_server_user(
            [str(self.bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False
        )
        return proc.returncode == 0

    def _prepare_dirs(self) -> None:
        for d in (self.home, self.run_dir, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and self.os_user != "root":
            pw = pwd.getpwnam(self.os_user)
            for d in (self.run_dir, self.log_file.parent):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            if self.data_dir.exists():
                os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            _grant_traverse(self.home, self.os_user)
            _grant_traverse(paths.udfs_dir(), self.os_user)
            _grant_traverse(paths.site_packages(), self.os_user)
        os.chmod(self.run_dir, 0o700)

    def init(self) -> bool:
        """Create the data directory on first use. Returns True when it was created."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self._prepare_dirs()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0 and self.os_user != "root":
            pw = pwd.getpwnam(self.os_user)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self._as_server_user(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# cerebro embedded default\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.run_dir}'\n"
                "max_connections = 64\n"
                "shared_buffers = 256MB\n"
                "work_mem = 64MB\n"
                "maintenance_work_mem = 256MB\n"
                "max_wal_size = 4GB\n"
                "logging_collector = off\n"
            )
        return True

    def start(self) -> None:
        self._prepare_dirs()
        if self.is_running():
            return
        env = self._server_env()
        self._as_server_user(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port}",
            ],
            env=env,
        )

    def stop(self) -> None:
        if not self.is_running():
            return
        self._as_server_user(
            [str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise ClusterError(f"server did not accept connections: {e}") from e
                time.sleep(0.1)

    def ensure_database(self, dbname: str = DATABASE) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", [dbname]
            ).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(dbname))
                )
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            check_server_python(conn)
            write_python_path(conn)
            create_or_update_extension(conn)
            allow_scheduler_login(conn)

    def up(self) -> None:
        """Idempotent: install the extension files, initialise, start, create the database;
        restart once if max_connections had to grow."""
        install_extension_files()
        self.init()
        self.start()
        self.wait_ready()
        self.ensure_database()
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            sized = size_connections(conn)
        if sized:
            print(f"cerebro: max_connections raised to {sized}; restarting the server")
            self.stop()
            self.start()
            self.wait_ready()


_SERVER_ENV_KEYS = {
    "PATH",
    "PYTHONPATH",
    "KERAS_BACKEND",
    "KERAS_HOME",
    "TF_CPP_MIN_LOG_LEVEL",
    "CEREBRO_SERVER",
    "LANG",
    "LC_ALL",
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "TF_ENABLE_ONEDNN_OPTS",
}


def _grant_traverse(path: Path, user: str) -> None:
    """Let ``user`` reach ``path``: add o+x to ancestors that block it (e.g. a mktemp dir).

    The server must read the project's Python environment and in-database code; a checkout
    under a private directory would otherwise fail with a confusing ImportError inside SQL.
    """
    pw = pwd.getpwnam(user)
    p = path.resolve()
    for d in [*reversed(p.parents), p]:
        st = d.stat()
        if st.st_uid == pw.pw_uid:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        os.chmod(d, st.st_mode | stat.S_IXOTH)
        print(f"cerebro: added o+x to {d} so that the server's user {user!r} can reach {path}")


def check_server_python(conn: psycopg.Connection) -> None:
    """Fail clearly when PL/Python embeds another Python minor than the project environment."""
    conn.execute("create extension if not exists plpython3u")
    conn.execute(
        "create or replace function pg_temp.cerebro_pyver() returns text "
        "language plpython3u as $$\nimport sys\nreturn '%d.%d' % sys.version_info[:2]\n$$"
    )
    row = conn.execute("select pg_temp.cerebro_pyver()").fetchone()
    assert row is not None  # a function call returns one row
    server = row[0]
    ours = "{}.{}".format(*paths.python_minor())
    if server != ours:
        raise ClusterError(
            f"PL/Python embeds Python {server} but the project environment is Python {ours}; "
            f"build the environment with python{server} (make setup PYTHON=python{server})"
        )


PYTHON_PATH_FILE = "cerebro_python.path"  # in the data directory (a backend's working dir)


def python_path() -> list[str]:
    """What the server puts in front of sys.path: the in-database code and the project's
    environment (Keras, TensorFlow, numpy: the versions the client uses too)."""
    return [str(paths.udfs_dir()), str(paths.site_packages())]


def write_python_path(conn: psycopg.Connection) -> str:
    """Write ``cerebro_python.path`` into the server's data directory (through the server
    itself, as its OS user: no file access from here is needed, so this works for any server
    a superuser can reach); returns the file's full path.

    Every PL/Python body of the extension reads it before its first import, so a server
    restarted by pg_ctl, pg_ctlcluster or systemd finds cerebro without a PYTHONPATH.
    Written atomically: a backend never reads half a file."""
    conn.execute(
        "create or replace function pg_temp.cerebro_write_python_path(lines text) returns text "
        "language plpython3u as $f$\n"
        "import os\n"
        f"name = {PYTHON_PATH_FILE!r}\n"
        "with open(name + '.tmp', 'w') as f:\n"
        "    f.write(lines)\n"
        "    f.flush()\n"
        "    os.fsync(f.fileno())\n"
        "os.replace(name + '.tmp', name)\n"
        "return os.path.abspath(name)\n"
        "$f$"
    )
    lines = "".join(p + "\n" for p in python_path())
    row = conn.execute("select pg_temp.cerebro_write_python_path(%s)", [lines]).fetchone()
    assert row is not None  # a function call returns one row
    return str(row[0])


# the first lines of every PL/Python body of the extension (tests/test_layers.py checks)
BOOT = (
    "import os, sys\n"
    "if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): "
    "sys.path[:0] = open('cerebro_python.path').read().splitlines()\n"
)


def check_server_imports(conn: psycopg.Connection) -> None:
    """Fail clearly when the server cannot import cerebro's code the way the extension's
    functions do (through cerebro_python.path)."""
    try:
        conn.execute(f"do $$\n{BOOT}import cerebro_udfs, keras\n$$ language plpython3u")
    except psycopg.Error as e:
        raise ClusterError(
            f"the server cannot import cerebro's Python code through {PYTHON_PATH_FILE} "
            f"in its data directory ({e.diag.message_primary}); it must list "
            + " and ".join(python_path())
            + ", readable by the server's OS user"
        ) from e


# connections left for people, BI tools and the tests next to the daemon's
USER_CONNECTIONS = 40


def size_connections(conn: psycopg.Connection) -> int | None:
    """Make max_connections fit the largest dataset anyone may load (the daemon keeps one
    worker connection per partition, plus its leader and listener) and USER_CONNECTIONS
    more. Returns the new value when it had to grow (it takes effect at the next start),
    None when it was large enough."""
    row = conn.execute(
        "select cerebro._limit('max_partitions')::int + 2 + %s, "
        "current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int",
        [USER_CONNECTIONS],
    ).fetchone()
    assert row is not None  # a select without FROM returns one row
    needed, total, reserved = row
    if total - reserved >= needed:
        return None
    new = needed + reserved
    conn.execute(f"alter system set max_connections = {new:d}")
    return new


def allow_scheduler_login(conn: psycopg.Connection) -> None:
    """Let the daemon log in as cerebro_scheduler. The embedded server accepts local socket
    connections only (trust); on other servers an admin also sets a password or a
    certificate for it (README, "Security model")."""
    row = conn.execute(
        "select rolcanlogin from pg_roles where rolname = %s", [SCHEDULER_ROLE]
    ).fetchone()
    if row is not None and not row[0]:
        conn.execute(
            psycopg.sql.SQL("alter role {} login").format(psycopg.sql.Identifier(SCHEDULER_ROLE))
        )


def boot_session(conn: psycopg.Connection) -> None:
    """Put cerebro's code on this backend's sys.path now. The functions of releases before
    0.4.0 import it without reading cerebro_python.path, and an upgrade from one of them
    runs some of them before replacing them."""
    conn.execute(f"do $$\n{BOOT}$$ language plpython3u")


def create_or_update_extension(conn: psycopg.Connection) -> None:
    boot_session(conn)
    row = conn.execute("select extversion from pg_extension where extname = 'cerebro'").fetchone()
    if row is None:
        conn.execute("create extension cerebro cascade")
    else:
        conn.execute("alter extension cerebro update")
