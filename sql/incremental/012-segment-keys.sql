-- 0.4.0: on Greenplum 7 / Apache Cloudberry, partition p of a dataset is stored under the
-- __dist_key__ value that the engine's hash puts on the p-th segment (load_dataset asks the
-- engine: engine.partition_keys), so that each partition sits on its own segment.
-- dist_keys[p + 1] is that key; null means key = partition number (PostgreSQL).
alter table cerebro.datasets add column dist_keys int[]
    check (dist_keys is null or cardinality(dist_keys) = num_partitions);
