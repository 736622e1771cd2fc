#!/usr/bin/env bash
# Registers the compose file's nodes on the coordinator (the one-shot `register-nodes`
# service; installed in the image as /usr/local/bin/cerebro-register-nodes). Idempotent: a
# node already registered with the same conninfo is left alone, one with another conninfo is
# dropped and added again (as `cerebro up --nodes` does).
#
# The conninfo names no password: whoever connects to a node (the coordinator's server, the
# scheduler daemon) finds it in its PGPASSFILE (the `pgpass` secret); the catalog never holds
# it. This script connects to the coordinator as the superuser through the private
# PGPASSFILE the entrypoint made from the postgres_password secret.
#
#   CEREBRO_COORDINATOR   conninfo of the coordinator (host=coordinator port=5432 dbname=cerebro user=postgres)
#   CEREBRO_NODES         the nodes' host names, also their names in cerebro.nodes (node1 node2 node3)
#   CEREBRO_NODE_LOGIN    the login on the nodes (cerebro_coordinator)
#   CEREBRO_NODE_PORT     the nodes' port (5432)
set -euo pipefail

COORDINATOR=${CEREBRO_COORDINATOR:-host=coordinator port=5432 dbname=cerebro user=postgres}
NODES=${CEREBRO_NODES:-node1 node2 node3}
LOGIN=${CEREBRO_NODE_LOGIN:-cerebro_coordinator}
PORT=${CEREBRO_NODE_PORT:-5432}

psql_coordinator() {
    psql "$COORDINATOR" -X -v ON_ERROR_STOP=1 -qAt "$@"
}

has_add_node=$(psql_coordinator -c "select to_regproc('cerebro.add_node') is not null")
if [ "$has_add_node" != t ]; then
    echo "cerebro-register-nodes: this cerebro has no cerebro.add_node (nodes need 0.4.0)" >&2
    exit 1
fi

for node in $NODES; do
    conninfo="host=$node port=$PORT dbname=cerebro user=$LOGIN"
    psql_coordinator -v name="$node" -v conninfo="$conninfo" <<'SQL'
select coalesce((select conninfo = :'conninfo' from cerebro.nodes where name = :'name'), false)
    as same \gset
\if :same
\echo cerebro-register-nodes: :name already registered
\else
select cerebro.drop_node(:'name') \g /dev/null
select cerebro.add_node(:'name', :'conninfo') \g /dev/null
\echo cerebro-register-nodes: registered :name as :conninfo
\endif
SQL
done
psql_coordinator -c "select name, conninfo from cerebro.nodes order by name"
