-- Datasets: packing tables and views into partitioned minibatch buffers.

-- Pack `source` (a table or view, resolved with your search_path; read with your privileges) into dataset `name`: features are columns, numeric arrays or
-- whitelisted SQL expressions; rows are shuffled once with `seed` and split into
-- `num_partitions` partitions (default: the server's CPU count). `like_dataset` reuses another
-- dataset's features, label, class list, normalisation and encoding (validation and test
-- sets). A single bytea feature column holds images: decoded (PNG, JPEG, ...), converted to
-- `channels` (3 = RGB, 1 = grayscale), resized to `image_size` [h, w] and scaled to [0, 1].
-- A single text feature column is tokenised with WordPiece into `max_length` token ids
-- ([PAD] = 0), with the `vocabulary` given or one of `vocabulary_size` tokens learnt here.
-- `nodes` places partition j on server nodes[j % n] ('local' = this one, else a name in
-- cerebro.node_health; default: all here, or like_dataset's placement); without
-- num_partitions there is one partition per entry.
-- (0.4.0 added `nodes`: the signature without it goes, or calls would be ambiguous.)
drop function if exists cerebro.load_dataset(text, regclass, text[], text, int, int, bigint,
    text, text, text, int[], int, int, text[], int, boolean);
create or replace function cerebro.load_dataset(
    name text,
    source regclass,
    features text[] default null,
    label text default null,
    num_partitions int default null,
    buffer_rows int default null,
    seed bigint default 0,
    like_dataset text default null,
    task text default 'auto',
    normalization text default 'auto',
    image_size int[] default null,
    channels int default null,
    max_length int default null,
    vocabulary text[] default null,
    vocabulary_size int default null,
    lowercase boolean default null,
    nodes text[] default null
) returns int language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import load_dataset
return load_dataset(plpy, name, source, features, label, num_partitions, buffer_rows, seed,
                    like_dataset, task, normalization, image_size, channels, max_length,
                    vocabulary, vocabulary_size, lowercase, nodes)
$$;

-- Remove a dataset and its buffers (your own; an admin's any).
create or replace function cerebro.drop_dataset(name text) returns boolean
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_dataset
return drop_dataset(plpy, name)
$$;

-- One row per partition of each dataset: rows, buffers and bytes as stored, the server that
-- holds it ('local': this one) and whether it is there yet (a partition placed on a node is
-- shipped by the scheduler; until then it waits here and placed is false).
create or replace view cerebro.dataset_partitions with (security_barrier) as
select d.name as dataset,
       coalesce(array_position(d.dist_keys, b.__dist_key__) - 1, b.__dist_key__) as partition,
       count(*) as buffers,
       sum(b.num_rows) as rows, sum(octet_length(b.x) + octet_length(b.y)) as bytes,
       coalesce(min(n.name), 'local') as node, min(n.name) is null as placed
  from cerebro.datasets d join cerebro.buffers b using (dataset_id)
  left join cerebro.placements p
         on p.dataset_id = d.dataset_id and p.partition = b.__dist_key__
  left join cerebro.nodes n using (node_id)
 where cerebro._sees_dataset(d.owner)
 group by d.name, d.dist_keys, b.__dist_key__
union all
select d.name, p.partition, p.buffers, p.rows, p.bytes, n.name, true
  from cerebro.datasets d join cerebro.placements p using (dataset_id)
  join cerebro.nodes n using (node_id)
 where p.placed_at is not null and cerebro._sees_dataset(d.owner);
