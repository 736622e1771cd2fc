-- Drill down around the best config: a child workload that searches the learning rate
-- log-uniformly within a factor of 3 of the best one, every other parameter pinned to it.
--   psql -v workload=ctr-v1 -v n=4 -f sql/examples/drill_down_around_best.sql
SELECT cerebro.drill_down(l.workload_id,
           jsonb_build_object('learning_rate', jsonb_build_object('loguniform',
               jsonb_build_array((l.params ->> 'learning_rate')::float8 / 3,
                                 (l.params ->> 'learning_rate')::float8 * 3))),
           search => 'random', num_configs => :n, config_id => l.config_id) AS child_workload
  FROM cerebro.leaderboard l
 WHERE l.workload = :'workload' AND l.rank = 1
 ORDER BY l.config_id
 LIMIT 1;
