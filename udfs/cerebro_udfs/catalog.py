"""Small read helpers over the system catalog for coordinator-side functions.

These read PostgreSQL's own catalog (a user's relation and its columns), not cerebro's, so
they are not part of :mod:`store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CerebroError


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    category: str  # pg_type.typcategory of the column (A = array)
    elem_category: str | None
    is_integer: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    qualified: str  # quoted schema.name, safe to splice into SQL
    display: str
    columns: dict[str, Column]


_INTEGER_TYPES = {"smallint", "integer", "bigint"}
# to_regclass resolves the name as the caller's search_path would; tables, views,
# materialized views, partitioned and foreign tables can be read
RELATION_SQL = (
    "select c.oid, n.nspname, c.relname from pg_class c "
    "join pg_namespace n on n.oid = c.relnamespace "
    "where c.oid = to_regclass($1) and c.relkind in ('r','v','m','p','f')"
)
COLUMNS_SQL = (
    "select a.attname, format_type(a.atttypid, a.atttypmod) as type_name, "
    "t.typcategory, et.typcategory as elem_category "
    "from pg_attribute a join pg_type t on t.oid = a.atttypid "
    "left join pg_type et on et.oid = t.typelem and t.typcategory = 'A' "
    "where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped "
    "order by a.attnum"
)


def resolve_relation(plpy: Any, name: str) -> Relation:
    """Resolve a table/view name the way the caller's search_path would, or fail clearly."""
    if not name or not isinstance(name, str):
        raise CerebroError("source must name a table or view")
    try:
        rows = plpy.execute(plpy.prepare(RELATION_SQL, ["text"]), [name])
    except plpy.SPIError as e:
        raise CerebroError(f"source {name!r} is not a valid relation name: {e}") from None
    if not rows:
        raise CerebroError(
            f"source relation {name!r} does not exist",
            hint="give a table or view name, optionally schema-qualified",
        )
    r = rows[0]
    qualified = f"{plpy.quote_ident(r['nspname'])}.{plpy.quote_ident(r['relname'])}"
    cols = {}
    for c in plpy.execute(plpy.prepare(COLUMNS_SQL, ["oid"]), [r["oid"]]):
        cols[c["attname"]] = Column(
            c["attname"],
            c["type_name"],
            c["typcategory"],
            c["elem_category"],
            c["type_name"] in _INTEGER_TYPES,
        )
    return Relation(r["oid"], qualified, f"{r['nspname']}.{r['relname']}", cols)
