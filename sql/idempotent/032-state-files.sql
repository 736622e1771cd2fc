-- Sub-epoch states kept as files in the data directory while they hop (issue 15; see
-- udfs/cerebro_udfs/state_files.py). cerebro.states.state then holds a reference,
-- 'CRBSFILE' | 16-byte file id | JSON {size}; checkpoints never do (they keep the bytes).
-- All internal: only the scheduler calls them.

-- Internal: the file id of a state-file reference; NULL for any other state.
create or replace function cerebro._state_file(state bytea) returns bytea
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when substring(state from 1 for 8) = '\x4352425346494c45'::bytea
            then substring(state from 9 for 16) end
$$;

-- Internal: whether the state a row holds can be read (a file reference's file is there,
-- whole); a unit whose input state is gone restarts its epoch from the checkpoint.
create or replace function cerebro._state_present(state bytea) returns boolean
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_present
return state_present(plpy, state)
$$;

-- Internal: the state itself for a file reference (a hop to another server), else `state`.
create or replace function cerebro._state_value(state bytea) returns bytea
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_value
return state_value(plpy, state)
$$;

-- Internal: what an epoch's checkpoint row keeps of the sub-epoch state `state`: the bytes of
-- a file reference (as chunk rows written here, and their reference, above `inline_max`),
-- anything else as it is.
create or replace function cerebro._checkpoint_state(state bytea, inline_max bigint default null)
returns bytea language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import checkpoint_state
return checkpoint_state(plpy, state, inline_max)
$$;

-- Internal: delete the file of a reference no cerebro.states row names any more (the
-- scheduler calls it after the unit that replaced it committed). Returns whether it did.
create or replace function cerebro._drop_state_file(state bytea) returns boolean
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_state_file
return drop_state_file(plpy, state)
$$;

-- Internal: delete the state files no cerebro.states row names (a unit that did not commit,
-- a config or workload removed, a crash). Security definer: it must see every open
-- transaction's start (a file younger than the oldest may not be committed yet). Returns how
-- many it deleted.
create or replace function cerebro._collect_state_files() returns bigint
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import collect_state_files
return collect_state_files(plpy)
$$;
