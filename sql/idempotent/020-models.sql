-- Models: the roster and custom Keras scripts.

-- Register a custom model: `source` is Python defining `entry_point(config) -> compiled
-- keras.Model`; config holds the config's parameters plus config['dataset'] (feature_shape,
-- task, num_classes, classes). The model is built once now, so a broken script is refused.
-- Only cerebro_admin may call it: plpython3u runs the script as the server's OS user.
create or replace function cerebro.register_model(
    name text,
    source text,
    entry_point text default 'build',
    param_schema jsonb default '{}'::jsonb,
    description text default null,
    dataset text default null,
    build_timeout double precision default 300
) returns int language plpython3u security definer
set search_path to pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import register_model
return register_model(plpy, name, source, entry_point, param_schema, description, dataset,
                      build_timeout)
$$;
revoke all on function cerebro.register_model(text, text, text, jsonb, text, text, double precision) from public;
grant execute on function cerebro.register_model(text, text, text, jsonb, text, text, double precision)
    to cerebro_admin;

-- The JSON model definition the training aggregates take as a direct argument (for the
-- scheduler and admins: it holds a custom model's source).
create or replace function cerebro.model_spec(model text) returns jsonb
language plpython3u stable set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import model_spec
return model_spec(plpy, model)
$$;

-- Upload initial weights (the bytes of a .keras or .weights.h5 file, e.g. from
-- cerebro.export_model or keras' model.save) under `name`; returns the server path to give as
-- a config's "weights" parameter. Only you (and admins) may use your uploads; nobody needs
-- to read server files. Uploading a name again replaces it.
create or replace function cerebro.upload_weights(name text, data bytea) returns text
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import upload_weights
return upload_weights(plpy, name, data)
$$;

-- Remove an upload of yours (its file too).
create or replace function cerebro.drop_weights(name text) returns boolean
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_weights
return drop_weights(plpy, name)
$$;
