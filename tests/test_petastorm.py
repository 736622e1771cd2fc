"""Petastorm and Parquet import: a real dataset written by petastorm 0.13.1 through Spark
(tools/make_petastorm_fixture.py), read back without petastorm, on the server and the client."""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from cerebro_udfs import petastorm_import
from cerebro_udfs.errors import CerebroError
from helpers import fresh_database

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "tests" / "fixtures" / "petastorm" / "hello"
PLAIN = ROOT / "tests" / "fixtures" / "parquet" / "plain"
SPLIT = ROOT / "tests" / "fixtures" / "petastorm" / "split"  # Spark partitionBy
HIVE = ROOT / "tests" / "fixtures" / "parquet" / "hive"  # pyarrow partition_cols
ROWS = 40


def expected(i: int) -> dict:
    """The fixture's values, by the formulas the generator used."""
    yy, xx, cc = np.meshgrid(np.arange(16), np.arange(16), np.arange(3), indexing="ij")
    return {
        "label": "cat" if i % 2 else "dog",
        "score": i * 0.5,
        "vec": ((np.arange(4) + i) * 0.25).tolist(),
        "mat": (np.arange(6).reshape(2, 3) + i).tolist(),
        "image": ((xx * 7 + yy * 3 + cc * 50 + i * 11) % 256).tolist(),
    }


@pytest.fixture(scope="module")
def db(server_dsn):
    return fresh_database(server_dsn, "cerebro_petastorm")


def _check_hello(c: psycopg.Connection, table: str, image_bytes: bool = False) -> None:
    rows = c.execute(
        f"select id, label, score, vec, mat, image from {table} order by id"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(ROWS))
    for i, label, score, vec, mat, image in rows:
        e = expected(i)
        assert (label, score, vec, mat) == (e["label"], e["score"], e["vec"], e["mat"])
        if image_bytes:
            image = np.asarray(Image.open(io.BytesIO(image))).tolist()
        assert image == e["image"], i  # exact pixels, and RGB not OpenCV's BGR


def test_server_side_import_decodes_every_codec(db):
    with psycopg.connect(db, autocommit=True) as c:
        n = c.execute(
            "select cerebro.import_petastorm('hello', %s, batch_rows => 7)", [HELLO.as_uri()]
        ).fetchone()[0]
        assert n == ROWS
        types = dict(
            c.execute(
                "select attname, format_type(atttypid, atttypmod) from "
                "pg_attribute where attrelid = 'hello'::regclass and attnum > 0"
            ).fetchall()
        )
        assert types == {
            "id": "integer",
            "label": "text",
            "score": "double precision",
            "vec": "real[]",
            "mat": "smallint[]",
            "image": "smallint[]",
        }
        _check_hello(c, "hello")
        # ready for load_dataset: the image keeps its shape, labels become classes
        c.execute(
            "select cerebro.load_dataset('hello_img', 'hello', array['image'], 'label', "
            "num_partitions => 2)"
        )
        row = c.execute(
            "select num_rows, feature_shape, classes from cerebro.datasets "
            "where name = 'hello_img'"
        ).fetchone()
        assert row == (ROWS, [16, 16, 3], ["cat", "dog"])
        for feature, shape in (("vec", [4]), ("mat", [2, 3])):
            c.execute(
                "select cerebro.load_dataset(%s, 'hello', array[%s], 'label', "
                "num_partitions => 2)",
                [f"hello_{feature}", feature],
            )
            assert c.execute(
                "select num_rows, feature_shape from cerebro.datasets where name = %s",
                [f"hello_{feature}"],
            ).fetchone() == (ROWS, shape)
        c.execute("create schema raw")
        c.execute(
            "select cerebro.import_petastorm('hello', %s, table_name => 'raw.hello_png', "
            "images => 'bytes')",
            [str(HELLO)],
        )
        _check_hello(c, "raw.hello_png", image_bytes=True)
        c.execute(
            "select cerebro.load_dataset('hello_png', 'raw.hello_png', array['image'], "
            "'label', num_partitions => 1, image_size => array[16, 16])"
        )


def test_client_side_import_streams_with_copy(db):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "import-petastorm",
            str(HELLO),
            "hello_cli",
            "--batch-rows",
            "6",
            "--dsn",
            db,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert f"imported {ROWS} rows" in r.stdout
    with psycopg.connect(db, autocommit=True) as c:
        _check_hello(c, "hello_cli")
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "import-petastorm",
            str(HELLO),
            "hello_cli",
            "--dsn",
            db,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "import-petastorm",
            str(HELLO),
            "hello_cli",
            "--if-exists",
            "append",
            "--dsn",
            db,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("select count(*) from hello_cli").fetchone()[0] == 2 * ROWS


def test_plain_parquet_imports_by_arrow_type(db):
    with psycopg.connect(db, autocommit=True) as c:
        assert (
            c.execute("select cerebro.import_petastorm('plain', %s)", [PLAIN.as_uri()]).fetchone()[
                0
            ]
            == ROWS
        )
        rows = c.execute("select id, name, x, flag from plain order by id").fetchall()
        assert rows == [
            (i, f"row-{i}", [float(i), i / 2, -float(i)], bool(i % 3)) for i in range(ROWS)
        ]
        c.execute(
            "select cerebro.load_dataset('plain', 'plain', array['x', 'id'], 'flag', "
            "num_partitions => 1)"
        )
        assert c.execute(
            "select feature_shape from cerebro.datasets where name = 'plain'"
        ).fetchone()[0] == [4]


def test_partitioned_datasets_take_columns_from_directory_names(db):
    """Spark's partitionBy leaves `split` and `fold` out of the files: they come from
    split=train/fold=0/ directories (with "val/2" percent-escaped as val%2F2), typed by the
    Unischema; a plain hive-partitioned dataset gets its partition column typed by inference."""
    with psycopg.connect(db, autocommit=True) as c:
        assert (
            c.execute("select cerebro.import_petastorm('split', %s)", [SPLIT.as_uri()]).fetchone()[
                0
            ]
            == 12
        )
        types = dict(
            c.execute(
                "select attname, format_type(atttypid, atttypmod) from "
                "pg_attribute where attrelid = 'split'::regclass and attnum > 0"
            ).fetchall()
        )
        assert types == {"id": "integer", "split": "text", "fold": "integer", "vec": "real[]"}
        rows = c.execute("select id, split, fold, vec from split order by id").fetchall()
        assert rows == [
            (i, "val/2" if i % 3 == 0 else "train", i % 2, [float(i), i + 1.0, i + 2.0])
            for i in range(12)
        ]
        c.execute("create view split_train as select * from split where split = 'train'")
        c.execute(
            "select cerebro.load_dataset('split_train', 'split_train', array['vec'], "
            "'fold', num_partitions => 2)"
        )
        assert c.execute(
            "select num_rows, classes from cerebro.datasets where name = 'split_train'"
        ).fetchone() == (8, [0, 1])
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cerebro.cli",
            "import-petastorm",
            str(HIVE),
            "hive_cli",
            "--dsn",
            db,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    with psycopg.connect(db, autocommit=True) as c:
        assert (
            c.execute(
                "select format_type(atttypid, atttypmod) from pg_attribute where "
                "attrelid = 'hive_cli'::regclass and attname = 'part'"
            ).fetchone()[0]
            == "bigint"
        )
        assert c.execute("select id, part from hive_cli order by id").fetchall() == [
            (i, i % 3) for i in range(ROWS)
        ]


def test_inconsistent_partition_directories_are_refused(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(HIVE, bad)
    stray = next((bad / "part=1").iterdir())
    shutil.copy(stray, bad / "loose.parquet")  # a file outside any part=... directory
    with pytest.raises(CerebroError, match="partitioned by"):
        petastorm_import.Dataset(str(bad))
    (bad / "loose.parquet").unlink(missing_ok=True)
    wrong = tmp_path / "wrong"
    shutil.copytree(SPLIT, wrong)
    (wrong / "split=train" / "fold=0").rename(wrong / "split=train" / "fold=zero")
    ds = petastorm_import.Dataset(str(wrong))
    with pytest.raises(CerebroError, match=r"'zero' .* is not of type integer \(column 'fold'\)"):
        list(ds.rows())


def test_reading_is_bounded_by_batch_rows():
    """The reader never holds more than batch_rows decoded rows: a whole-file reader would
    yield one 13-14-row batch per file here."""
    ds = petastorm_import.Dataset(str(HELLO), batch_rows=4)
    total = sum(len(b) for b in ds.batches())
    assert total == ROWS and ds.max_batch_rows == 4 and ds.batches_read >= ROWS // 4
    assert ds.kind == "petastorm" and len(ds.files) == 3


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_anything_but_schema_classes():
    with pytest.raises(CerebroError, match=r"refers to posix.system"):
        petastorm_import.load_unischema(pickle.dumps(_Evil()))
    with pytest.raises(CerebroError, match=r"refers to builtins.eval"):
        petastorm_import.load_unischema(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(CerebroError, match="not a petastorm Unischema"):
        petastorm_import.load_unischema(pickle.dumps(OrderedDict(a=1)))


def test_bad_requests_are_refused_and_create_nothing(db, tmp_path):
    readable = _server_dir()
    (readable / "data.parquet").write_text("hello")
    (readable / "data.parquet").chmod(0o644)
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    cases = {
        ("nope", "file:///definitely/not/here"): "does not exist",
        ("nope", "s3://bucket/data"): "url scheme 's3' is not supported",
        ("nope", str(readable)): "is not a Parquet file",
        ("nope", str(secret)): "cannot be read by OS user",
        ("hello", str(HELLO)): "already exists",
    }
    with psycopg.connect(db, autocommit=True) as c:
        if c.execute("select to_regclass('public.hello')").fetchone()[0] is None:
            c.execute("select cerebro.import_petastorm('hello', %s)", [str(HELLO)])
        for (name, url), want in cases.items():
            with pytest.raises(psycopg.Error) as e:
                c.execute("select cerebro.import_petastorm(%s, %s)", [name, url])
            assert want in e.value.diag.message_primary, url
        with pytest.raises(psycopg.Error, match="images must be 'array' or 'bytes'"):
            c.execute("select cerebro.import_petastorm('nope', %s, images => 'png')", [str(HELLO)])
        assert c.execute("select to_regclass('public.nope')").fetchone()[0] is None


def test_client_import_is_bounded_in_process(db, monkeypatch):
    """The CLI path (in-process) reads batch by batch: whole-file/whole-table reads are
    forbidden here, and every batch handed to COPY has at most batch_rows rows."""
    from cerebro.cli import main

    def whole(*a, **k):
        raise AssertionError("a whole file/table was read")

    monkeypatch.setattr(pq.ParquetFile, "read", whole)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", whole)
    monkeypatch.setattr(pq, "read_table", whole)
    sizes: list[int] = []
    real = petastorm_import.Dataset.batches

    def spy(self):
        for rows in real(self):
            sizes.append(len(rows))
            yield rows

    monkeypatch.setattr(petastorm_import.Dataset, "batches", spy)
    r = CliRunner().invoke(
        main,
        [
            "import-petastorm",
            HELLO.as_uri(),
            "hello_small",
            "--batch-rows",
            "3",
            "--images",
            "bytes",
            "--dsn",
            db,
        ],
    )
    assert r.exit_code == 0, r.output
    assert sum(sizes) == ROWS and max(sizes) == 3 and len(sizes) == 15  # 5 + 5 + 5 per file
    with psycopg.connect(db, autocommit=True) as c:
        _check_hello(c, "hello_small", image_bytes=True)
        assert (
            c.execute(
                "select format_type(atttypid, atttypmod) from pg_attribute where "
                "attrelid = 'hello_small'::regclass and attname = 'image'"
            ).fetchone()[0]
            == "bytea"
        )
    r = CliRunner().invoke(main, ["import-petastorm", str(PLAIN), "plain_cli", "--dsn", db])
    assert r.exit_code == 0, r.output
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("select x from plain_cli where id = 7").fetchone()[0] == [7.0, 3.5, -7.0]


def test_default_batch_size_keeps_a_batch_small():
    ds = petastorm_import.Dataset(str(HELLO))
    assert 1 <= ds.batch_rows <= 1024
    # a (1024, 1024, 3) image is ~125 MB as Python ints: the default drops to one row a batch
    big = petastorm_import._petastorm_columns(
        [
            petastorm_import._Field(
                "img", np.uint8, (1024, 1024, 3), petastorm_import.CompressedImageCodec()
            )
        ],
        "array",
    )
    ds.columns = big
    assert ds._default_rows() == 1


def test_unischema_fields_and_codecs():
    meta = pq.read_metadata(HELLO / "_common_metadata").metadata
    fields = petastorm_import.load_unischema(meta[petastorm_import.UNISCHEMA_KEY])
    assert [(f.name, f.numpy_dtype, f.shape, type(f.codec).__name__) for f in fields] == [
        ("id", np.int32, (), "ScalarCodec"),
        ("label", np.str_, (), "ScalarCodec"),
        ("score", np.float64, (), "ScalarCodec"),
        ("vec", np.float32, (4,), "NdarrayCodec"),
        ("mat", np.int16, (2, 3), "CompressedNdarrayCodec"),
        ("image", np.uint8, (16, 16, 3), "CompressedImageCodec"),
    ]


_MADE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _remove_server_dirs():
    yield
    for d in _MADE:
        shutil.rmtree(d, ignore_errors=True)


def _server_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="cerebro-petastorm-"))
    d.chmod(0o755)  # the server runs as another OS user
    _MADE.append(d)
    return d


def _copy_with_metadata(unischema: bytes, mangle_last_image: bool = False) -> Path:
    """The hello dataset with another Unischema pickle (and optionally one broken image)."""
    d = _server_dir()
    common = pq.read_schema(HELLO / "_common_metadata")
    meta = dict(common.metadata)
    meta[petastorm_import.UNISCHEMA_KEY] = unischema
    pq.write_metadata(common.with_metadata(meta), d / "_common_metadata")
    for f in sorted(HELLO.glob("part-*.parquet")):
        t = pq.read_table(f)
        if mangle_last_image and f == sorted(HELLO.glob("part-*.parquet"))[-1]:
            images = t.column("image").to_pylist()
            images[-1] = b"not a png"
            t = t.set_column(
                t.schema.get_field_index("image"), "image", pa.array(images, pa.binary())
            )
        pq.write_table(t, d / f.name)
    for p in d.iterdir():
        p.chmod(0o644)
    return d


def test_hostile_or_unknown_unischema_is_refused_on_the_server(db):
    meta = pq.read_metadata(HELLO / "_common_metadata").metadata
    good = meta[petastorm_import.UNISCHEMA_KEY]
    marker = Path(tempfile.gettempdir()) / "cerebro-pwned"
    marker.unlink(missing_ok=True)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    cases = {
        pickle.dumps(Evil()): "refers to posix.system",
        good.replace(b"\x8c\x0cNdarrayCodec", b"\x8c\x0cFancyyCodec_"): "refers to "
        "petastorm.codecs.FancyyCodec_",
        good[:100]: "Unischema cannot be read",
    }
    with psycopg.connect(db, autocommit=True) as c:
        for blob, want in cases.items():
            d = _copy_with_metadata(blob)
            with pytest.raises(psycopg.Error) as e:
                c.execute("select cerebro.import_petastorm('evil', %s)", [str(d)])
            assert e.value.diag.message_primary.startswith("cerebro: ")
            assert want in e.value.diag.message_primary
        assert c.execute("select to_regclass('public.evil')").fetchone()[0] is None
    assert not marker.exists()


def test_a_failure_mid_stream_leaves_nothing(db):
    """Rows of earlier batches are inserted before the broken image is met: all roll back."""
    meta = pq.read_metadata(HELLO / "_common_metadata").metadata
    d = _copy_with_metadata(meta[petastorm_import.UNISCHEMA_KEY], mangle_last_image=True)
    with psycopg.connect(db, autocommit=True) as c:
        with pytest.raises(
            psycopg.Error, match="field 'image' holds a value that is not an image"
        ):
            c.execute("select cerebro.import_petastorm('broken', %s, batch_rows => 2)", [str(d)])
        assert c.execute("select to_regclass('public.broken')").fetchone()[0] is None
    from cerebro.cli import main

    r = CliRunner().invoke(
        main, ["import-petastorm", str(d), "broken", "--batch-rows", "2", "--dsn", db]
    )
    assert r.exit_code == 1 and "cerebro: field 'image' holds a value" in r.output, r.output
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("select to_regclass('public.broken')").fetchone()[0] is None


def test_hostile_table_names_and_options(db):
    weird = 'we"ird; drop table x --'
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(
            "select cerebro.import_petastorm('p', %s, table_name => %s)",
            [str(PLAIN), psycopg.sql.Identifier(weird).as_string(c)],
        )
        assert (
            c.execute(
                psycopg.sql.SQL("select count(*) from {}").format(psycopg.sql.Identifier(weird))
            ).fetchone()[0]
            == ROWS
        )
        bad = [
            (
                "select cerebro.import_petastorm('p', %s, table_name => 'a.b.c.d')",
                "is not a table name",
            ),
            (
                "select cerebro.import_petastorm('p', %s, table_name => 'x\"y')",
                "is not a table name",
            ),
            (
                "select cerebro.import_petastorm('p', %s, if_exists => 'merge')",
                "if_exists must be 'error', 'append' or 'replace'",
            ),
            (
                "select cerebro.import_petastorm('p', %s, batch_rows => 0)",
                "batch_rows must be between 1 and 1000000",
            ),
            (
                "select cerebro.import_petastorm('p', %s, images => 'png')",
                "images must be 'array' or 'bytes'",
            ),
        ]
        for query, want in bad:
            with pytest.raises(psycopg.Error) as e:
                c.execute(query, [str(PLAIN)])
            assert e.value.diag.message_primary.startswith("cerebro: "), query
            assert want in e.value.diag.message_primary, query
        assert c.execute("select to_regclass('public.p')").fetchone()[0] is None
        c.execute("select cerebro.import_petastorm('p', %s)", [str(PLAIN)])
        assert (
            c.execute(
                "select cerebro.import_petastorm('p', %s, if_exists => 'replace')",
                [PLAIN.as_uri()],
            ).fetchone()[0]
            == ROWS
        )
        assert c.execute("select count(*) from p").fetchone()[0] == ROWS
        assert c.execute(
            "select has_function_privilege('cerebro_user', "
            "'cerebro.import_petastorm(text, text, text, int, text, text)', "
            "'execute')"
        ).fetchone()[0]


def test_plain_parquet_nulls_and_other_arrow_types(db):
    import datetime
    import decimal

    d = _server_dir()
    pq.write_table(
        pa.table(
            {
                "i": pa.array([1, None, 3], pa.int32()),
                "s": pa.array(["a", None, "c"]),
                "v": pa.array([[1.5, 2.5], None, [None, 4.0]], pa.list_(pa.float64())),
                "m": pa.array(
                    [[[1, 2], [3, 4]], [[5, 6], [7, 8]], None], pa.list_(pa.list_(pa.int16()))
                ),
                "day": pa.array([datetime.date(2024, 1, 2)] * 3),
                "amount": pa.array([decimal.Decimal("1.25")] * 3, pa.decimal128(5, 2)),
                "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
                "raw": pa.array([b"\x00\x01", b"", None]),
            }
        ),
        d / "t.parquet",
    )
    (d / "t.parquet").chmod(0o644)
    with psycopg.connect(db, autocommit=True) as c:
        assert (
            c.execute(
                "select cerebro.import_petastorm('typed', %s)", [str(d / "t.parquet")]
            ).fetchone()[0]
            == 3
        )
        rows = c.execute("select i, s, v, m, day, amount, cat, raw from typed").fetchall()
        assert rows == [
            (
                1,
                "a",
                [1.5, 2.5],
                [[1, 2], [3, 4]],
                datetime.date(2024, 1, 2),
                decimal.Decimal("1.25"),
                "x",
                b"\x00\x01",
            ),
            (
                None,
                None,
                None,
                [[5, 6], [7, 8]],
                datetime.date(2024, 1, 2),
                decimal.Decimal("1.25"),
                "y",
                b"",
            ),
            (
                3,
                "c",
                [None, 4.0],
                None,
                datetime.date(2024, 1, 2),
                decimal.Decimal("1.25"),
                "x",
                None,
            ),
        ]


def test_server_side_import_needs_pg_read_server_files(db):
    """Like COPY FROM a file: a cerebro_user may not make the server read its files unless
    it also holds pg_read_server_files."""
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("drop role if exists petastorm_importer")
        c.execute("create role petastorm_importer in role cerebro_user")
        c.execute("create schema imports authorization petastorm_importer")
        try:
            c.execute("set role petastorm_importer")
            with pytest.raises(psycopg.Error, match="needs the pg_read_server_files role"):
                c.execute(
                    "select cerebro.import_petastorm('p', %s, table_name => 'imports.p')",
                    [str(PLAIN)],
                )
            c.execute("reset role")
            c.execute("grant pg_read_server_files to petastorm_importer")
            c.execute("set role petastorm_importer")
            assert (
                c.execute(
                    "select cerebro.import_petastorm('p', %s, table_name => 'imports.p')",
                    [str(PLAIN)],
                ).fetchone()[0]
                == ROWS
            )
            c.execute("reset role")
        finally:
            c.execute("reset role")
            c.execute("drop schema imports cascade")
            c.execute("drop role petastorm_importer")
