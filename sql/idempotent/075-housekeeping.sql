-- Housekeeping: what keeps a search that runs for days from filling the disk (the README's
-- "Retention and disk use").
--
-- * Units (one row per sub-epoch) go `units_retention_days` after they ended, once their
--   epoch is committed; a unit that has not ended, or belongs to the epoch its config is in
--   now (the epoch commit sums it, the scheduler counts it), is never removed.
-- * Events go `events_retention_days` after they happened, once their workload is idle: no
--   active config and no event in that time (AutoML procedures read a workload's events).
-- * Checkpoints: per config the newest `keep_checkpoints` (a launch option), always the
--   latest (the scheduler continues from it, clone starts from it) and the best by the
--   workload's objective; `cerebro.prune_checkpoints` does the same once, on request.
--   Chunk rows of a removed checkpoint go with it (unless another row still refers to them).
-- The scheduler runs cerebro._housekeeping() every few minutes. Everything here skips rows
-- another transaction holds (SKIP LOCKED): housekeeping never waits, and whatever it skipped
-- goes next time.

-- A retention setting in days from cerebro.limits; 0 or a missing row means keep for ever.
create or replace function cerebro._retention_days(name text) returns double precision
language sql stable set search_path = pg_catalog, pg_temp as $$
    select coalesce(cerebro._limit(name), 0)
$$;

-- The size of the model state a checkpoint or states row holds (a chunked state's whole
-- size, not its reference's). Reads no more than the header of either.
create or replace function cerebro._state_bytes(state bytea) returns bigint
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
    select coalesce((cerebro._chunk_info(state) ->> 'size')::bigint,
                    pg_catalog.octet_length(state))
$$;

-- The checkpoints of a workload that keep = `keep` removes: per config all but the newest
-- `keep`, the latest and the best epoch by the workload's objective (ties: the later epoch).
create or replace function cerebro._prunable_checkpoints(workload_id int, keep int)
returns table (config_id int, epoch int)
language sql stable set search_path = pg_catalog, pg_temp as $$
    with scored as (
        select k.config_id, k.epoch,
               row_number() over (partition by k.config_id order by k.epoch desc) as newest,
               case when w.objective_direction = 'max' then -v.value else v.value end as loss
          from cerebro.checkpoints k
          join cerebro.configs c on c.config_id = k.config_id
          join cerebro.workloads w on w.workload_id = c.workload_id
          left join lateral (
              select cerebro.objective_value(m, w.objective) as value from cerebro.metrics m
               where m.config_id = k.config_id and m.epoch = k.epoch) v on true
         where c.workload_id = _prunable_checkpoints.workload_id
    ), ranked as (
        select s.*, row_number() over (partition by s.config_id
                                       order by s.loss asc nulls last, s.epoch desc) as best
          from scored s
    )
    select r.config_id, r.epoch from ranked r
     where r.newest > greatest(keep, 1) and not (r.best = 1 and r.loss is not null)
$$;

-- Remove them, note each in cerebro.pruned_checkpoints, drop their chunks and record one
-- 'prune_checkpoints' event as `actor`. Returns {checkpoints, bytes, chunks} removed. A
-- workload being dropped (its row locked) is left alone.
create or replace function cerebro._prune_checkpoints(workload_id int, keep int, actor text)
returns jsonb language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n bigint;
    bytes bigint;
    chunks bigint := 0;
    blobs bytea[];
begin
    perform 1 from cerebro.workloads w where w.workload_id = _prune_checkpoints.workload_id
        for key share skip locked;
    if not found then
        return jsonb_build_object('checkpoints', 0, 'bytes', 0, 'chunks', 0);
    end if;
    with gone as (
        delete from cerebro.checkpoints k
         where (k.config_id, k.epoch) in (
                select x.config_id, x.epoch from cerebro.checkpoints x
                 where (x.config_id, x.epoch) in (
                       select p.config_id, p.epoch
                         from cerebro._prunable_checkpoints(_prune_checkpoints.workload_id,
                                                            keep) p)
                   for update of x skip locked)
        returning k.config_id, k.epoch, cerebro._state_bytes(k.state) as bytes,
                  cerebro._chunk_blob(k.state) as blob
    ), noted as (
        insert into cerebro.pruned_checkpoints (config_id, epoch, keep, bytes)
        select g.config_id, g.epoch, _prune_checkpoints.keep, g.bytes from gone g
        on conflict (config_id, epoch) do update
           set keep = excluded.keep, bytes = excluded.bytes, pruned_at = excluded.pruned_at
    )
    select count(*), coalesce(sum(g.bytes), 0),
           array_agg(distinct g.blob) filter (where g.blob is not null)
      into n, bytes, blobs from gone g;
    -- a separate statement: it must see the deletes above (a clone may share a blob)
    select coalesce(sum(cerebro._drop_unreferenced_chunks(b)), 0) into chunks
      from unnest(blobs) b;
    if n > 0 then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (actor, _prune_checkpoints.workload_id, 'prune_checkpoints',
                jsonb_build_object('keep', keep, 'checkpoints', n, 'bytes', bytes,
                                   'chunks', chunks));
    end if;
    return jsonb_build_object('checkpoints', n, 'bytes', bytes, 'chunks', chunks);
end
$$;

-- Prune a workload's checkpoints now: per config keep the newest `keep`, the latest and the
-- best by the objective; a pruned epoch's evaluate/predict/export then says it was pruned.
-- Only the workload's owner or an admin may (it cannot be undone). Returns checkpoints
-- removed. For a workload that should stay pruned, launch it with options =>
-- '{"keep_checkpoints": N}': the scheduler's housekeeping then applies it after every epoch.
create or replace function cerebro.prune_checkpoints(workload text, keep int) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    w record;
begin
    select * into w from cerebro.workloads x where x.name = prune_checkpoints.workload;
    if not found or not (w.owner = session_user or cerebro._is_admin()) then
        raise exception 'cerebro: workload % does not exist or is not yours to prune',
              pg_catalog.quote_literal(workload) using errcode = '42501';
    end if;
    if keep is null or keep < 1 then
        raise exception 'cerebro: keep must be at least 1, got %', coalesce(keep::text, 'NULL')
              using errcode = '22023',
                    hint = 'the latest and the best checkpoint of each config are always kept';
    end if;
    return (cerebro._prune_checkpoints(w.workload_id, keep, cerebro.actor())
            ->> 'checkpoints')::bigint;
end
$$;

-- Units of committed epochs that ended `units_retention_days` ago. Returns rows removed.
create or replace function cerebro._expire_units() returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
    with days as (select cerebro._retention_days('units_retention_days') as n), gone as (
        delete from cerebro.units u where u.unit_id in (
            select x.unit_id from days, cerebro.units x join cerebro.configs c using (config_id)
             where days.n > 0 and x.ended_at < now() - days.n * interval '1 day'
               and x.epoch <= c.epoch
               for update of x skip locked)
        returning 1
    )
    select count(*) from gone
$$;

-- Events older than `events_retention_days` of idle workloads (no active config, no newer
-- event) and of no workload; one 'expire_events' event says how many went. Returns rows
-- removed.
create or replace function cerebro._expire_events() returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
    with days as (
        select d.n, now() - d.n * interval '1 day' as cutoff
          from (select cerebro._retention_days('events_retention_days') as n) d
    ), gone as (
        delete from cerebro.events e where e.event_id in (
            select x.event_id from days, cerebro.events x
             where days.n > 0 and x.at < days.cutoff
               and (x.workload_id is null or x.workload_id in (
                    select w.workload_id from cerebro.workloads w
                     where not exists (select 1 from cerebro.configs c
                                        where c.workload_id = w.workload_id
                                          and c.status = 'active')
                       and not exists (select 1 from cerebro.events y
                                        where y.workload_id = w.workload_id
                                          and y.at >= days.cutoff)))
               for update of x skip locked)
        returning 1
    ), counted as (
        select count(*) as n from gone
    ), noted as (
        insert into cerebro.events (actor, action, detail)
        select 'system', 'expire_events', jsonb_build_object(
                   'events', counted.n, 'retention_days', days.n, 'before', days.cutoff)
          from counted, days where counted.n > 0
    )
    select n from counted
$$;

-- The scheduler's housekeeping, every few minutes (and any time an admin likes): every
-- workload's keep_checkpoints, then the retention of units and events, and the state files
-- no row names. Returns what it removed: {checkpoints, checkpoint_bytes, chunks, units,
-- events, state_files}.
create or replace function cerebro._housekeeping() returns jsonb
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    pruned record;
begin
    select coalesce(sum((p.r ->> 'checkpoints')::bigint), 0) as checkpoints,
           coalesce(sum((p.r ->> 'bytes')::bigint), 0) as bytes,
           coalesce(sum((p.r ->> 'chunks')::bigint), 0) as chunks
      into pruned
      from (select cerebro._prune_checkpoints(
                       x.workload_id, floor((x.options ->> 'keep_checkpoints')::numeric)::int,
                       'system') as r
              from cerebro.workloads x
             where jsonb_typeof(x.options -> 'keep_checkpoints') = 'number'
               and (x.options ->> 'keep_checkpoints')::numeric >= 1) p;
    return jsonb_build_object('checkpoints', pruned.checkpoints,
                              'checkpoint_bytes', pruned.bytes, 'chunks', pruned.chunks,
                              'units', cerebro._expire_units(),
                              'events', cerebro._expire_events(),
                              'state_files', cerebro._collect_state_files());
end
$$;

-- Which checkpoints were pruned, for the workloads you may see (export/evaluate/predict read
-- it to say so).
alter table cerebro.pruned_checkpoints enable row level security;
drop policy if exists visible on cerebro.pruned_checkpoints;
create policy visible on cerebro.pruned_checkpoints for select
    using (config_id in (select cerebro._visible_configs()));
