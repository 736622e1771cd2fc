-- Security: who may see and steer which rows. The README's "Security model" describes it.
--
-- * Owners are the session user that created a dataset or workload (set by triggers here,
--   never by the writer). Admins (cerebro_admin, superusers) and the scheduler see all;
--   cerebro_reader sees every workload through the views; a workload may be shared with a
--   role for reading or steering (cerebro.share).
-- * Users change catalog rows only through whitelisted columns (configs: status, max_epochs,
--   priority; workloads: status, priority) or the verbs, which are SECURITY DEFINER and check
--   ownership themselves. The steering triggers are SECURITY INVOKER so that they see who
--   issued the statement: a verb (running as the extension owner), the scheduler, or a user.

-- Owners come from the session, whatever the statement said.
create or replace function cerebro._set_owner() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if tg_op = 'UPDATE' then
        if new.owner is distinct from old.owner then
            raise exception 'cerebro: the owner of a % row cannot change', tg_table_name
                  using errcode = '42501';
        end if;
        return new;
    end if;
    new.owner := session_user;
    return new;
end
$$;
drop trigger if exists set_owner on cerebro.datasets;
create trigger set_owner before insert or update on cerebro.datasets
    for each row execute function cerebro._set_owner();
drop trigger if exists set_owner on cerebro.workloads;
create trigger set_owner before insert or update on cerebro.workloads
    for each row execute function cerebro._set_owner();

-- Row-level security: users see their own rows, shared workloads and (admins) everything.
-- The scheduler's role bypasses it; superusers and the tables' owner are not subject to it.
alter table cerebro.datasets enable row level security;
alter table cerebro.buffers enable row level security;
alter table cerebro.workloads enable row level security;
alter table cerebro.configs enable row level security;
alter table cerebro.metrics enable row level security;
alter table cerebro.checkpoints enable row level security;
alter table cerebro.states enable row level security;
alter table cerebro.state_chunks enable row level security;
alter table cerebro.units enable row level security;
alter table cerebro.events enable row level security;
alter table cerebro.shares enable row level security;
alter table cerebro.weights enable row level security;

drop policy if exists visible on cerebro.datasets;
create policy visible on cerebro.datasets for select using (cerebro._sees_dataset(owner));
drop policy if exists create_own on cerebro.datasets;
create policy create_own on cerebro.datasets for insert with check (owner = session_user);
drop policy if exists drop_own on cerebro.datasets;
create policy drop_own on cerebro.datasets for delete using (cerebro._sees_dataset(owner));

drop policy if exists own_dataset on cerebro.buffers;
create policy own_dataset on cerebro.buffers using (cerebro._owns_dataset(dataset_id))
    with check (cerebro._owns_dataset(dataset_id));

drop policy if exists visible on cerebro.workloads;
create policy visible on cerebro.workloads for select
    using (workload_id in (select cerebro._visible_workloads()));
drop policy if exists steer on cerebro.workloads;
create policy steer on cerebro.workloads for update
    using (workload_id in (select cerebro._visible_workloads(true)));

drop policy if exists visible on cerebro.configs;
create policy visible on cerebro.configs for select
    using (workload_id in (select cerebro._visible_workloads()));
drop policy if exists steer on cerebro.configs;
create policy steer on cerebro.configs for update
    using (workload_id in (select cerebro._visible_workloads(true)));
drop policy if exists add on cerebro.configs;
create policy add on cerebro.configs for insert
    with check (cerebro._sees_workload(workload_id, true));

drop policy if exists visible on cerebro.metrics;
create policy visible on cerebro.metrics for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.checkpoints;
create policy visible on cerebro.checkpoints for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.units;
create policy visible on cerebro.units for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.events;
create policy visible on cerebro.events for select
    using ((select cerebro._is_admin()) or workload_id in (select cerebro._visible_workloads()));
drop policy if exists admin on cerebro.states;
create policy admin on cerebro.states for select using (cerebro._is_admin());
-- the bytes of a chunked checkpoint you may see (predict and export read them as you)
drop policy if exists visible on cerebro.state_chunks;
create policy visible on cerebro.state_chunks for select using (
    cerebro._is_admin() or exists (
        select 1 from cerebro.checkpoints k
         where cerebro._chunk_blob(k.state) = state_chunks.blob
           and k.config_id in (select cerebro._visible_configs())));
drop policy if exists own on cerebro.weights;
create policy own on cerebro.weights for select
    using (owner = session_user or cerebro._is_admin() or cerebro._is_scheduler());
drop policy if exists visible on cerebro.shares;
create policy visible on cerebro.shares for select
    using (workload_id in (select cerebro._visible_workloads()));

-- Share a workload with a role: 'read' (it, its configs, metrics and events), 'steer' (also
-- stop, resume, add and clone configs, reprioritise), or 'none' to stop sharing. Only the
-- workload's owner or an admin may.
create or replace function cerebro.share(workload text, role name, level text default 'read')
returns boolean language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    w record;
begin
    select * into w from cerebro.workloads x where x.name = share.workload;
    if not found or not (w.owner = session_user or cerebro._is_admin()) then
        raise exception 'cerebro: workload % does not exist or is not yours to share',
              pg_catalog.quote_literal(workload) using errcode = '42501';
    end if;
    if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = share.role) then
        raise exception 'cerebro: role % does not exist', pg_catalog.quote_ident(role)
              using errcode = '22023';
    end if;
    if level not in ('read', 'steer', 'none') then
        raise exception 'cerebro: share level % is not known', pg_catalog.quote_literal(level)
              using errcode = '22023', hint = 'use ''read'', ''steer'' or ''none''';
    end if;
    delete from cerebro.shares s where s.workload_id = w.workload_id and s.grantee = share.role;
    if level <> 'none' then
        insert into cerebro.shares (workload_id, grantee, level)
        values (w.workload_id, share.role, level);
    end if;
    insert into cerebro.events (actor, workload_id, action, detail)
    values (cerebro.actor(), w.workload_id, 'share',
            pg_catalog.jsonb_build_object('role', share.role, 'level', level));
    return true;
end
$$;
