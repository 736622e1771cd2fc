-- Steering: the config and workload state machines, enforced on plain UPDATE/INSERT, the
-- audit trail, and the verbs clone, drill_down, stop and history.

-- Internal: a config's params checked against its workload's model and completed with the
-- fixed params (called by the insert trigger, as the user who inserts).
create or replace function cerebro._prepare_params(workload_id int, params jsonb) returns jsonb
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import prepare_params
return prepare_params(plpy, workload_id, params)
$$;

-- Before a config is added or changed: the state machine, and for users (not the scheduler,
-- a superuser or a cerebro verb) the whitelist of columns they may set. SECURITY INVOKER so
-- that it sees who issued the statement (cerebro._trusted()).
create or replace function cerebro._config_before() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    actor text := cerebro.actor();
    wl record;
    limit_epochs int;
    bad text;
begin
    select * into wl from cerebro.workloads w where w.workload_id = new.workload_id;
    if not found then
        raise exception 'cerebro: workload % does not exist', new.workload_id
              using errcode = '22023';
    end if;
    if not cerebro._trusted() and not cerebro._sees_workload(new.workload_id, true) then
        raise exception 'cerebro: workload % is shared with you read-only', wl.name
              using errcode = '42501';
    end if;
    perform cerebro._check_limit('max_epochs', new.max_epochs, 'max_epochs');
    perform cerebro._check_limit('max_priority', abs(new.priority), 'priority');
    if tg_op = 'INSERT' then
        if not cerebro._trusted() then
            bad := cerebro._changed_columns(
                '{"status": "active", "epoch": 0, "partitions_done": [], "seed": 0,
                  "parent_config": null, "source": "human", "error": null, "lost_units": 0,
                  "clone_epoch": null}'::jsonb,
                to_jsonb(new) - 'config_id' - 'created_at' - 'updated_at',
                array['workload_id', 'params', 'max_epochs', 'priority']);
            if bad is not null then
                raise exception 'cerebro: a new config may set only workload_id, params, '
                      'max_epochs and priority, not %', bad using errcode = '42501',
                      hint = 'continue from trained weights with cerebro.clone(config_id, '
                             'overrides)';
            end if;
            if (select count(*) from cerebro.configs c
                 where c.workload_id = new.workload_id) >= cerebro._limit('max_configs') then
                perform cerebro._check_limit('max_configs',
                    (select count(*) + 1 from cerebro.configs c
                      where c.workload_id = new.workload_id), 'configs in the workload');
            end if;
        end if;
        if wl.status = 'cancelled' then
            raise exception 'cerebro: workload % is cancelled; it takes no new configs', wl.name
                  using errcode = '22023';
        end if;
        if new.status <> 'active' then
            raise exception 'cerebro: a new config starts as active, not %', new.status
                  using errcode = '22023';
        end if;
        if (new.epoch <> 0 or new.partitions_done <> '{}') and new.source <> 'clone' then
            raise exception 'cerebro: a new config starts at epoch 0 (use cerebro.clone to '
                  'continue from trained weights)' using errcode = '22023';
        end if;
        new.params := cerebro._prepare_params(new.workload_id, new.params);
        -- a clone of a config that already used up its epochs waits, completed, until
        -- someone raises its max_epochs (train longer)
        if new.source = 'clone' and new.epoch >= coalesce(new.max_epochs, wl.max_epochs) then
            new.status := 'completed';
        end if;
        if new.seed = 0 then
            new.seed := wl.seed * 1000 + (select count(*) from cerebro.configs c
                                           where c.workload_id = new.workload_id);
        end if;
        new.created_at := now();
        new.updated_at := now();
        return new;
    end if;

    -- UPDATE
    if not cerebro._trusted() then
        bad := cerebro._changed_columns(to_jsonb(old), to_jsonb(new),
                                        array['status', 'max_epochs', 'priority', 'updated_at']);
        if bad is not null and bad <> 'params' then
            raise exception 'cerebro: you may change a config''s status, max_epochs and '
                  'priority, not %', bad using errcode = '42501';
        end if;
    end if;
    if actor <> 'system' then
        if new.params is distinct from old.params then
            raise exception 'cerebro: config % params cannot change once added', old.config_id
                  using errcode = '22023',
                        hint = 'clone it with new values: SELECT cerebro.clone(config_id, ''{"learning_rate": 0.001}'')';
        end if;
        if new.epoch <> old.epoch or new.partitions_done <> old.partitions_done
           or new.workload_id <> old.workload_id or new.lost_units <> old.lost_units then
            raise exception 'cerebro: epoch, partitions_done, workload_id and lost_units are '
                  'maintained by the scheduler' using errcode = '22023';
        end if;
    end if;
    limit_epochs := coalesce(new.max_epochs, wl.max_epochs);
    -- train longer: raising max_epochs re-activates a completed config
    if old.status = 'completed' and new.status = 'completed'
       and new.max_epochs is distinct from old.max_epochs and new.epoch < limit_epochs then
        new.status := 'active';
    end if;
    if new.status is distinct from old.status then
        if not ((old.status = 'active' and new.status = 'stopped')
                or (old.status in ('stopped', 'failed') and new.status = 'active')
                or (old.status = 'completed' and new.status = 'active' and new.epoch < limit_epochs)
                or (old.status = 'stopped' and new.status = 'completed' and actor = 'system')
                or (actor = 'system' and old.status = 'active'
                    and new.status in ('completed', 'failed'))) then
            raise exception 'cerebro: config % cannot go from % to %', old.config_id,
                  old.status, new.status using errcode = '22023',
                  hint = 'allowed: active -> stopped; stopped or failed -> active; completed -> '
                         'active after raising max_epochs above its epochs (or just raise '
                         'max_epochs); completed and failed are set by the scheduler';
        end if;
        if new.status = 'active' then
            new.error := null;
            new.lost_units := 0;
        end if;
    end if;
    -- lowering max_epochs to or below the epochs done completes an active config at once
    -- (it would otherwise stay active without anything left to run)
    if new.status = 'active' and new.max_epochs is distinct from old.max_epochs
       and new.epoch >= limit_epochs then
        new.status := 'completed';
    end if;
    new.updated_at := now();
    return new;
end
$$;

-- After a config is added or changed: the audit trail (SECURITY DEFINER: users cannot write
-- cerebro.events themselves).
create or replace function cerebro._config_after() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    actor text := cerebro.actor();
begin
    if tg_op = 'INSERT' then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (case when new.source = 'automl' and actor like 'human:%'
                     then 'automl:' || (select search from cerebro.workloads
                                         where workload_id = new.workload_id)
                     else actor end,
                new.workload_id, new.config_id,
                case when new.source = 'clone' then 'clone' else 'add' end,
                jsonb_build_object('params', new.params, 'parent_config', new.parent_config,
                                   'epoch', new.epoch));
        return null;
    end if;
    if new.status is distinct from old.status then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id,
                case new.status when 'stopped' then 'stop' when 'completed' then 'completed'
                                when 'failed' then 'failed' else 'resume' end,
                jsonb_build_object('from', old.status, 'to', new.status, 'epoch', new.epoch,
                                   'partitions_done', new.partitions_done)
                || case when new.error is not null then jsonb_build_object('error', new.error)
                        else '{}'::jsonb end);
    end if;
    if new.max_epochs is distinct from old.max_epochs then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id, 'max_epochs',
                jsonb_build_object('from', old.max_epochs, 'to', new.max_epochs));
    end if;
    if new.priority is distinct from old.priority then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id, 'priority',
                jsonb_build_object('from', old.priority, 'to', new.priority));
    end if;
    return null;
end
$$;

drop trigger if exists steer_before on cerebro.configs;
create trigger steer_before before insert or update on cerebro.configs
    for each row execute function cerebro._config_before();
drop trigger if exists steer_after on cerebro.configs;
create trigger steer_after after insert or update on cerebro.configs
    for each row execute function cerebro._config_after();

-- Before a workload changes: its state machine; users may change only status and priority.
create or replace function cerebro._workload_before() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    bad text;
begin
    if not cerebro._trusted() then
        bad := cerebro._changed_columns(to_jsonb(old), to_jsonb(new),
                                        array['status', 'priority']);
        if bad is not null then
            raise exception 'cerebro: you may change a workload''s status and priority, not %',
                  bad using errcode = '42501',
                  hint = 'launch a new workload, or cerebro.drill_down, for other settings';
        end if;
    end if;
    perform cerebro._check_limit('max_priority', abs(new.priority), 'priority');
    if new.status is distinct from old.status then
        if not ((old.status = 'active' and new.status in ('paused', 'cancelled'))
                or (old.status = 'paused' and new.status in ('active', 'cancelled'))) then
            raise exception 'cerebro: workload % cannot go from % to %', old.name, old.status,
                  new.status using errcode = '22023',
                  hint = 'allowed: active -> paused or cancelled; paused -> active or '
                         'cancelled; cancelled is final';
        end if;
    end if;
    return new;
end
$$;

-- After a workload changes: the audit trail; cancelling stops its active configs.
create or replace function cerebro._workload_after() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if new.status is distinct from old.status then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (cerebro.actor(), new.workload_id,
                case new.status when 'paused' then 'pause' when 'cancelled' then 'cancel'
                                else 'resume' end,
                jsonb_build_object('from', old.status, 'to', new.status));
        if new.status = 'cancelled' then
            update cerebro.configs set status = 'stopped'
             where workload_id = new.workload_id and status = 'active';
        end if;
    end if;
    if new.priority is distinct from old.priority then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (cerebro.actor(), new.workload_id, 'priority',
                jsonb_build_object('from', old.priority, 'to', new.priority));
    end if;
    return null;
end
$$;

drop trigger if exists steer_before on cerebro.workloads;
create trigger steer_before before update on cerebro.workloads
    for each row execute function cerebro._workload_before();
drop trigger if exists steer_after on cerebro.workloads;
create trigger steer_after after update on cerebro.workloads
    for each row execute function cerebro._workload_after();

-- Stop a config. With immediate => true the sub-epoch in flight is cancelled too; the state
-- of its last finished sub-epoch is kept, and resume continues from there. SECURITY DEFINER
-- (cancelling the scheduler's backend needs it); only who may steer the config may call it.
create or replace function cerebro.stop(config_id int, immediate boolean default false)
returns boolean language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    if not cerebro._sees_config(stop.config_id, true) then
        raise exception 'cerebro: config % does not exist', config_id using errcode = '22023';
    end if;
    update cerebro.configs c set status = 'stopped'
     where c.config_id = stop.config_id and c.status = 'active';
    get diagnostics n = row_count;
    if immediate then
        perform pg_catalog.pg_cancel_backend(u.backend_pid) from cerebro.units u
         where u.config_id = stop.config_id and u.ended_at is null and u.backend_pid is not null;
    end if;
    return n > 0;
end
$$;

-- Resume a stopped or failed config (same as UPDATE ... SET status = 'active').
create or replace function cerebro.resume(config_id int) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if not cerebro._sees_config(resume.config_id, true) then
        raise exception 'cerebro: config % does not exist', config_id using errcode = '22023';
    end if;
    update cerebro.configs c set status = 'active'
     where c.config_id = resume.config_id and c.status <> 'active';
    return found;
end
$$;

-- Clone a config with its trained weights and optimizer state (latest checkpoint), applying
-- `overrides` (a new learning_rate is applied to the restored optimizer; a new batch_size
-- takes effect at once). Overrides that change the architecture need fresh => true. The
-- clone keeps the parent's epoch count; give max_epochs to let it train further than the
-- workload's limit (a clone with no epochs left waits as completed).
create or replace function cerebro.clone(config_id int, overrides jsonb default '{}'::jsonb,
                                         fresh boolean default false,
                                         workload_id int default null,
                                         max_epochs int default null)
returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import clone
return clone(plpy, config_id, overrides, fresh, workload_id, max_epochs)
$$;

-- A child workload searching `space`, every other parameter pinned to the parent's best
-- config (or `config_id`), with any search procedure and its `options`. Shares the workers
-- with its parent.
create or replace function cerebro.drill_down(parent_workload int, space jsonb,
                                              search text default 'grid',
                                              num_configs int default null,
                                              config_id int default null,
                                              max_epochs int default null,
                                              name text default null,
                                              seed bigint default null,
                                              options jsonb default '{}'::jsonb)
returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drill_down
return drill_down(plpy, parent_workload, space, search, num_configs, config_id, max_epochs,
                  name, seed, options)
$$;

-- A config's lineage (itself, then its parents) and every event about each of them.
create or replace function cerebro.history(config_id int)
returns table (at timestamptz, config_id int, generation int, actor text, action text,
               detail jsonb)
language sql stable set search_path = pg_catalog, pg_temp as $$
    with recursive lineage(config_id, generation) as (
        select c.config_id, 0 from cerebro.configs c where c.config_id = history.config_id
        union all
        select c.parent_config, l.generation + 1
          from lineage l join cerebro.configs c on c.config_id = l.config_id
         where c.parent_config is not null and l.generation < 100
    )
    select e.at, e.config_id, l.generation, e.actor, e.action, e.detail
      from lineage l join cerebro.events e on e.config_id = l.config_id
     order by e.at, e.event_id
$$;
