"""`cerebro import-petastorm`: stream a Petastorm/Parquet dataset from this machine into a table.

The files are read here (the server may be elsewhere and unable to see them) with the same
reader as the server-side ``cerebro.import_petastorm``, and streamed with ``COPY`` one batch at
a time, so memory stays bounded by one batch. Everything happens in one transaction: a failure
leaves no half-filled table.
"""

from __future__ import annotations

import psycopg
from cerebro_udfs.errors import CerebroError
from cerebro_udfs.petastorm_import import Dataset, check_options, table_parts
from psycopg import sql


def import_dataset(dsn: str, url: str, table: str, batch_rows: int | None = None,
                   images: str = "array", if_exists: str = "error") -> int:
    """Create ``table`` (``schema.name`` or ``name`` in public) and COPY every row into it."""
    check_options(images, if_exists)
    if not table:
        raise CerebroError("name the table to create")
    ds = Dataset(url, images, batch_rows)
    with psycopg.connect(dsn) as conn:           # one transaction, committed on success
        try:
            parsed = conn.execute("select parse_ident(%s)", [table]).fetchone()[0]
        except psycopg.errors.InvalidParameterValue:
            conn.rollback()
            parsed = None
        schema, name = table_parts(parsed, table)
        ident = sql.Identifier(schema, name)
        exists = conn.execute(
            "select exists (select from pg_class c join pg_namespace n on "
            "n.oid = c.relnamespace where n.nspname = %s and c.relname = %s)",
            [schema, name]).fetchone()[0]
        if exists and if_exists == "error":
            raise CerebroError(f"table {schema}.{name} already exists",
                               hint="--if-exists append|replace, or another --table")
        if exists and if_exists == "replace":
            conn.execute(sql.SQL("drop table {}").format(ident))
        if not exists or if_exists == "replace":
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
                for c in ds.columns)
            conn.execute(sql.SQL("create table {} ({})").format(ident, cols))
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in ds.columns)
        n = 0
        with conn.cursor() as cur:
            with cur.copy(sql.SQL("copy {} ({}) from stdin").format(ident, names)) as copy:
                for rows in ds.batches():
                    for r in rows:
                        copy.write_row(r)
                    n += len(rows)
    return n
