"""Petastorm and Parquet import: a real dataset written by petastorm 0.13.1 through Spark
(tools/make_petastorm_fixture.py), read back without petastorm, on the server and the client."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import psycopg
import pytest
from cerebro_udfs import petastorm_import
from cerebro_udfs.errors import CerebroError
from PIL import Image

from conftest import fresh_database

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "tests" / "fixtures" / "petastorm" / "hello"
PLAIN = ROOT / "tests" / "fixtures" / "parquet" / "plain"
ROWS = 40


def expected(i: int) -> dict:
    """The fixture's values, by the formulas the generator used."""
    yy, xx, cc = np.meshgrid(np.arange(16), np.arange(16), np.arange(3), indexing="ij")
    return {"label": "cat" if i % 2 else "dog", "score": i * 0.5,
            "vec": ((np.arange(4) + i) * 0.25).tolist(),
            "mat": (np.arange(6).reshape(2, 3) + i).tolist(),
            "image": ((xx * 7 + yy * 3 + cc * 50 + i * 11) % 256).tolist()}


@pytest.fixture(scope="module")
def db(server_dsn):
    return fresh_database(server_dsn, "cerebro_petastorm")


def _check_hello(c: psycopg.Connection, table: str, image_bytes: bool = False) -> None:
    rows = c.execute(f"select id, label, score, vec, mat, image from {table} order by id"
                     ).fetchall()
    assert [r[0] for r in rows] == list(range(ROWS))
    for i, label, score, vec, mat, image in rows:
        e = expected(i)
        assert (label, score, vec, mat) == (e["label"], e["score"], e["vec"], e["mat"])
        if image_bytes:
            image = np.asarray(Image.open(io.BytesIO(image))).tolist()
        assert image == e["image"], i           # exact pixels, and RGB not OpenCV's BGR


def test_server_side_import_decodes_every_codec(db):
    with psycopg.connect(db, autocommit=True) as c:
        n = c.execute("select cerebro.import_petastorm('hello', %s, batch_rows => 7)",
                      [HELLO.as_uri()]).fetchone()[0]
        assert n == ROWS
        types = dict(c.execute("select attname, format_type(atttypid, atttypmod) from "
                               "pg_attribute where attrelid = 'hello'::regclass and attnum > 0"
                               ).fetchall())
        assert types == {"id": "integer", "label": "text", "score": "double precision",
                         "vec": "real[]", "mat": "smallint[]", "image": "smallint[]"}
        _check_hello(c, "hello")
        # ready for load_dataset: the image keeps its shape, labels become classes
        c.execute("select cerebro.load_dataset('hello_img', 'hello', array['image'], 'label', "
                  "num_partitions => 2)")
        row = c.execute("select num_rows, feature_shape, classes from cerebro.datasets "
                        "where name = 'hello_img'").fetchone()
        assert row == (ROWS, [16, 16, 3], ["cat", "dog"])
        c.execute("create schema raw")
        c.execute("select cerebro.import_petastorm('hello', %s, table_name => 'raw.hello_png', "
                  "images => 'bytes')", [str(HELLO)])
        _check_hello(c, "raw.hello_png", image_bytes=True)
        c.execute("select cerebro.load_dataset('hello_png', 'raw.hello_png', array['image'], "
                  "'label', num_partitions => 1, image_size => array[16, 16])")


def test_client_side_import_streams_with_copy(db):
    r = subprocess.run([sys.executable, "-m", "cerebro.cli", "import-petastorm", str(HELLO),
                        "hello_cli", "--batch-rows", "6", "--dsn", db],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"imported {ROWS} rows" in r.stdout
    with psycopg.connect(db, autocommit=True) as c:
        _check_hello(c, "hello_cli")
    again = subprocess.run([sys.executable, "-m", "cerebro.cli", "import-petastorm", str(HELLO),
                            "hello_cli", "--dsn", db], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 1 and "already exists" in again.stderr
    r = subprocess.run([sys.executable, "-m", "cerebro.cli", "import-petastorm", str(HELLO),
                        "hello_cli", "--if-exists", "append", "--dsn", db],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("select count(*) from hello_cli").fetchone()[0] == 2 * ROWS


def test_plain_parquet_imports_by_arrow_type(db):
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("select cerebro.import_petastorm('plain', %s)",
                         [PLAIN.as_uri()]).fetchone()[0] == ROWS
        rows = c.execute("select id, name, x, flag from plain order by id").fetchall()
        assert rows == [(i, f"row-{i}", [float(i), i / 2, -float(i)], bool(i % 3))
                        for i in range(ROWS)]
        c.execute("select cerebro.load_dataset('plain', 'plain', array['x', 'id'], 'flag', "
                  "num_partitions => 1)")
        assert c.execute("select feature_shape from cerebro.datasets where name = 'plain'"
                         ).fetchone()[0] == [4]


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
    with pytest.raises(CerebroError, match="refers to posix.system"):
        petastorm_import.load_unischema(pickle.dumps(_Evil()))
    with pytest.raises(CerebroError, match="refers to builtins.eval"):
        petastorm_import.load_unischema(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(CerebroError, match="not a petastorm Unischema"):
        petastorm_import.load_unischema(pickle.dumps(OrderedDict(a=1)))


def test_bad_requests_are_refused_and_create_nothing(db, tmp_path):
    readable = Path(tempfile.mkdtemp(prefix="cerebro-notparquet-"))
    readable.chmod(0o755)                          # the server runs as another OS user
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
            c.execute("select cerebro.import_petastorm('nope', %s, images => 'png')",
                      [str(HELLO)])
        assert c.execute("select to_regclass('public.nope')").fetchone()[0] is None
