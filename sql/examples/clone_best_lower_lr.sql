-- Clone the best config of a workload with a tenth of its learning rate. The clone starts
-- from the best config's latest checkpoint (weights and Adam moments) and may train
-- `extra` more epochs.
--   psql -v workload=ctr-v1 -v extra=2 -f sql/examples/clone_best_lower_lr.sql
SELECT cerebro.clone(l.config_id,
                     jsonb_build_object('learning_rate',
                                        (l.params ->> 'learning_rate')::float8 / 10),
                     max_epochs => l.epochs + :extra) AS clone_id
  FROM cerebro.leaderboard l
 WHERE l.workload = :'workload' AND l.rank = 1
 ORDER BY l.config_id
 LIMIT 1;
