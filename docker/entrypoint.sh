#!/usr/bin/env bash
# cerebro's container entrypoint (docker/Dockerfile installs it as /usr/local/bin/cerebro-entrypoint).
#
#   cerebro-entrypoint postgres [postgres options]   a coordinator or node (the image's CMD)
#   cerebro-entrypoint COMMAND [ARGS]                anything else, e.g. `cerebro scheduler --dsn ...`
#
# Server mode, every start: initdb on first start (scram-sha-256 over TCP, peer on the socket),
# a temporary socket-only server for setup (database `cerebro`, cerebro_python.path written
# through the server, CREATE EXTENSION cerebro CASCADE or ALTER EXTENSION cerebro UPDATE,
# the cerebro_scheduler login's password, max_connections sized), then PostgreSQL in the
# foreground as a child of this script, which forwards TERM/INT/QUIT/HUP to it and exits with
# its status. TCP clients (and pg_isready) see the server only once setup is done.
#
# Secrets are read here, as root, and never written into the image or the catalog:
#   CEREBRO_PASSWORD or CEREBRO_PASSWORD_FILE (/run/secrets/postgres_password)
#       the `postgres` superuser's password (required on first start of a server)
#   CEREBRO_SCHEDULER_PASSWORD or CEREBRO_SCHEDULER_PASSWORD_FILE (/run/secrets/scheduler_password)
#       the cerebro_scheduler login's password (optional: without it the role stays NOLOGIN)
#   CEREBRO_NODE_PASSWORD or CEREBRO_NODE_PASSWORD_FILE (/run/secrets/node_password)
#       on a node: the cerebro_coordinator login's password (optional, as above)
#   CEREBRO_PGPASS_FILE (/run/secrets/pgpass)
#       a libpq password file for reaching other servers (the nodes); copied to a private
#       PGPASSFILE owned by the server's OS user, for the server and for any COMMAND
# In command mode the superuser password, when this container was given it, becomes a
# `*:*:*:postgres:` line of that private PGPASSFILE (register-nodes uses it).
#
# Other settings: PGDATA (/var/lib/postgresql/data/pgdata), PGPORT (5432),
# CEREBRO_LISTEN ('*'), CEREBRO_SOCKET_DIR (/run/postgresql), CEREBRO_RUN_DIR (/run/cerebro),
# CEREBRO_OS_USER (postgres), CEREBRO_VENV (/opt/cerebro/venv), CEREBRO_SRC (/opt/cerebro/src).
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
PGPORT=${PGPORT:-5432}
LISTEN=${CEREBRO_LISTEN:-*}
SOCKET_DIR=${CEREBRO_SOCKET_DIR:-/run/postgresql}
RUN_DIR=${CEREBRO_RUN_DIR:-/run/cerebro}
OS_USER=${CEREBRO_OS_USER:-postgres}
VENV=${CEREBRO_VENV:-/opt/cerebro/venv}
SRC=${CEREBRO_SRC:-/opt/cerebro/src}
PG_MAJOR=${PG_MAJOR:-15}
BINDIR=${CEREBRO_PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
PGPASS_SECRET=${CEREBRO_PGPASS_FILE:-/run/secrets/pgpass}

say() { echo "cerebro-entrypoint: $*" >&2; }

# a secret from VAR or VAR_FILE (the file wins when both are set); empty when neither is
read_secret() {
    local var=$1 default_file=$2
    local file_var=${var}_FILE
    local file=${!file_var:-$default_file}
    if [ -f "$file" ]; then
        # $(<file) drops trailing newlines: `echo pw > file` means the password "pw"
        printf '%s' "$(<"$file")"
    else
        printf '%s' "${!var:-}"
    fi
}

# the prefix that runs a command as the server's OS user (in AS_USER), without an extra
# process (setpriv and env exec). `set_as_user clean` (the server and its setup) starts from
# an empty environment: the server must not see PYTHONPATH and friends (cerebro_python.path
# decides which Python it imports); `set_as_user keep` (a COMMAND) keeps the container's
# environment (the service's settings) minus the password variables.
AS_USER=()
set_as_user() {
    local mode=$1 home
    home=$(getent passwd "$OS_USER" | cut -d: -f6)
    AS_USER=()
    if [ "$(id -u)" -eq 0 ]; then
        AS_USER=(setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups --)
    fi
    if [ "$mode" = clean ]; then
        AS_USER+=(env -i "PATH=$VENV/bin:$BINDIR:/usr/local/bin:/usr/bin:/bin" "LANG=C.UTF-8")
    else
        AS_USER+=(env -u CEREBRO_PASSWORD -u CEREBRO_SCHEDULER_PASSWORD -u CEREBRO_NODE_PASSWORD
            -u PGPASSWORD "PATH=$VENV/bin:$BINDIR:$PATH")
    fi
    AS_USER+=("HOME=$home" "USER=$OS_USER" "PGPORT=$PGPORT")
    if [ -f "$RUN_DIR/pgpass" ]; then
        AS_USER+=("PGPASSFILE=$RUN_DIR/pgpass")
    fi
}

as_user() {
    "${AS_USER[@]}" "$@"
}

# the directories the OS user owns: data (0700), socket, private run dir (0700)
prepare_dirs() {
    mkdir -p "$PGDATA" "$SOCKET_DIR" "$RUN_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$OS_USER:$OS_USER" "$PGDATA" "$SOCKET_DIR" "$RUN_DIR"
    fi
    chmod 0700 "$PGDATA" "$RUN_DIR"
    chmod 2775 "$SOCKET_DIR"
}

# a pgpass field: backslash and colon escaped
pgpass_escape() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//:/\\:}"
}

# the private PGPASSFILE: the mounted pgpass secret (+ the superuser line in command mode)
install_pgpass() {
    local superuser_pw=$1 target=$RUN_DIR/pgpass
    rm -f "$target"
    if [ ! -f "$PGPASS_SECRET" ] && [ -z "$superuser_pw" ]; then
        return 0
    fi
    (
        umask 077
        : >"$target"
        if [ -f "$PGPASS_SECRET" ]; then
            cat "$PGPASS_SECRET" >>"$target"
            [ -z "$(tail -c1 "$target")" ] || echo >>"$target"
        fi
        if [ -n "$superuser_pw" ]; then
            printf '*:*:*:postgres:%s\n' "$(pgpass_escape "$superuser_pw")" >>"$target"
        fi
    )
    [ "$(id -u)" -ne 0 ] || chown "$OS_USER:$OS_USER" "$target"
}

# first start: initdb with the superuser's password (through a private file, deleted after)
init_cluster() {
    local password=$1
    if [ -z "$password" ]; then
        say "no password for the postgres superuser: set CEREBRO_PASSWORD_FILE (a Docker" \
            "secret) or CEREBRO_PASSWORD"
        exit 1
    fi
    local pwfile=$RUN_DIR/initdb.pw
    (umask 077 && printf '%s\n' "$password" >"$pwfile")
    [ "$(id -u)" -ne 0 ] || chown "$OS_USER:$OS_USER" "$pwfile"
    say "initialising $PGDATA"
    as_user "$BINDIR/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2
    rm -f "$pwfile"
    cat >>"$PGDATA/postgresql.conf" <<EOF

# cerebro container (docker/entrypoint.sh); listen_addresses and port come from the command line
password_encryption = 'scram-sha-256'
max_connections = 64
shared_buffers = 256MB
work_mem = 64MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
logging_collector = off
EOF
    cat >>"$PGDATA/pg_hba.conf" <<EOF

# cerebro container: any address, password (scram) only
host    all             all             all                     scram-sha-256
EOF
}

# what `cerebro install` does against a running server, minus copying the extension files
# (the image did that at build time, as root): cerebro_python.path written through the
# server, the server's imports checked, CREATE EXTENSION cerebro CASCADE (or UPDATE); then the
# logins' passwords (SCRAM verifiers computed here: the plain text never reaches the server
# or its log) and max_connections sized for the daemon. The passwords arrive on stdin,
# NUL-separated: cerebro_scheduler's, then cerebro_coordinator's (the login the coordinator
# and the daemon use on a node, as `cerebro up --nodes` makes it: member of
# cerebro_scheduler and cerebro_admin); an empty one leaves that login alone.
SETUP_PY='
import sys

import psycopg
from psycopg import sql

from cerebro.cluster import (
    check_server_imports,
    check_server_python,
    create_or_update_extension,
    size_connections,
    write_python_path,
)


def set_login(conn, role, password, grants, attributes=""):
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
    verb = "alter" if exists else "create"
    conn.execute(
        sql.SQL(verb + " role {} login " + attributes + " password {}").format(
            sql.Identifier(role), sql.Literal(verifier.decode())
        )
    )
    for granted in grants:
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(granted), sql.Identifier(role)))
    print("cerebro-entrypoint: login", role, "has its password", file=sys.stderr)


scheduler_password, node_password = sys.stdin.read().split("\0")
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    check_server_python(conn)
    print("cerebro-entrypoint: wrote", write_python_path(conn), file=sys.stderr)
    check_server_imports(conn)
    create_or_update_extension(conn)
    if scheduler_password:
        set_login(conn, "cerebro_scheduler", scheduler_password, [])
    if node_password:
        # bypassrls: the coordinator ships partitions here with COPY (refused under RLS)
        set_login(conn, "cerebro_coordinator", node_password,
                  ["cerebro_scheduler", "cerebro_admin"], "bypassrls")
    grown = size_connections(conn)
    if grown:
        print("cerebro-entrypoint: max_connections set to", grown, file=sys.stderr)
'

setup_database() {
    local scheduler_pw=$1 node_pw=$2
    local dsn="host=$SOCKET_DIR port=$PGPORT user=postgres dbname=postgres"
    if [ -z "$(as_user psql "$dsn" -XAtc "select 1 from pg_database where datname = 'cerebro'")" ]; then
        as_user psql "$dsn" -Xq -c "create database cerebro" >&2
    fi
    printf '%s\0%s' "$scheduler_pw" "$node_pw" |
        as_user env "PYTHONPATH=$SRC/src" "$VENV/bin/python" -c "$SETUP_PY" \
            "host=$SOCKET_DIR port=$PGPORT user=postgres dbname=cerebro"
}

pg_ctl_user() {
    as_user "$BINDIR/pg_ctl" -D "$PGDATA" "$@"
}

run_server() {
    local password scheduler_pw node_pw
    password=$(read_secret CEREBRO_PASSWORD /run/secrets/postgres_password)
    scheduler_pw=$(read_secret CEREBRO_SCHEDULER_PASSWORD /run/secrets/scheduler_password)
    node_pw=$(read_secret CEREBRO_NODE_PASSWORD /run/secrets/node_password)
    prepare_dirs
    install_pgpass ""
    set_as_user clean
    [ -s "$PGDATA/PG_VERSION" ] || init_cluster "$password"
    say "setting up (socket only: no TCP client sees the server yet)"
    pg_ctl_user -w -t 120 -o "-c listen_addresses='' -p $PGPORT -k $SOCKET_DIR" start >&2
    setup_database "$scheduler_pw" "$node_pw"
    pg_ctl_user -w -m fast stop >&2
    say "starting PostgreSQL on port $PGPORT (listen_addresses '$LISTEN')"
    "${AS_USER[@]}" "$BINDIR/postgres" -D "$PGDATA" -p "$PGPORT" -k "$SOCKET_DIR" \
        -c "listen_addresses=$LISTEN" "$@" &
    local pid=$!
    for sig in TERM INT QUIT HUP; do
        # shellcheck disable=SC2064  # the pid is fixed now
        trap "kill -$sig $pid 2>/dev/null || true" "$sig"
    done
    local status=0
    while true; do
        status=0
        wait "$pid" || status=$?
        kill -0 "$pid" 2>/dev/null || break # a trapped signal interrupts wait: wait again
    done
    say "PostgreSQL exited with status $status"
    exit "$status"
}

run_command() {
    local password
    password=$(read_secret CEREBRO_PASSWORD /run/secrets/postgres_password)
    mkdir -p "$RUN_DIR"
    chmod 0700 "$RUN_DIR"
    [ "$(id -u)" -ne 0 ] || chown "$OS_USER:$OS_USER" "$RUN_DIR"
    install_pgpass "$password"
    set_as_user keep
    exec "${AS_USER[@]}" "$@"
}

if [ "${1:-postgres}" = postgres ]; then
    [ $# -eq 0 ] || shift
    run_server "$@"
else
    run_command "$@"
fi
