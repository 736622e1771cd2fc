-- Workloads: launching a search, waking the scheduler, and the views people and BI tools read.

-- Start a model-selection search: inserts the workload and its configs (grid: the product
-- of the `choice` lists; random, asha, hyperband, pbt: `num_configs` samples with `seed`;
-- hyperopt: TPE suggestions, `parallelism` at a time) and returns its id. `options` are the
-- procedure's parameters (hyperopt: parallelism, n_startup_jobs; asha/hyperband:
-- min_epochs, eta; pbt: interval, quantile, perturb, resample_probability).
-- Training starts when the transaction commits. The workload is yours (its owner); train and
-- valid must be your datasets. `params` are fixed parameters for every
-- config; `objective` is e.g. valid_loss (minimised) or valid_accuracy (maximised); add
-- ':min'/':max' to state the direction of another metric.
create or replace function cerebro.launch(
    name text,
    model text,
    train text,
    valid text default null,
    search text default 'grid',
    space jsonb default '{}'::jsonb,
    num_configs int default null,
    max_epochs int default 10,
    objective text default 'valid_loss',
    seed bigint default 0,
    params jsonb default '{}'::jsonb,
    priority int default 0,
    options jsonb default '{}'::jsonb
) returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import launch
return launch(plpy, name, model, train, valid, search, space, num_configs, max_epochs,
              objective, seed, params, priority, options)
$$;

-- One step of a workload's AutoML procedure (hyperopt: suggest up to `parallelism` configs
-- in flight; asha/hyperband: promote stopped configs that now rank in their rung's top).
-- The scheduler calls it whenever the workload's events change; safe to call any time.
create or replace function cerebro.automl_step(workload_id int) returns int
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import automl_step
return automl_step(plpy, workload_id)
$$;

-- Called by the scheduler in the transaction that commits a config's epoch: ASHA/Hyperband
-- stop a config at a rung it does not pass, PBT exploits and explores.
create or replace function cerebro._on_epoch(config_id int, epoch int) returns void
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import on_epoch
on_epoch(plpy, config_id, epoch)
$$;

-- Wake the scheduler (LISTEN cerebro) whenever configs or workloads change.
create or replace function cerebro._notify() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    perform pg_notify('cerebro', tg_table_name);
    return null;
end
$$;
drop trigger if exists notify_scheduler on cerebro.configs;
create trigger notify_scheduler after insert or update of status, priority, max_epochs
    on cerebro.configs for each statement execute function cerebro._notify();
drop trigger if exists notify_scheduler on cerebro.workloads;
create trigger notify_scheduler after insert or update of status, priority
    on cerebro.workloads for each statement execute function cerebro._notify();

-- Wake the watchers (cerebro tensorboard, cerebro top, cerebro ui: LISTEN cerebro_metrics /
-- cerebro_events) when an epoch commits or an event is recorded. No payload: a listener of
-- one role must not learn of another's work; it re-reads what row-level security shows it.
-- A separate channel, so the scheduler is not woken by its own epoch commits.
create or replace function cerebro._notify_watchers() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    perform pg_notify('cerebro_' || tg_table_name, '');
    return null;
end
$$;
drop trigger if exists notify_watchers on cerebro.metrics;
create trigger notify_watchers after insert or update on cerebro.metrics
    for each statement execute function cerebro._notify_watchers();
drop trigger if exists notify_watchers on cerebro.events;
create trigger notify_watchers after insert on cerebro.events
    for each statement execute function cerebro._notify_watchers();

-- The value of a workload's objective in one metrics row (NULL when not measured).
create or replace function cerebro.objective_value(m cerebro.metrics, objective text)
returns double precision language sql immutable set search_path = pg_catalog, pg_temp as $$
    select case
        when o = 'valid_loss' then m.valid_loss
        when o = 'train_loss' then m.train_loss
        when o like 'valid\_%' then (m.valid_metrics ->> substr(o, 7))::double precision
        when o like 'train\_%' then (m.train_metrics ->> substr(o, 7))::double precision
    end
    from (select split_part(objective, ':', 1) as o) s
$$;

-- One row per config: its objective (best and last), status and rank in its workload.
-- Stable columns: workload, workload_id, config_id, rank, status, epochs, max_epochs,
-- best_objective, last_objective, objective, direction, params, source, parent_config, error.
create or replace view cerebro.leaderboard with (security_barrier) as
with scored as (
    select c.config_id, w.workload_id, w.name as workload, c.status, c.epoch as epochs,
           coalesce(c.max_epochs, w.max_epochs) as max_epochs, w.objective,
           w.objective_direction as direction, c.params, c.source, c.parent_config, c.error,
           (select case when w.objective_direction = 'min'
                        then min(cerebro.objective_value(m, w.objective))
                        else max(cerebro.objective_value(m, w.objective)) end
              from cerebro.metrics m where m.config_id = c.config_id) as best_objective,
           (select cerebro.objective_value(m, w.objective) from cerebro.metrics m
             where m.config_id = c.config_id order by m.epoch desc limit 1) as last_objective
      from cerebro.configs c join cerebro.workloads w using (workload_id)
     where w.workload_id in (select cerebro._visible_workloads())
)
select workload, workload_id, config_id,
       rank() over (partition by workload_id order by
                    case when direction = 'min' then best_objective else -best_objective end
                    asc nulls last) as rank,
       status, epochs, max_epochs, best_objective, last_objective, objective, direction,
       params, source, parent_config, error
  from scored;

-- One row per workload: configs by status, epochs done of total, throughput, time left, and
-- the unreachable nodes its active configs wait for (null: none).
create or replace view cerebro.progress with (security_barrier) as
with per_config as (
    select c.workload_id, c.status, c.epoch,
           coalesce(c.max_epochs, w.max_epochs) as max_epochs
      from cerebro.configs c join cerebro.workloads w using (workload_id)
), rate as (
    select c.workload_id, count(*) / 5.0 as units_per_minute
      from cerebro.units u join cerebro.configs c using (config_id)
     where u.outcome = 'ok' and u.ended_at > now() - interval '5 minutes'
     group by c.workload_id
), unit_cost as (
    select w.workload_id,
           (td.num_partitions + coalesce(vd.num_partitions, 0)) as units_per_epoch
      from cerebro.workloads w join cerebro.datasets td on td.dataset_id = w.train_dataset
      left join cerebro.datasets vd on vd.dataset_id = w.valid_dataset
)
select w.name as workload, w.workload_id, w.status, w.search, w.objective,
       count(p.*) as configs,
       count(*) filter (where p.status = 'active') as active,
       count(*) filter (where p.status = 'stopped') as stopped,
       count(*) filter (where p.status = 'completed') as completed,
       count(*) filter (where p.status = 'failed') as failed,
       coalesce(sum(p.epoch), 0) as epochs_done,
       coalesce(sum(p.max_epochs) filter (where p.status <> 'failed'), 0) as epochs_total,
       coalesce(r.units_per_minute, 0) as units_per_minute,
       case when coalesce(r.units_per_minute, 0) > 0 then
            make_interval(secs => 60.0 * uc.units_per_epoch *
                coalesce(sum(greatest(p.max_epochs - p.epoch, 0))
                         filter (where p.status = 'active'), 0) / r.units_per_minute)
       end as eta,
       -- nodes holding a partition of this workload's data that the scheduler cannot
       -- reach now: configs whose next unit needs one wait until it is back
       case when count(*) filter (where p.status = 'active') > 0 then
            (select array_agg(distinct n.name order by n.name)
               from cerebro.placements pl join cerebro.nodes n using (node_id)
              where pl.dataset_id in (w.train_dataset, w.valid_dataset)
                and n.last_error is not null)
       end as waiting_on
  from cerebro.workloads w
  left join per_config p using (workload_id)
  left join rate r using (workload_id)
  left join unit_cost uc using (workload_id)
 where w.workload_id in (select cerebro._visible_workloads())
 group by w.workload_id, r.units_per_minute, uc.units_per_epoch;

-- One row per config, epoch and metric (train_loss, valid_loss, train_<m>, valid_<m>).
-- A clone inherits its ancestors' history up to the epoch it was cloned at (from_config
-- says whose row it is). Shows the workloads you may see.
create or replace view cerebro.learning_curves with (security_barrier) as
with recursive src(config_id, from_config, upto) as (
    select c.config_id, c.config_id, null::int from cerebro.configs c
    union all
    select s.config_id, p.parent_config,
           case when s.upto is null then p.clone_epoch else least(s.upto, p.clone_epoch) end
      from src s join cerebro.configs p on p.config_id = s.from_config
     where p.parent_config is not null and p.clone_epoch is not null
       and p.parent_config < p.config_id   -- parents are older: the recursion always ends
)
select w.name as workload, c.workload_id, s.config_id, m.epoch, v.metric, v.value,
       s.from_config, m.created_at
  from src s
  join cerebro.metrics m on m.config_id = s.from_config and (s.upto is null or m.epoch <= s.upto)
  join cerebro.configs c on c.config_id = s.config_id
  join cerebro.workloads w on w.workload_id = c.workload_id
                        and w.workload_id in (select cerebro._visible_workloads())
  cross join lateral (
      select 'train_loss'::text as metric, m.train_loss as value
      union all select 'valid_loss', m.valid_loss where m.valid_loss is not null
      union all select 'train_' || key, value::double precision
                  from jsonb_each_text(m.train_metrics)
      union all select 'valid_' || key, value::double precision
                  from jsonb_each_text(m.valid_metrics)) v;

-- Remove a workload with its configs, metrics, checkpoints, units and events (your own; an
-- admin's any).
create or replace function cerebro.drop_workload(name text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    delete from cerebro.workloads w where w.name = drop_workload.name
       and (w.owner = session_user or cerebro._is_admin());
    if not found then
        raise exception 'cerebro: workload % does not exist', quote_literal(name)
              using errcode = '22023';
    end if;
    perform cerebro._drop_unreferenced_chunks();
    return true;
end
$$;
