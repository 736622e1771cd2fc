-- subepoch from checkpoint
insert into cerebro.states (config_id, epoch, partitions_done, state, result, updated_at)
select 7, 2, '{0,1}'::int[], (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select cerebro.train_subepoch((select state from cerebro.checkpoints where config_id = 7 and epoch = 1), '{"kind": "builtin", "name": "mlp"}'::jsonb, '{"epoch": 2, "params": {"hidden": [8], "learning_rate": 0.01}, "partition": 1, "seed": 11}'::jsonb)
               within group (order by buffer_id, x, y, num_rows) as res
          from cerebro.buffers where dataset_id = 3 and __dist_key__ = 1) r
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
          from cerebro.buffers where dataset_id = 3 and __dist_key__ = 1) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8, cerebro._chunk_blob(state) is not null;

-- evaluation
select (res).loss, (res).metrics, (res).rows, (res).seconds from (
  select cerebro.evaluate_partition((select state from cerebro.states where config_id = 7 and epoch = 3 and partitions_done = '{0,1}'::int[]), '{"kind": "builtin", "name": "mlp"}'::jsonb, '{"epoch": 2, "params": {"hidden": [8], "learning_rate": 0.01}, "partition": 1, "seed": 11}'::jsonb)
               within group (order by buffer_id, x, y, num_rows) as res
    from cerebro.buffers where dataset_id = 3 and __dist_key__ = 1) r;

