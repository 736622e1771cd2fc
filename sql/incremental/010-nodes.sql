-- 0.4.0: nodes (issue 14). A deployment is one coordinator database (this one: catalog,
-- workloads, configs, metrics, checkpoints, events) and the PostgreSQL servers registered
-- here as nodes. The coordinator itself is the implicit node 'local': with no row here,
-- everything runs on this one server as before.
--
-- conninfo never holds a secret (cerebro.add_node refuses one): the password comes from where
-- libpq always looks (.pgpass / PGPASSFILE, a service file, the environment) on the machine
-- that connects. last_seen_at / last_error are written by the health probe (cerebro nodes,
-- cerebro status) through cerebro._node_seen.
create table cerebro.nodes (
    node_id       serial primary key,
    name          text not null unique
                  check (name ~ '^[a-z_][a-z0-9_]{0,62}$' and name <> 'local'),
    conninfo      text not null,
    added_at      timestamptz not null default now(),
    added_by      text not null,
    last_seen_at  timestamptz,
    last_error    text,
    last_error_at timestamptz
);
-- the nodes are the deployment's shape, not a property of this server: a dump keeps them
select pg_catalog.pg_extension_config_dump('cerebro.nodes', '');
select pg_catalog.pg_extension_config_dump('cerebro.nodes_node_id_seq', '');
