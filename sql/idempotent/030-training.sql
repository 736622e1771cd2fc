-- The in-database training step: segment-safe ordered-set aggregates.

create or replace function cerebro._collect(token bigint, buffer_id int, x bytea, y bytea,
                                            num_rows int) returns bigint
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import collect
return collect(plpy, GD, token, buffer_id, x, y, num_rows)
$$;

create or replace function cerebro._train_final(token bigint, state bytea, model jsonb,
                                                config jsonb) returns cerebro.subepoch_result
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import train_final
return train_final(plpy, GD, token, state, model, config)
$$;

create or replace function cerebro._eval_final(token bigint, state bytea, model jsonb,
                                               config jsonb) returns cerebro.eval_result
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import eval_final
return eval_final(plpy, GD, token, state, model, config)
$$;

-- One MOP sub-epoch: train `state` (NULL = fresh init from config's seed) on the rows of one
-- partition, in buffer_id order. Returns (state, loss, metrics, rows, seconds).
--   select (cerebro.train_subepoch(state, model, config)
--           within group (order by buffer_id, x, y, num_rows)).*
--     from cerebro.buffers where dataset_id = 1 and __dist_key__ = 0;
create or replace aggregate cerebro.train_subepoch(state bytea, model jsonb, config jsonb
        order by buffer_id int, x bytea, y bytea, num_rows int) (
    sfunc = cerebro._collect, stype = bigint, finalfunc = cerebro._train_final);

-- Loss and metrics of `state` on the rows aggregated (a partition, or a whole dataset).
create or replace aggregate cerebro.evaluate_partition(state bytea, model jsonb, config jsonb
        order by buffer_id int, x bytea, y bytea, num_rows int) (
    sfunc = cerebro._collect, stype = bigint, finalfunc = cerebro._eval_final);

-- The config the aggregates take: parameters (checked against the model), seed, dataset
-- metadata, and the partition's cache key.
create or replace function cerebro.subepoch_config(
    model text, dataset text, params jsonb default '{}'::jsonb, seed bigint default 0,
    partition int default null, epoch int default 0, config_id int default null
) returns jsonb language plpython3u stable set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import subepoch_config
return subepoch_config(plpy, model, dataset, params, seed, partition, epoch, config_id)
$$;

-- Convenience for psql: one sub-epoch of `model` with `params` on one partition of `dataset`.
create or replace function cerebro.run_subepoch(
    model text, dataset text, partition int, params jsonb default '{}'::jsonb,
    state bytea default null, seed bigint default 0, epoch int default 0
) returns cerebro.subepoch_result language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import run_subepoch
return run_subepoch(plpy, GD, model, dataset, partition, params, state, seed, epoch)
$$;

-- Convenience for psql: evaluate a state on one partition (or all, partition => NULL).
create or replace function cerebro.run_evaluation(
    model text, dataset text, state bytea, params jsonb default '{}'::jsonb,
    partition int default null
) returns cerebro.eval_result language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import run_evaluation
return run_evaluation(plpy, GD, model, dataset, partition, params, state)
$$;

-- The header of a model state (format, config, epoch, partitions done, array table). For a
-- chunked state's reference: {"chunked": true, "blob", "size", "chunks"}.
create or replace function cerebro.state_info(state bytea) returns jsonb
language plpython3u immutable strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_info
return state_info(plpy, state)
$$;

-- Internal (chunked states, see udfs/cerebro_udfs/chunks.py): the one place SQL knows the
-- layout of a chunked-state reference, 'CRBCHUNK' | 16-byte blob id | JSON {size, crc32,
-- chunks}. The blob id of a reference; NULL for an inline state.
create or replace function cerebro._chunk_blob(state bytea) returns bytea
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when substring(state from 1 for 8) = '\x4352424348554e4b'::bytea
            then substring(state from 9 for 16) end
$$;

-- Internal: the JSON {size, crc32, chunks} of a chunked-state reference; NULL when inline.
create or replace function cerebro._chunk_info(state bytea) returns jsonb
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when cerebro._chunk_blob(state) is not null
            then convert_from(substring(state from 25), 'UTF8')::jsonb end
$$;

-- Internal: assemble chunk `seq` of a blob in this backend, in order, for the next training or
-- evaluation statement to use.
create or replace function cerebro._stash_chunk(blob bytea, seq int, data bytea, chunks int)
returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import stash_chunk
return stash_chunk(plpy, GD, blob, seq, data, chunks)
$$;

-- Internal: stash every chunk of the state `ref` refers to (nothing for an inline state).
create or replace function cerebro._stash_state(ref bytea) returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
select coalesce(max(cerebro._stash_chunk(c.blob, c.seq, c.data,
                                         (cerebro._chunk_info(ref)->>'chunks')::int)), 0)
  from (select blob, seq, data from cerebro.state_chunks
         where blob = cerebro._chunk_blob(ref)
         order by seq) c
$$;

-- Internal: the chunk rows of a state the training aggregate kept in this backend because it
-- was too large to return (no rows for an inline state).
create or replace function cerebro._unstash_chunks(state bytea)
returns table (blob bytea, seq int, data bytea) language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import unstash_chunks
return unstash_chunks(plpy, GD, state)
$$;

-- Remove chunks no state or checkpoint refers to (all, or only `blob`'s). Returns rows removed.
create or replace function cerebro._drop_unreferenced_chunks(only_blob bytea default null)
returns bigint language sql set search_path = pg_catalog, pg_temp as $$
with refs as (
    select cerebro._chunk_blob(state) as blob from cerebro.states
    union
    select cerebro._chunk_blob(state) from cerebro.checkpoints
), gone as (
    delete from cerebro.state_chunks c
     where (only_blob is null or c.blob = only_blob)
       and not exists (select 1 from refs where refs.blob = c.blob)
    returning 1
)
select count(*) from gone
$$;

-- What this backend keeps in its GD cache (decoded partitions, compiled models).
create or replace function cerebro.cache_info() returns jsonb
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import cache_info
return cache_info(plpy, GD)
$$;
