-- Views for BI tools (Grafana, Metabase, Superset, a spreadsheet): each one is charted
-- as is, without joins. Their columns are a stable contract: columns may be added at the end,
-- never renamed, retyped or removed. Like the other views they are security barriers and show
-- the workloads the session user may see (cerebro_reader: every workload; a cerebro_user: its
-- own and the ones shared with it). contrib/grafana/ has a dashboard built on them.

-- cerebro.bi_configs: one row per config, the dimension the other views flatten in.
--   workload text, workload_id int, config_id int,
--   series text        a chart label: '#<config_id>' and the params that vary in the
--                      workload (its search space's and any a clone or a hand-added config
--                      changed), e.g. '#7 hidden=[32] learning_rate=0.01'; unique per config
--   status text, source text ('human' | 'automl' | 'clone'), parent_config int,
--   params jsonb       every parameter of the config (search space, fixed ones, defaults)
--   params_text text   the same as 'key=value' pairs ordered by key, e.g.
--                      'activation=relu batch_size=32 hidden=[8] learning_rate=0.01'
create or replace view cerebro.bi_configs with (security_barrier) as
with visible as (
    select c.*, w.name as workload, w.space
      from cerebro.configs c join cerebro.workloads w using (workload_id)
     where w.workload_id in (select cerebro._visible_workloads())
), varying as (
    -- the keys of the search space, and the keys whose value differs between two configs
    select v.workload_id, k.key
      from visible v cross join lateral jsonb_object_keys(v.space) k(key)
    union
    select v.workload_id, p.key
      from visible v cross join lateral jsonb_each(v.params) p
     group by v.workload_id, p.key
    having count(distinct p.value) > 1 or count(*) < (select count(*) from visible x
                                                       where x.workload_id = v.workload_id)
)
select v.workload, v.workload_id, v.config_id,
       '#' || v.config_id || coalesce(
           (select ' ' || string_agg(p.key || '=' || p.value, ' ' order by p.key)
              from jsonb_each_text(v.params) p
             where (v.workload_id, p.key) in (select workload_id, key from varying)), '')
           as series,
       v.status, v.source, v.parent_config, v.params,
       coalesce((select string_agg(p.key || '=' || p.value, ' ' order by p.key)
                   from jsonb_each_text(v.params) p), '') as params_text
  from visible v;
comment on view cerebro.bi_configs is
    'BI: one row per visible config with a readable series label and its params flattened '
    '(stable columns: workload, workload_id, config_id, series, status, source, '
    'parent_config, params, params_text)';

-- cerebro.bi_curves: learning curves in long format, one row per config, epoch and metric
-- (the rows of cerebro.learning_curves: a clone includes its ancestors' epochs up to the
-- epoch it was cloned at, so its curve starts where its parent's was).
--   time timestamptz   when that epoch's metrics row was committed (for an inherited epoch:
--                      the ancestor's row)
--   workload text, workload_id int, config_id int, series text (see bi_configs),
--   status text, source text, parent_config int,
--   epoch int, metric text ('train_loss', 'valid_loss', 'train_<m>', 'valid_<m>'),
--   value double precision, params jsonb, params_text text
create or replace view cerebro.bi_curves with (security_barrier) as
select l.created_at as time, l.workload, l.workload_id, l.config_id, b.series, b.status,
       b.source, b.parent_config, l.epoch, l.metric, l.value, b.params, b.params_text
  from cerebro.learning_curves l
  join cerebro.bi_configs b using (config_id)
 where l.workload_id in (select cerebro._visible_workloads());
comment on view cerebro.bi_curves is
    'BI: learning curves in long format with workload and config flattened (stable columns: '
    'time, workload, workload_id, config_id, series, status, source, parent_config, epoch, '
    'metric, value, params, params_text)';

-- cerebro.bi_timeline: one row per config and epoch it trained (one per cerebro.metrics row).
--   time timestamptz (the metrics row's created_at), workload text, workload_id int,
--   config_id int, series text (see bi_configs), epoch int,
--   train_loss, valid_loss double precision,
--   objective double precision     the workload's objective at that epoch
--                                  (cerebro.objective_value)
--   best_so_far double precision   the config's best objective up to that epoch, in the
--                                  objective's direction (min or max)
--   seconds double precision (training time of the epoch), rows bigint (rows trained)
create or replace view cerebro.bi_timeline with (security_barrier) as
with scored as (
    select m.created_at, w.name as workload, w.workload_id, m.config_id, m.epoch,
           m.train_loss, m.valid_loss, w.objective_direction as direction,
           cerebro.objective_value(m, w.objective) as objective, m.seconds, m.rows
      from cerebro.metrics m
      join cerebro.configs c using (config_id)
      join cerebro.workloads w on w.workload_id = c.workload_id
     where w.workload_id in (select cerebro._visible_workloads())
)
select s.created_at as time, s.workload, s.workload_id, s.config_id, b.series, s.epoch,
       s.train_loss, s.valid_loss, s.objective,
       case when s.direction = 'min'
            then min(s.objective) over (partition by s.config_id order by s.epoch)
            else max(s.objective) over (partition by s.config_id order by s.epoch)
       end as best_so_far,
       s.seconds, s.rows
  from scored s join cerebro.bi_configs b using (config_id);
comment on view cerebro.bi_timeline is
    'BI: one row per config and trained epoch (stable columns: time, workload, workload_id, '
    'config_id, series, epoch, train_loss, valid_loss, objective, best_so_far, seconds, rows)';

-- cerebro.bi_events: the audit trail of the visible workloads, for tables and annotations.
--   time timestamptz (cerebro.events.at), event_id bigint, workload text, workload_id int,
--   config_id int (NULL for workload events),
--   actor text         'human:<role>', 'automl:<procedure>' or 'system' (the scheduler)
--   actor_kind text    'human' | 'automl' | 'scheduler' | 'other', from the actor's prefix
--   action text        launch, add, clone, stop, resume, completed, failed, max_epochs, ...
--   detail jsonb, text text   one line, e.g. 'human:alice stop #7 (active -> stopped, epoch 1)'
create or replace view cerebro.bi_events with (security_barrier) as
select e.at as time, e.event_id, w.name as workload, e.workload_id, e.config_id, e.actor,
       case split_part(e.actor, ':', 1)
           when 'human' then 'human'
           when 'automl' then 'automl'
           when 'system' then 'scheduler'
           when 'scheduler' then 'scheduler'
           else 'other'
       end as actor_kind,
       e.action, e.detail,
       concat_ws(' ', e.actor, e.action, '#' || e.config_id,
                 '(' || nullif(concat_ws(', ',
                     (e.detail ->> 'from') || ' -> ' || (e.detail ->> 'to'),
                     'of #' || (e.detail ->> 'parent_config'),
                     'epoch ' || (e.detail ->> 'epoch'),
                     e.detail ->> 'error'), '') || ')') as text
  from cerebro.events e join cerebro.workloads w using (workload_id)
 where e.workload_id in (select cerebro._visible_workloads());
comment on view cerebro.bi_events is
    'BI: the events feed of the visible workloads (stable columns: time, event_id, workload, '
    'workload_id, config_id, actor, actor_kind, action, detail, text)';
