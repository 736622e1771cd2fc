"""`cerebro import-petastorm`: stream a Petastorm/Parquet dataset from this machine into a table.

The files are read here (the server may be elsewhere and unable to see them) with the same
reader as the server-side ``cerebro.import_petastorm``, and streamed with ``COPY`` one batch at
a time, so memory stays bounded by one batch. Everything happens in one transaction: a failure
leaves no half-filled table.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cerebro_udfs.errors import CerebroError
from cerebro_udfs.petastorm_import import Column, Dataset, check_options, table_parts

PARSE_IDENT_SQL = "select parse_ident(%s)"
TABLE_EXISTS_SQL = (
    "select exists (select from pg_class c join pg_namespace n on "
    "n.oid = c.relnamespace where n.nspname = %s and c.relname = %s)"
)
DROP_TABLE_SQL = sql.SQL("drop table {}")
CREATE_TABLE_SQL = sql.SQL("create table {} ({})")
COPY_SQL = sql.SQL("copy {} ({}) from stdin")


def import_dataset(
    dsn: str,
    url: str,
    table: str,
    batch_rows: int | None = None,
    images: str = "array",
    if_exists: str = "error",
) -> int:
    """Create ``table`` (``schema.name`` or ``name`` in public) and COPY every row into it."""
    check_options(images, if_exists)
    if not table:
        raise CerebroError("name the table to create")
    ds = Dataset(url, images, batch_rows)
    with psycopg.connect(dsn) as conn:  # one transaction, committed on success
        schema, name = table_parts(_parse_ident(conn, table), table)
        ident = sql.Identifier(schema, name)
        _prepare_table(conn, schema, name, ident, ds.columns, if_exists)
        return _copy_rows(conn, ident, ds)


def _parse_ident(conn: psycopg.Connection, table: str) -> list[str] | None:
    """The parts of a table name as the server parses them, or None if it cannot."""
    try:
        row = conn.execute(PARSE_IDENT_SQL, [table]).fetchone()
    except psycopg.errors.InvalidParameterValue:
        conn.rollback()
        return None
    return None if row is None else row[0]


def _prepare_table(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    ident: sql.Identifier,
    columns: list[Column],
    if_exists: str,
) -> None:
    """Create the table, or keep it (``append``), or drop and create it (``replace``)."""
    row = conn.execute(TABLE_EXISTS_SQL, [schema, name]).fetchone()
    exists = bool(row and row[0])
    if exists and if_exists == "error":
        raise CerebroError(
            f"table {schema}.{name} already exists",
            hint="--if-exists append|replace, or another --table",
        )
    if exists and if_exists == "replace":
        conn.execute(DROP_TABLE_SQL.format(ident))
    if not exists or if_exists == "replace":
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in columns
        )
        conn.execute(CREATE_TABLE_SQL.format(ident, cols))


def _copy_rows(conn: psycopg.Connection, ident: sql.Identifier, ds: Dataset) -> int:
    """COPY every row, one batch in memory at a time; returns the number of rows."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in ds.columns)
    n = 0
    with conn.cursor() as cur:
        with cur.copy(COPY_SQL.format(ident, names)) as copy:
            for rows in ds.batches():
                for r in rows:
                    copy.write_row(r)
                n += len(rows)
    return n
