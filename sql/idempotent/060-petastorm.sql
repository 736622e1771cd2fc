-- Petastorm and Parquet import: a dataset directory (or file) the server can read becomes a
-- table ready for cerebro.load_dataset.

-- Import the Petastorm dataset (Unischema in _common_metadata; scalar, ndarray, compressed
-- ndarray and image codecs) or plain Parquet at `url` (file:///path or /path) into table
-- `table_name` (default: `name`, in schema public), in the caller's transaction. ndarrays
-- become numeric arrays that keep their shape; images become smallint[] H x W x C pixels
-- (`images => 'array'`) or their PNG/JPEG bytes (`images => 'bytes'`, for load_dataset's
-- image_size). Reads `batch_rows` rows at a time (default: what fits in ~64 MB decoded, at
-- most 1024); `if_exists`: 'error', 'append' or 'replace'. Returns the rows imported. The
-- Unischema pickle is read with an allow-list: nothing else is ever unpickled.
-- `cerebro import-petastorm` does the same from the client side (files local to the client).
create or replace function cerebro.import_petastorm(
    name text,
    url text,
    table_name text default null,
    batch_rows int default null,
    images text default 'array',
    if_exists text default 'error'
) returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import import_petastorm
return import_petastorm(plpy, name, url, table_name, batch_rows, images, if_exists)
$$;

-- It reads server files as the server's OS user: cerebro_user may call it, and it then
-- checks pg_read_server_files membership (superusers pass), as COPY FROM a file does.
revoke all on function cerebro.import_petastorm(text, text, text, int, text, text) from public;
grant execute on function cerebro.import_petastorm(text, text, text, int, text, text)
    to cerebro_user;
