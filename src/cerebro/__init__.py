"""cerebro client side: the CLI, the embedded PostgreSQL and the extension build.

The in-database code lives in the separate package ``cerebro_udfs`` (directory ``udfs/``);
it never imports this package.
"""

__version__ = "0.4.0"
__all__ = ["__version__"]
