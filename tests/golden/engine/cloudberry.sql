-- ddl 0
alter table cerebro.buffers set distributed by (__dist_key__);

-- probe 0
create temp table cerebro_key_probe (k int) distributed by (k);

-- probe 1
insert into cerebro_key_probe select generate_series(0, 255);

-- probe 2
select gp_segment_id, min(k) from cerebro_key_probe group by gp_segment_id order by gp_segment_id;

-- probe 3
drop table cerebro_key_probe;

-- subepoch from checkpoint
insert into cerebro.states (config_id, epoch, partitions_done, state, result, updated_at)
select 7, 2, '{0,1}'::int[], (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select cerebro.train_subepoch((select state from cerebro.checkpoints where config_id = 7 and epoch = 1), '{"kind": "builtin", "name": "mlp"}'::jsonb, '{"epoch": 2, "params": {"hidden": [8], "learning_rate": 0.01}, "partition": 1, "seed": 11}'::jsonb)
               within group (order by buffer_id, x, y, num_rows) as res
          from cerebro.buffers where dataset_id = 3 and __dist_key__ = 0 group by __dist_key__) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8, cerebro._chunk_blob(state) is not null;

-- subepoch from states
insert into cerebro.states (config_id, epoch, partitions_done, state, result, updated_at)
select 7, 2, '{0,1}'::int[], (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select cerebro.train_subepoch((select state from cerebro.states where config_id = 7 and epoch = 2 and partitions_done = '{0}'::int[]), '{"kind": "builtin", "name": "mlp"}'::jsonb, '{"epoch": 2, "params": {"hidden": [8], "learning_rate": 0.01}, "partition": 1, "seed": 11}'::jsonb)
               within group (order by buffer_id, x, y, num_rows) as res
          from cerebro.buffers where dataset_id = 3 and __dist_key__ = 0 group by __dist_key__) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8, cerebro._chunk_blob(state) is not null;

-- evaluation
select (res).loss, (res).metrics, (res).rows, (res).seconds from (
  select cerebro.evaluate_partition((select state from cerebro.states where config_id = 7 and epoch = 3 and partitions_done = '{0,1}'::int[]), '{"kind": "builtin", "name": "mlp"}'::jsonb, '{"epoch": 2, "params": {"hidden": [8], "learning_rate": 0.01}, "partition": 1, "seed": 11}'::jsonb)
               within group (order by buffer_id, x, y, num_rows) as res
    from cerebro.buffers where dataset_id = 3 and __dist_key__ = 0 group by __dist_key__) r;

