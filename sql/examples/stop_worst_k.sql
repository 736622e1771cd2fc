-- Stop the k worst active configs of a workload, ranked by their best objective so far.
--   psql -v workload=ctr-v1 -v k=2 -f sql/examples/stop_worst_k.sql
UPDATE cerebro.configs c SET status = 'stopped'
 WHERE c.config_id IN (SELECT l.config_id FROM cerebro.leaderboard l
                        WHERE l.workload = :'workload' AND l.status = 'active'
                          AND l.best_objective IS NOT NULL
                        ORDER BY l.rank DESC, l.config_id DESC
                        LIMIT :k)
RETURNING c.config_id, c.params;
