-- 0.4.0: partitions placed on nodes, and the state cache of a node (issue 14).
--
-- A dataset loaded with load_dataset(..., nodes => ...) is packed here, on the coordinator,
-- as before (one encoding, one normalisation, the same checks); each partition that belongs
-- on another server gets a row here, and the scheduler ships its buffers there with binary
-- COPY, then deletes them here. A partition without a row lives on the coordinator
-- ('local'), which is how every dataset of a single-server deployment stays.
create table cerebro.placements (
    dataset_id int not null references cerebro.datasets (dataset_id) on delete cascade,
    partition  int not null check (partition >= 0),
    node_id    int not null references cerebro.nodes (node_id) on delete restrict,
    placed_at  timestamptz,          -- null: still here, waiting for the scheduler to ship it
    buffers    bigint,               -- as shipped (the coordinator no longer has the rows)
    rows       bigint,
    bytes      bigint,
    primary key (dataset_id, partition)
);

-- On a node: the state after the last sub-epoch a config ran there (a cache: the coordinator
-- holds the truth, checkpoints and the epoch counter). No foreign keys, since a node has no
-- configs; unlogged, since losing it in a crash only restarts that config's epoch.
create unlogged table cerebro.hop_states (
    config_id       int primary key,
    epoch           int not null,
    partitions_done int[] not null,
    state           bytea not null,
    result          jsonb,
    updated_at      timestamptz not null default now()
);
alter table cerebro.hop_states alter column state set storage external;
-- where partitions live is the user's data, like the datasets: a dump keeps it
select pg_catalog.pg_extension_config_dump('cerebro.placements', '');
-- and a node's state cache, as cerebro.states: a restored node goes on mid-epoch
select pg_catalog.pg_extension_config_dump('cerebro.hop_states', '');
