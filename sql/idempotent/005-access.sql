-- Access: who the session is (admin, scheduler, trusted statement, actor) and what it may
-- see or steer. Used by the row-level security policies (080-security.sql), the views and the
-- SECURITY DEFINER verbs, which check ownership with these same functions.

-- Whether the session user is an admin (a member of cerebro_admin; superusers are).
create or replace function cerebro._is_admin() returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.pg_has_role(session_user, 'cerebro_admin', 'member')
$$;

-- Whether the session is the scheduler daemon's (a member of cerebro_scheduler).
create or replace function cerebro._is_scheduler() returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.pg_has_role(session_user, 'cerebro_scheduler', 'member')
$$;

-- Whether the statement being run is trusted with every column: issued by the scheduler, a
-- superuser, or a cerebro verb (SECURITY DEFINER, so current_user is the extension owner).
-- SECURITY INVOKER on purpose: current_user is whoever runs the statement.
create or replace function cerebro._trusted() returns boolean
language sql stable set search_path = pg_catalog, pg_temp as $$
    select coalesce((select r.rolsuper from pg_catalog.pg_roles r
                      where r.rolname = current_user), false)
        or pg_catalog.pg_has_role(current_user, 'cerebro_scheduler', 'member')
$$;

-- Who is acting, for the audit trail: 'human:<session user>', or for the scheduler's own
-- sessions the label it sets ('system', 'automl:<procedure>'). Nobody else can choose it.
create or replace function cerebro.actor() returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select case
        when cerebro._is_scheduler()
             and coalesce(pg_catalog.current_setting('cerebro.actor', true), '') <> ''
        then pg_catalog.current_setting('cerebro.actor', true)
        else 'human:' || session_user
    end
$$;

-- Every workload the session user may see (or steer): what row-level security and the views
-- filter with. One scan per statement (the policies say `workload_id in (select ...)`, a
-- hashed subplan), not one function call per row.
create or replace function cerebro._visible_workloads(steer boolean default false)
returns setof int language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select w.workload_id from cerebro.workloads w
     where (select cerebro._is_admin() or cerebro._is_scheduler()
                   or (not steer
                       and pg_catalog.pg_has_role(session_user, 'cerebro_reader', 'member')))
        or w.owner = session_user
        or exists (select 1 from cerebro.shares s join pg_catalog.pg_roles r
                          on r.rolname = s.grantee
                    where s.workload_id = w.workload_id
                      and (s.level = 'steer' or not steer)
                      and pg_catalog.pg_has_role(session_user, r.oid, 'member'))
$$;

-- Every config of those workloads.
create or replace function cerebro._visible_configs(steer boolean default false)
returns setof int language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select c.config_id from cerebro.configs c
     where c.workload_id in (select cerebro._visible_workloads(steer))
$$;

-- Whether the session user may see (steer => false) or steer (steer => true) a workload:
-- whether it is one of cerebro._visible_workloads(steer) (one rule, used everywhere).
create or replace function cerebro._sees_workload(workload_id int, steer boolean default false)
returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select _sees_workload.workload_id in (select cerebro._visible_workloads(steer))
$$;

-- The same for the workload of a config.
create or replace function cerebro._sees_config(config_id int, steer boolean default false)
returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select coalesce((select cerebro._sees_workload(c.workload_id, steer) from cerebro.configs c
                      where c.config_id = _sees_config.config_id), false)
$$;

-- Whether the session user may use a dataset (its owner, an admin or the scheduler).
create or replace function cerebro._sees_dataset(owner name) returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select owner = session_user or cerebro._is_admin() or cerebro._is_scheduler()
$$;

create or replace function cerebro._owns_dataset(dataset_id int) returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select coalesce((select cerebro._sees_dataset(d.owner) from cerebro.datasets d
                      where d.dataset_id = _owns_dataset.dataset_id), false)
$$;

-- The columns whose values differ between two versions of a row, except `allowed` (for the
-- whitelists below: one message names every column a user may not change).
create or replace function cerebro._changed_columns(old jsonb, new jsonb, allowed text[])
returns text language sql immutable set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.string_agg(n.key, ', ' order by n.key)
      from pg_catalog.jsonb_each(new) n
     where n.key <> all (allowed) and n.value is distinct from (old -> n.key)
$$;

-- A cap from cerebro.limits (the table holds every cap a user runs into).
create or replace function cerebro._limit(name text) returns double precision
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select l.value from cerebro.limits l where l.name = _limit.name
$$;

-- Refuse a value over a cap with the message every cap uses.
create or replace function cerebro._check_limit(name text, value double precision, what text)
returns void language plpgsql stable set search_path = pg_catalog, pg_temp as $$
declare
    cap double precision := cerebro._limit(name);
begin
    if value is not null and cap is not null and value > cap then
        raise exception 'cerebro: % % is over the limit % = %', what, value, name, cap
              using errcode = '22023',
                    hint = pg_catalog.format('an admin raises it: UPDATE cerebro.limits SET '
                                             'value = %s WHERE name = %L', value, name);
    end if;
end
$$;
