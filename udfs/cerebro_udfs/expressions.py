"""Validation of user feature expressions (``'log(1 + i3)'``) with sqlglot.

A feature expression is turned into SQL text only after its parse tree has been checked
node by node against a whitelist: column references to the source's own columns, numeric
literals, arithmetic, comparisons, CASE, casts to numeric types and a list of pure math
functions. Anything else (subqueries, DML, unknown or volatile functions, strings, ``*``) is
refused, so the text we splice into the packing query cannot do anything but compute.
Identifiers in the output are always quoted.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp

from .errors import CerebroError

NUMERIC_TYPES = {
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.DECIMAL,
}

# Node types (other than function calls) that compute and cannot reach outside the row.
_ALLOWED_NODES = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Paren,
    exp.Neg,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Pow,
    exp.Cast,
    exp.DataType,
    exp.Case,
    exp.If,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Boolean,
    exp.Null,
    exp.Is,
)
# Pure math functions, by their SQL name (sqlglot's own or, for unmodelled ones, as written).
ALLOWED_FUNCTIONS = frozenset(
    {
        "abs",
        "ln",
        "log",
        "log10",
        "exp",
        "sqrt",
        "cbrt",
        "floor",
        "ceil",
        "ceiling",
        "round",
        "trunc",
        "sign",
        "greatest",
        "least",
        "coalesce",
        "nullif",
        "power",
        "mod",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "degrees",
        "radians",
        "width_bucket",
    }
)


def validate(text: str, columns: Iterable[str]) -> tuple[str, list[str]]:
    """Check ``text`` and return (quoted SQL, referenced columns).

    ``columns`` are the source relation's column names. A ``text`` that is exactly one of
    them is a plain column reference (whatever its case or characters).
    """
    cols = set(columns)
    if not isinstance(text, str) or not text.strip():
        raise CerebroError("a feature must be a non-empty column name or expression")
    if text in cols:
        return exp.column(text, quoted=True).sql(dialect="postgres"), [text]
    try:
        parsed = sqlglot.parse(text, read="postgres")
    except sqlglot.errors.SqlglotError as e:
        raise CerebroError(
            f"feature {text!r} is not a valid SQL expression: {_first_line(e)}", hint=_HINT
        ) from None
    if len(parsed) != 1 or parsed[0] is None:
        raise CerebroError(
            f"feature {text!r} must be one expression, not several statements", hint=_HINT
        )
    tree = parsed[0]
    used: list[str] = []
    for node in tree.walk():
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED_NODES):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            if name.lower() not in ALLOWED_FUNCTIONS:
                raise CerebroError(
                    f"feature {text!r} calls function {name.lower()!r}, which is not allowed",
                    hint=_HINT,
                )
            continue
        if not isinstance(node, _ALLOWED_NODES):
            raise CerebroError(
                f"feature {text!r} uses {_describe(node)}, which is not allowed in a feature",
                hint=_HINT,
            )
        if isinstance(node, exp.Column):
            if node.table or node.args.get("db"):
                raise CerebroError(
                    f"feature {text!r}: qualified column {node.sql()} is not allowed; "
                    "name columns of the source without a table prefix",
                    hint=_HINT,
                )
            if node.name not in cols:
                raise CerebroError(
                    f"feature {text!r} refers to unknown column {node.name!r}",
                    hint=f"columns of the source: {', '.join(sorted(cols))}",
                )
            used.append(node.name)
        elif isinstance(node, exp.Literal) and node.is_string:
            raise CerebroError(
                f"feature {text!r} contains a string literal; features are numeric", hint=_HINT
            )
        elif isinstance(node, exp.DataType) and node.this not in NUMERIC_TYPES:
            raise CerebroError(
                f"feature {text!r} casts to {node.sql()}; only numeric casts are allowed",
                hint=_HINT,
            )
    return tree.sql(dialect="postgres", identify=True), sorted(set(used))


_HINT = (
    "a feature is a column name or an expression over columns with numbers, + - * / % ^, "
    "comparisons, CASE, casts to numeric types and the functions "
    + ", ".join(sorted(ALLOWED_FUNCTIONS))
)


def _describe(node: object) -> str:
    if isinstance(node, (exp.Select, exp.Subquery, exp.Query)):
        return "a subquery"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name().lower()!r}"
    return type(node).__name__


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
