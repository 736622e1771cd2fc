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
from cerebro_udfs.sql_api import model_spec
return model_spec(plpy, model)
$$;
