#!/usr/bin/env bash
# Creates docker/secrets/ for docker/compose.yaml: random passwords (mode 0600) and the libpq
# password file the scheduler and the coordinator use to reach the other servers. Existing
# files are kept (run it again after deleting one to make a new one). The directory is
# git-ignored; nothing here ever goes into an image or the catalog.
#
#   postgres_password    the `postgres` superuser of every server
#   scheduler_password   the cerebro_scheduler login on the coordinator (the daemon)
#   node_password        the cerebro_coordinator login on the nodes
#   pgpass               coordinator:5432:cerebro:cerebro_scheduler:... and nodeN:5432:cerebro:cerebro_coordinator:...
#
#   CEREBRO_NODES   the nodes' host names (node1 node2 node3), as in compose.yaml
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)/secrets
nodes=${CEREBRO_NODES:-node1 node2 node3}
mkdir -p "$dir"
umask 077

# [A-Za-z0-9] only: nothing to escape in a pgpass line or a shell (a subshell without
# pipefail: tr ends on SIGPIPE once head has its 32 characters)
new_password() {
    (
        set +o pipefail
        LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
    )
}

for name in postgres_password scheduler_password node_password; do
    if [ ! -s "$dir/$name" ]; then
        new_password >"$dir/$name"
        echo "created $dir/$name"
    fi
done

if [ ! -s "$dir/pgpass" ]; then
    {
        echo "coordinator:5432:cerebro:cerebro_scheduler:$(cat "$dir/scheduler_password")"
        for node in $nodes; do
            echo "$node:5432:cerebro:cerebro_coordinator:$(cat "$dir/node_password")"
        done
    } >"$dir/pgpass"
    echo "created $dir/pgpass"
fi
