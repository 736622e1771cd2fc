-- 0.4.0: dump and restore (README, "Backup: pg_dump and restore"). pg_dump skips the rows of
-- an extension's tables unless the extension marks them with pg_extension_config_dump; these
-- are the tables whose rows are users' work, so a dump taken by a superuser holds all of it
-- and a restore into a new cluster trains on where the dump left off. Tables created by a
-- later migration mark themselves there (this one runs before them).
--
-- Not dumped: cerebro.schedulers, the daemons connected to *this* server (backend pids and
-- heartbeats), which mean nothing elsewhere; a scheduler started on the restored database
-- writes its own row.
--
-- Dumped, and why the restored rows are consistent: pg_dump reads every table in one
-- snapshot, and the scheduler commits a sub-epoch's state (states, state_chunks), its unit
-- and configs.partitions_done in one transaction, and an epoch's checkpoint, metrics row and
-- epoch counter in another. So:
--   states        the sub-epoch state of each config in the middle of an epoch (unlogged,
--                 but pg_dump reads unlogged tables): the restored scheduler continues the
--                 epoch from it instead of restarting it. When it is not in the dump
--                 (--no-unlogged-table-data, or a dump taken on a standby) the epoch restarts
--                 from its checkpoint, as after a crash of the server.
--   units         not only a log: the validation partitions done this epoch and the epoch's
--                 metrics come from its 'ok' rows; a unit in flight at the dump (open row) is
--                 booked 'lost' by the restore (below) and runs again.
--   events        the audit trail, and the history the AutoML procedures read.
--   state_chunks  the bytes of chunked states and checkpoints.
--   weights       the uploads' rows; their files live in the data directory
--                 (cerebro_weights/), which pg_dump does not read: copy that directory.
select pg_catalog.pg_extension_config_dump('cerebro.datasets', '');
select pg_catalog.pg_extension_config_dump('cerebro.datasets_dataset_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.buffers', '');
select pg_catalog.pg_extension_config_dump('cerebro.workloads', '');
select pg_catalog.pg_extension_config_dump('cerebro.workloads_workload_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.configs', '');
select pg_catalog.pg_extension_config_dump('cerebro.configs_config_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.metrics', '');
select pg_catalog.pg_extension_config_dump('cerebro.checkpoints', '');
select pg_catalog.pg_extension_config_dump('cerebro.states', '');
select pg_catalog.pg_extension_config_dump('cerebro.state_chunks', '');
select pg_catalog.pg_extension_config_dump('cerebro.units', '');
select pg_catalog.pg_extension_config_dump('cerebro.units_unit_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.events', '');
select pg_catalog.pg_extension_config_dump('cerebro.events_event_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.shares', '');
select pg_catalog.pg_extension_config_dump('cerebro.weights', '');
select pg_catalog.pg_extension_config_dump('cerebro.weights_weights_id_seq', '');

-- The extension script itself inserts rows into two tables: the roster models and the
-- default caps. Their dumped rows are wanted all the same: an admin's raised cap must
-- survive, and a roster model's id is what workloads reference, and it is not the same in
-- every database (one created at 0.1.0 that had custom models before its upgrade to 0.2.0
-- numbered the later roster models after them). So both tables are dumped whole, and in a
-- restore a dumped row replaces the row CREATE EXTENSION installed under the same name.
select pg_catalog.pg_extension_config_dump('cerebro.models', '');
select pg_catalog.pg_extension_config_dump('cerebro.models_model_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.limits', '');

-- A restore runs with session_replication_role = replica (superuser only; README): the
-- catalog's triggers exist as soon as CREATE EXTENSION ran, before the data is loaded, and
-- must not treat restored rows as new steering (owners from the session, the config state
-- machine, events, NOTIFY, foreign keys checked row by row). The three triggers below are
-- the only ones that act then, and they act only then: never in normal use. (The one on
-- models fires always, to say what to do when a dump is restored without replica.)
create function cerebro._restore_model() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if pg_catalog.current_setting('session_replication_role') <> 'replica' then
        if new.kind = 'roster' and exists (select 1 from cerebro.models m
                                            where m.name = new.name) then
            raise exception 'cerebro: roster model % is already installed', new.name
                  using errcode = '23505',
                        hint = 'restoring a dump? run pg_restore with PGOPTIONS=''-c '
                               'session_replication_role=replica'' (README, "Backup: '
                               'pg_dump and restore")';
        end if;
        return new;
    end if;
    -- the installed roster model of this name gives way to the dumped one
    delete from cerebro.models m where m.name = new.name;
    -- an installed roster model holding this id steps aside until its own dumped row
    -- replaces it (a negative id is never a dumped one, and nothing in the new database
    -- references an installed row yet)
    update cerebro.models m set model_id = -m.model_id where m.model_id = new.model_id;
    return new;
end
$$;
create trigger restore_replaces before insert on cerebro.models
    for each row execute function cerebro._restore_model();
alter table cerebro.models enable always trigger restore_replaces;

create function cerebro._restore_limit() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    -- the installed default gives way to the dumped value (a cap added by a later release
    -- than the dump's keeps its default)
    delete from cerebro.limits l where l.name = new.name;
    return new;
end
$$;
create trigger restore_replaces before insert on cerebro.limits
    for each row execute function cerebro._restore_limit();
alter table cerebro.limits enable replica trigger restore_replaces;

create function cerebro._restore_unit() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    -- a unit that was running when the dump was taken never commits here: booked lost at
    -- once, as a scheduler's recovery would (a scheduler may be running here already), so
    -- that its backend_pid, the old server's, is never taken for a backend of this one
    -- (cerebro.stop(..., immediate => true) cancels the backend of an open unit)
    if new.ended_at is null then
        new.outcome := 'lost';
        new.ended_at := now();
        new.error := 'in flight when the database was dumped';
    end if;
    return new;
end
$$;
create trigger restore_closes before insert on cerebro.units
    for each row execute function cerebro._restore_unit();
alter table cerebro.units enable replica trigger restore_closes;
