"""Feature expressions: what must pass and what must be refused (pure, no server)."""

import pytest

from cerebro_udfs.errors import CerebroError
from cerebro_udfs.expressions import revalidate, validate

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


# -- comments: refused outright, never re-emitted ----------------------------------------
@pytest.mark.parametrize(
    "text, marker",
    [
        # the attack: a comment that sqlglot would re-emit with the subquery inside it
        ("i1 -- */ + (select count(*) from pg_authid) /*", "--"),
        ("i1 /* */ + (select count(*) from pg_authid) -- */", "--"),
        ("i1 /* x */ + i2", "/*"),
        ("i1 + i2 -- trailing", "--"),
        ("i1--i2", "--"),
        ("i1 */ i2", "*/"),
        ("i1 /*/ i2", "/*"),
        ("i1 + 1\n-- (select 1)", "--"),
        ("/**/i1", "/*"),
    ],
)
def test_comments_are_refused(text, marker):
    with pytest.raises(CerebroError) as e:
        validate(text, COLS)
    assert e.value.message == (
        f"feature {text!r} contains {marker!r}: SQL comments are not allowed in a feature"
    )
    with pytest.raises(CerebroError, match="SQL comments are not allowed"):
        revalidate([text])


def test_minus_of_a_negative_is_not_a_comment():
    assert validate("i1 - -i2", COLS) == ('"i1" - -"i2"', ["i1", "i2"])
    assert validate("- -i1", COLS) == ('- -"i1"', ["i1"])
    assert validate("i1 - (-2)", COLS)[0] == '"i1" - (-2)'


def test_a_column_named_like_a_comment_is_a_quoted_column():
    assert validate("a -- b", ["a -- b"]) == ('"a -- b"', ["a -- b"])


def test_normal_expressions_round_trip():
    sql, used = validate("log(1 + i3) * (i1 - i2)", COLS)
    assert sql == 'LOG(1 + "i3") * ("i1" - "i2")' and used == ["i1", "i2", "i3"]
    assert validate(sql, COLS) == (sql, used)  # the output validates to itself


def test_revalidate_stored_features():
    assert revalidate(["i1", "log(1 + i3)"], COLS) == ['"i1"', 'LOG(1 + "i3")']
    assert revalidate(["Weird Col"], COLS) == ['"Weird Col"']
    # without the columns: any unqualified column name, everything else as validate
    assert revalidate(["x", "sqrt(abs(y)) + 1"]) == ['"x"', 'SQRT(ABS("y")) + 1']
    for bad in ["(select 1)", "pg_read_file('x')", "t.x", "x; drop table t", ""]:
        with pytest.raises(CerebroError):
            revalidate([bad])
    with pytest.raises(CerebroError, match="unknown column 'nope'"):
        revalidate(["i1", "nope + 1"], COLS)
    with pytest.raises(CerebroError, match="a list of strings"):
        revalidate("i1")  # type: ignore[arg-type]
