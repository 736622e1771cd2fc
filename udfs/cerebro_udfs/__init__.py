"""cerebro's in-database code: what runs inside PL/Python (plpython3u).

Modules here receive ``plpy`` and ``GD`` as arguments from thin SQL function bodies; they
never import the client package (``cerebro``). The training and evaluation path
(:mod:`cerebro_udfs.training`) is segment-safe: it reads data only from its arguments.
"""

__version__ = "0.4.0"
