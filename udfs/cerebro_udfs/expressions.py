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


COMMENT_MARKERS = ("--", "/*", "*/")


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
    tree = _parse(text)
    used = _check_tree(tree, text, cols)
    return _emit(tree, text), sorted(set(used))


def revalidate(features: Iterable[str], columns: Iterable[str] | None = None) -> list[str]:
    """Check stored feature strings again before they are spliced into SQL; returns the
    SQL of each (as :func:`validate` makes it) and raises on any that does not validate.

    With ``columns`` (the relation's column names) this is :func:`validate`. Without them,
    each feature must be an expression whose columns are bare names: a stored plain column
    name that is not also a valid expression (``"my col"``) needs ``columns``.
    """
    if isinstance(features, str):
        raise CerebroError("stored features must be a list of strings, not one string")
    if columns is not None:
        cols = list(columns)
        return [validate(f, cols)[0] for f in features]
    out = []
    for text in features:
        if not isinstance(text, str) or not text.strip():
            raise CerebroError(f"stored feature {text!r} is not a non-empty string")
        tree = _parse(text)
        _check_tree(tree, text, None)
        out.append(_emit(tree, text))
    return out


def _parse(text: str) -> exp.Expr:
    """One expression, parsed; text with a SQL comment is refused before it is parsed (a
    comment can hide the rest of a line or span pieces of one, and nothing needs one)."""
    marker = next((m for m in COMMENT_MARKERS if m in text), None)
    if marker is not None:
        raise CerebroError(
            f"feature {text!r} contains {marker!r}: SQL comments are not allowed in a feature",
            hint="remove the comment; write a - -b with a space for a minus of a negative",
        )
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
    return parsed[0]


def _emit(tree: exp.Expr, text: str) -> str:
    """The checked tree as PostgreSQL, identifiers quoted, comments dropped; refused if the
    generator ever wrote a comment marker (``- -a`` must not come out as ``--a``)."""
    sql = tree.sql(dialect="postgres", identify=True, comments=False)
    if any(m in sql for m in COMMENT_MARKERS):
        raise CerebroError(f"feature {text!r} cannot be written without a comment marker")
    return sql


def _check_tree(tree: exp.Expr, text: str, cols: set[str] | None) -> list[str]:
    """Every node against the whitelist; returns the columns used (``cols`` None: any
    unqualified column name)."""
    used: list[str] = []
    for node in tree.walk():
        if node.comments:
            raise CerebroError(f"feature {text!r} contains a SQL comment", hint=_HINT)
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED_NODES):
            _check_function(node, text)
            continue
        if not isinstance(node, _ALLOWED_NODES):
            raise CerebroError(
                f"feature {text!r} uses {_describe(node)}, which is not allowed in a feature",
                hint=_HINT,
            )
        if isinstance(node, exp.Column):
            _check_column(node, text, cols)
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
    return used


def _check_function(node: exp.Func, text: str) -> None:
    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    if name.lower() not in ALLOWED_FUNCTIONS:
        raise CerebroError(
            f"feature {text!r} calls function {name.lower()!r}, which is not allowed",
            hint=_HINT,
        )


def _check_column(node: exp.Column, text: str, cols: set[str] | None) -> None:
    if node.table or node.args.get("db"):
        raise CerebroError(
            f"feature {text!r}: qualified column {node.sql()} is not allowed; "
            "name columns of the source without a table prefix",
            hint=_HINT,
        )
    if cols is not None and node.name not in cols:
        raise CerebroError(
            f"feature {text!r} refers to unknown column {node.name!r}",
            hint=f"columns of the source: {', '.join(sorted(cols))}",
        )


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
