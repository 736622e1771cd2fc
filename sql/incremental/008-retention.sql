-- 0.4.0: nothing grows without bound. A search runs for days: units (one row per sub-epoch)
-- and events go after a retention that admins set, and checkpoints (one model state per
-- config per epoch) are pruned to a workload's keep_checkpoints. The functions are in
-- sql/idempotent/075-housekeeping.sql; the README's "Retention and disk use" describes it.

-- Retention settings live next to the caps in cerebro.limits (only cerebro_admin updates it):
-- `<what>_retention_days`, where 0 means keep for ever.
alter table cerebro.limits drop constraint limits_name_check;
alter table cerebro.limits add constraint limits_name_check
    check (name ~ '^(max_[a-z_]+|[a-z]+_retention_days)$');
alter table cerebro.limits drop constraint limits_value_check;
alter table cerebro.limits add constraint limits_value_check
    check (value > 0 or (value = 0 and name ~ '_retention_days$'));
insert into cerebro.limits (name, value, description) values
('units_retention_days', 30,
 'days a finished unit (cerebro.units row of a committed epoch) is kept; 0 = for ever'),
('events_retention_days', 365,
 'days an event is kept once its workload is idle (no active config, no newer event); '
 '0 = for ever');

-- What the retention deletes by: the end of a unit, the time of a workload's events.
create index units_ended on cerebro.units (ended_at) where ended_at is not null;
create index events_workload_at on cerebro.events (workload_id, at);

-- Checkpoints removed by keep_checkpoints or cerebro.prune_checkpoints, so that asking for
-- one says it was pruned (and under which keep) rather than that it never existed.
create table cerebro.pruned_checkpoints (
    config_id  int not null references cerebro.configs (config_id) on delete cascade,
    epoch      int not null check (epoch >= 0),
    keep       int not null check (keep > 0),     -- the keep_checkpoints it was pruned under
    bytes      bigint not null default 0,         -- size of the model state it held
    pruned_at  timestamptz not null default now(),
    primary key (config_id, epoch)
);
-- user data: pg_dump keeps it (see 007-dump.sql)
select pg_catalog.pg_extension_config_dump('cerebro.pruned_checkpoints', '');
