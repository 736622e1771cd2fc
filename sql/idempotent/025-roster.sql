-- The roster's parameter schemas come from the Python that builds the models (PARAMS in
-- udfs/cerebro_udfs/roster/), written into cerebro.models at every install and upgrade: one
-- source of truth, never a hand copy.
do language plpython3u $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import sync_roster
sync_roster(plpy)
$$;
