-- Leadership nobody can steal. The active scheduler holds the session advisory lock
-- 1667592802 ("cerb"); any role can call pg_advisory_lock with that key, so a standby that
-- cannot take it asks this function to end the sessions holding it that are not schedulers
-- (roles outside cerebro_scheduler). Returns one row per ended session, for the log.
-- Only the scheduler (and admins) may call it; it can end no other session.
create or replace function cerebro._evict_lock_thieves()
returns table (pid int, role name)
language sql security definer set search_path = pg_catalog, pg_temp as $$
with thieves as materialized (
    select l.pid, a.usename
      from pg_locks l
      join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = 0 and l.objid = 1667592802 and l.objsubid = 1
       and not pg_has_role(a.usesysid, 'cerebro_scheduler', 'member')
)
select pid, usename from thieves where pg_terminate_backend(pid)
$$;
