"""Write the Petastorm test fixtures in tests/fixtures/ with petastorm itself.

petastorm writes datasets only through Spark and needs pyarrow < 15, so this runs in its own
throwaway environment, never in cerebro's (cerebro reads the files without petastorm):

    python3.11 -m venv /tmp/pst-venv
    /tmp/pst-venv/bin/pip install "petastorm==0.13.1" "pyarrow<15" "pyspark==3.5.*" \
        "numpy<2" "pandas<2.2" opencv-python-headless          # and a Java 17 runtime
    /tmp/pst-venv/bin/python tools/make_petastorm_fixture.py      # from the repository root

The committed fixtures were written with Python 3.11.7, petastorm 0.13.1, pyarrow 14.0.2,
pyspark 3.5.9 (local[2], OpenJDK 17), numpy 1.26.4, pandas 2.1.4 and opencv-python-headless
4.11.0.86. Re-running rewrites the same values (Spark picks new part-file names).

Fixtures: petastorm/hello (every codec), petastorm/split (partitionBy split, fold: those
columns live only in directory names), parquet/plain, parquet/hive (pyarrow partition_cols).
Every value is a formula of the row id (see ``expected`` in tests/test_petastorm.py), so the
test recomputes what it must read back.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from petastorm.codecs import (
    CompressedImageCodec,
    CompressedNdarrayCodec,
    NdarrayCodec,
    ScalarCodec,
)
from petastorm.etl.dataset_metadata import materialize_dataset
from petastorm.unischema import Unischema, UnischemaField, dict_to_spark_row
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, IntegerType, StringType

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ROWS = 40
SPLIT_ROWS = 12

HelloSchema = Unischema(
    "HelloSchema",
    [
        UnischemaField("id", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("label", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("score", np.float64, (), ScalarCodec(DoubleType()), False),
        UnischemaField("vec", np.float32, (4,), NdarrayCodec(), False),
        UnischemaField("mat", np.int16, (2, 3), CompressedNdarrayCodec(), False),
        UnischemaField("image", np.uint8, (16, 16, 3), CompressedImageCodec("png"), False),
    ],
)


def row(i: int) -> dict:
    yy, xx, cc = np.meshgrid(np.arange(16), np.arange(16), np.arange(3), indexing="ij")
    return {
        "id": np.int32(i),
        "label": "cat" if i % 2 else "dog",
        "score": i * 0.5,
        "vec": (np.arange(4, dtype=np.float32) + i) * 0.25,
        "mat": (np.arange(6, dtype=np.int16).reshape(2, 3) + i),
        "image": ((xx * 7 + yy * 3 + cc * 50 + i * 11) % 256).astype(np.uint8),
    }


# Partitioned on disk by Spark's partitionBy: `split` lives only in the directory names
# (split=train/, split=val%2F2/ -- Spark percent-escapes the "/"), `fold` likewise.
SplitSchema = Unischema(
    "SplitSchema",
    [
        UnischemaField("id", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("split", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("fold", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("vec", np.float32, (3,), NdarrayCodec(), False),
    ],
)


def split_row(i: int) -> dict:
    return {
        "id": np.int32(i),
        "split": "val/2" if i % 3 == 0 else "train",
        "fold": np.int32(i % 2),
        "vec": np.arange(3, dtype=np.float32) + i,
    }


def write_petastorm(
    path: Path,
    schema: Unischema,
    make_row,
    rows: int,
    files: int,
    partition_by: tuple[str, ...] = (),
) -> None:
    """A Petastorm dataset as petastorm writes one: materialize_dataset around Spark."""
    shutil.rmtree(path, ignore_errors=True)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("fixture")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    url = path.resolve().as_uri()
    with materialize_dataset(spark, url, schema, row_group_size_mb=1):
        data = spark.sparkContext.parallelize(range(rows), files).map(
            lambda i: dict_to_spark_row(schema, make_row(i))
        )
        writer = spark.createDataFrame(data, schema.as_spark_schema()).coalesce(files).write
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.mode("overwrite").parquet(url)
    spark.stop()
    for junk in list(path.rglob(".*.crc")) + list(path.glob("_SUCCESS")):
        junk.unlink()


def main() -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's workers: this venv
    hello = ROOT / "petastorm" / "hello"
    write_petastorm(hello, HelloSchema, row, ROWS, 3)
    split = ROOT / "petastorm" / "split"
    write_petastorm(split, SplitSchema, split_row, SPLIT_ROWS, 2, ("split", "fold"))

    plain = ROOT / "parquet" / "plain"
    shutil.rmtree(plain, ignore_errors=True)
    plain.mkdir(parents=True)
    ids = np.arange(ROWS)
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"row-{i}" for i in ids]),
            "x": pa.array([[float(i), i / 2, -float(i)] for i in ids], pa.list_(pa.float32())),
            "flag": pa.array([bool(i % 3) for i in ids]),
        }
    )
    pq.write_table(table.slice(0, 25), plain / "part-0.parquet", row_group_size=10)
    pq.write_table(table.slice(25), plain / "part-1.parquet", row_group_size=10)

    hive = ROOT / "parquet" / "hive"
    shutil.rmtree(hive, ignore_errors=True)
    pq.write_to_dataset(
        pa.table({"id": pa.array(ids, pa.int64()), "part": pa.array(ids % 3, pa.int64())}),
        hive,
        partition_cols=["part"],
        basename_template="chunk-{i}.parquet",
    )
    print(f"wrote {hello}, {split}, {plain} and {hive}")


if __name__ == "__main__":
    main()
