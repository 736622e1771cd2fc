"""Feature expressions: what must pass and what must be refused (pure, no server)."""

import pytest

from cerebro_udfs.errors import CerebroError
from cerebro_udfs.expressions import validate

COLS = ["i1", "i2", "i3", "Weird Col"]


@pytest.mark.parametrize(
    "text, sql, used",
    [
        ("i1", '"i1"', ["i1"]),
        ("Weird Col", '"Weird Col"', ["Weird Col"]),
        ("log(1 + i3)", 'LOG(1 + "i3")', ["i3"]),
        ("ln(i1) * 2", 'LN("i1") * 2', ["i1"]),
        ("sqrt(abs(i2))", 'SQRT(ABS("i2"))', ["i2"]),
        ("CASE WHEN i1 > 0 THEN 1 ELSE 0 END", 'CASE WHEN "i1" > 0 THEN 1 ELSE 0 END', ["i1"]),
        ("i1::real", 'CAST("i1" AS REAL)', ["i1"]),
        ("greatest(i1, i2) - least(i1, 0)", 'GREATEST("i1", "i2") - LEAST("i1", 0)', ["i1", "i2"]),
        ("i1 ^ 2", 'POWER("i1", 2)', ["i1"]),
        ("tanh(i1) + coalesce(i2, 0)", 'TANH("i1") + COALESCE("i2", 0)', ["i1", "i2"]),
    ],
)
def test_accepted(text, sql, used):
    assert validate(text, COLS) == (sql, used)


@pytest.mark.parametrize(
    "text, says",
    [
        ("pg_sleep(1)", "function 'pg_sleep'"),
        ("random()", "not allowed"),
        ("now()", "not allowed"),
        ("(select 1)", "subquery"),
        ("i1; drop table x", "one expression"),
        ("drop table x", "not allowed"),
        ("nope + 1", "unknown column 'nope'"),
        ("'a'", "string literal"),
        ("i1::text", "only numeric casts"),
        ("t.i1", "qualified column"),
        ("*", "not allowed"),
        ("current_setting('x')", "not allowed"),
        ("lower(i1)", "function 'lower'"),
        ("i1 || i2", "not allowed"),
        ("i1 +", "not a valid SQL expression"),
        ("", "non-empty"),
    ],
)
def test_refused(text, says):
    with pytest.raises(CerebroError) as e:
        validate(text, COLS)
    assert says in e.value.message
