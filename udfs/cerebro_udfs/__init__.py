"""cerebro's in-database code: what runs inside PL/Python (plpython3u).

Modules here receive ``plpy`` and ``GD`` as arguments from thin SQL function bodies; they
never import the client package (``cerebro``). The training and evaluation path
(:mod:`cerebro_udfs.training`) is segment-safe: it reads data only from its arguments.
"""

import os as _os

# The server's environment is whatever started it (pg_ctl, systemd, a container): ask for
# what the code needs here rather than in that environment.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.4.0"
