-- Using the winner: evaluate, predict with and export a trained config. Each starts from the
-- config's latest checkpoint (or `epoch`), the model the leaderboard ranked.

-- Loss and metrics of config `config_id` on every row of `dataset` (a dataset loaded with
-- like_dataset => the training dataset), as jsonb {loss, <metrics>, rows, epoch, ...}.
create or replace function cerebro.evaluate(config_id int, dataset text, epoch int default null)
returns jsonb language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import evaluate
return evaluate(plpy, GD, config_id, dataset, epoch)
$$;

-- Score every row of `source` (raw rows, encoded like the training data) into the new table
-- `output`: the `key` column (default: the source's primary key), then the predicted class
-- (named like the label), its probability and all class probabilities, or the predicted value
-- for regression. Returns the number of rows written. Runs in batches of `batch_rows`, as you:
-- `source` is read and `output` created with your privileges (an unqualified `output` goes
-- into schema public).
create or replace function cerebro.predict(config_id int, source regclass, output text,
                                           key text default null, epoch int default null,
                                           batch_rows int default null)
returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import predict
return predict(plpy, config_id, source, output, key, epoch, batch_rows)
$$;

-- The trained model as the bytes of a .keras file (architecture, weights and optimizer
-- state) that keras.models.load_model reads; `cerebro export-model` writes it to a file.
create or replace function cerebro.export_model(config_id int, epoch int default null)
returns bytea language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import export_model
return export_model(plpy, config_id, epoch)
$$;
