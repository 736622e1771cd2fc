"""Bad input gets one clear error and leaves no half-made objects behind."""

import psycopg
import pytest


def _counts(conn):
    return conn.execute(
        "select (select count(*) from cerebro.datasets), "
        "(select count(*) from cerebro.buffers), "
        "(select count(*) from cerebro.models)"
    ).fetchone()


@pytest.fixture(scope="module")
def dirty(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("""create table public.dirty as select i as id, i::float8 as a,
                     case when i = 37 then null else i::float8 end as with_null,
                     case when i = 41 then 'NaN'::float8 else 1.0 end as with_nan,
                     case when i = 43 then 'Infinity'::float8 else 1.0 end as with_inf,
                     'x' || i as txt, (i % 2) as lbl,
                     case when i = 50 then null else i % 2 end as lbl_null,
                     case when i = 5 then array[1.0, 2.0] else array[1.0, 2.0, 3.0] end as ragged
                     from generate_series(1, 100) i""")
        c.execute("create table public.empty_src (a float8, lbl int)")
    return "public.dirty"


@pytest.mark.parametrize(
    "args, message",
    [
        ("'bad1', 'public.dirty', array['a', 'nope'], 'lbl'", "unknown column 'nope'"),
        ("'bad2', 'public.dirty', array['a'], 'nope'", "label column 'nope' does not exist"),
        (
            "'bad3', 'public.dirty', array['with_null'], 'lbl'",
            "feature 'with_null' is NULL in row",
        ),
        ("'bad4', 'public.dirty', array['a', 'with_nan'], 'lbl'", "feature 'with_nan' is NaN"),
        ("'bad5', 'public.dirty', array['with_inf'], 'lbl'", "is NaN or infinite"),
        # a lone text column is tokenized; next to numeric features it is refused
        ("'bad6', 'public.dirty', array['a', 'txt'], 'lbl'", "feature 'txt' has type text"),
        ("'bad7', 'public.empty_src', array['a'], 'lbl'", "has no rows"),
        ("'bad9', 'public.dirty', array['a'], 'lbl_null'", "label 'lbl_null' is NULL"),
        ("'bad10', 'public.dirty', array['pg_sleep(1)'], 'lbl'", "not allowed"),
        ("'bad11', 'public.dirty', array['a'], 'lbl', num_partitions => 0", "num_partitions"),
        ("'bad12', 'public.dirty', array['a'], 'lbl', num_partitions => 101", "exceeds"),
        ("'bad13', 'public.dirty', array['ragged'], 'lbl'", "different"),
        ("'x; drop table y', 'public.dirty', array['a'], 'lbl'", "is not valid"),
        ("'bad15', 'public.dirty', array['a'], 'txt', task => 'regression'", "must be numeric"),
        ("'bad16', 'public.dirty', array['a'], 'lbl', like_dataset => 'nope'", "does not exist"),
    ],
)
def test_load_dataset_errors(conn, dirty, args, message):
    before = _counts(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute(f"select cerebro.load_dataset({args})")
    assert message in e.value.diag.message_primary
    assert e.value.diag.message_primary.startswith("cerebro: ")
    assert _counts(conn) == before
    assert conn.execute("select count(*) from public.dirty").fetchone()[0] == 100


@pytest.mark.parametrize(
    "source,message",
    [
        ("public.no_such_table", 'relation "public.no_such_table" does not exist'),
        ("public.dirty; drop table public.dirty", "invalid name syntax"),
        ('public."dirty', "invalid name syntax"),
    ],
)
def test_load_dataset_source_must_name_a_relation(conn, dirty, source, message):
    """``source`` is a regclass: PostgreSQL resolves it (with the caller's search_path) when
    the call is parsed, and refuses anything that is not a relation's name before cerebro
    runs at all."""
    before = _counts(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.load_dataset('bad', %s, array['a'], 'lbl')", [source])
    assert e.value.diag.message_primary == message
    assert _counts(conn) == before
    assert conn.execute("select count(*) from public.dirty").fetchone()[0] == 100


def test_duplicate_name_is_refused_and_first_kept(conn, dirty):
    conn.execute("select cerebro.load_dataset('dup', 'public.dirty', array['a'], 'lbl')")
    before = _counts(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.load_dataset('dup', 'public.dirty', array['a'], 'lbl')")
    assert "dataset 'dup' already exists" in e.value.diag.message_primary
    assert "drop_dataset" in e.value.diag.message_hint
    assert _counts(conn) == before


def test_hostile_identifiers_are_quoted(conn):
    conn.execute('create table public."we""ird; drop table x" ("a b" float8, "Lbl" int)')
    conn.execute(
        'insert into public."we""ird; drop table x" select i, i % 2 from generate_series(1, 10) i'
    )
    conn.execute("""select cerebro.load_dataset('hostile', 'public."we""ird; drop table x"',
                    array['a b'], 'Lbl', num_partitions => 1)""")
    assert conn.execute(
        "select num_rows from cerebro.datasets where name = 'hostile'"
    ).fetchone() == (10,)
