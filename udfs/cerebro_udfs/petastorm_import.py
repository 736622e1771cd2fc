"""Reading Petastorm datasets (and plain Parquet) into rows for a PostgreSQL table.

Petastorm stores its Unischema as a *pickle* in the dataset's ``_common_metadata`` and its
codecs encode ndarrays with ``np.save`` / ``np.savez_compressed`` and images with OpenCV. We
read all of that without petastorm (which pins pyarrow < 15 and pulls in Spark):

* the pickle goes through a restricted unpickler that knows only the classes a Unischema is
  made of (petastorm's schema and codec classes, pyspark's type classes, numpy scalar types)
  and maps them to inert stand-ins here. A dataset URL is untrusted input and unpickling
  anything else could run code, so every other class is refused by name;
* Parquet files are read with pyarrow in record batches of ``batch_rows`` rows, so memory is
  bounded by one batch whatever the dataset's size;
* values are decoded per codec: scalars as they are, ``NdarrayCodec`` with ``np.load``
  (``allow_pickle=False``), ``CompressedNdarrayCodec`` from its ``arr`` member, and
  ``CompressedImageCodec`` (PNG/JPEG written by OpenCV, which stores proper RGB files) with
  Pillow into an ``H x W x C`` array, or kept as the original bytes.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple
from urllib.parse import unquote, urlparse

import numpy as np

from .errors import CerebroError

UNISCHEMA_KEY = b"dataset-toolkit.unischema.v1"
DEFAULT_BATCH_ROWS = 1024
IMAGE_MODES = ("array", "bytes")


# ------------------------------------------------------------------ the restricted unpickler

class _Field(NamedTuple):
    name: str
    numpy_dtype: Any
    shape: tuple
    codec: Any = None
    nullable: bool = False


class _Schema:
    """Stand-in for petastorm.unischema.Unischema (state set by pickle's BUILD)."""
    _name: str
    _fields: "OrderedDict[str, _Field]"


class _Codec:
    kind = "codec"


class ScalarCodec(_Codec):
    kind = "scalar"


class NdarrayCodec(_Codec):
    kind = "ndarray"


class CompressedNdarrayCodec(_Codec):
    kind = "compressed_ndarray"


class CompressedImageCodec(_Codec):
    kind = "image"


class _SparkType:
    """Stand-in for a pyspark.sql.types type: only its class name matters here."""


_CODECS = {c.__name__: c for c in (ScalarCodec, NdarrayCodec, CompressedNdarrayCodec,
                                   CompressedImageCodec)}
_SPARK_TYPES = {n: type(n, (_SparkType,), {}) for n in (
    "ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType",
    "BooleanType", "StringType", "BinaryType", "DecimalType", "DateType", "TimestampType")}
_NUMPY_TYPES = {n: getattr(np, n) for n in (
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "str_", "bytes_")}
_NUMPY_TYPES.update({"string_": np.bytes_, "unicode_": np.str_, "object_": np.str_})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("petastorm.unischema", "petastorm.etl.dataset_metadata") \
                and name in ("Unischema", "UnischemaField"):
            return _Schema if name == "Unischema" else _Field
        if module == "petastorm.codecs" and name in _CODECS:
            return _CODECS[name]
        if module == "pyspark.sql.types" and name in _SPARK_TYPES:
            return _SPARK_TYPES[name]
        if module == "numpy" and name in _NUMPY_TYPES:
            return _NUMPY_TYPES[name]
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise CerebroError(f"the dataset's Unischema refers to {module}.{name}, which is not "
                           "part of a Petastorm schema; refusing to unpickle it",
                           hint="cerebro reads Unischemas made of petastorm codecs, pyspark "
                                "types and numpy scalar types")


def load_unischema(blob: bytes) -> list[_Field]:
    """The fields of a pickled Unischema, through the restricted unpickler."""
    try:
        schema = _Unpickler(io.BytesIO(blob)).load()
    except CerebroError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt pickle can raise anything
        raise CerebroError(f"the dataset's Unischema cannot be read: {type(e).__name__}: {e}"
                           ) from None
    fields = getattr(schema, "_fields", None)
    if not isinstance(schema, _Schema) or not isinstance(fields, dict):
        raise CerebroError("the dataset's Unischema metadata is not a petastorm Unischema")
    return list(fields.values())


# ------------------------------------------------------------------ columns and types

@dataclass
class Column:
    name: str
    pg_type: str                   # e.g. "integer", "real[]", "bytea"
    decode: Any                    # callable(value) -> Python value for the database


_SCALAR_PG = {np.bool_: "boolean", np.int8: "smallint", np.int16: "smallint",
              np.int32: "integer", np.int64: "bigint", np.uint8: "smallint",
              np.uint16: "integer", np.uint32: "bigint", np.uint64: "numeric",
              np.float16: "real", np.float32: "real", np.float64: "double precision",
              np.str_: "text", np.bytes_: "bytea"}


def _pg_scalar(dtype: Any, what: str) -> str:
    t = _SCALAR_PG.get(dtype)
    if t is None:
        raise CerebroError(f"{what} has numpy type {getattr(dtype, '__name__', dtype)}, which "
                           "has no PostgreSQL column type here")
    return t


def _to_py(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_image(value: bytes, images: str) -> Any:
    if images == "bytes":
        return bytes(value)
    from PIL import Image

    with Image.open(io.BytesIO(bytes(value))) as img:
        return np.asarray(img).tolist()


def _petastorm_columns(fields: list[_Field], images: str) -> list[Column]:
    cols = []
    for f in fields:
        kind = f.codec.kind if isinstance(f.codec, _Codec) else "scalar"
        what = f"field {f.name!r}"
        if kind == "scalar":
            if f.shape not in ((), None):
                raise CerebroError(f"{what} has shape {f.shape} but a scalar codec")
            cols.append(Column(f.name, _pg_scalar(f.numpy_dtype, what), _to_py))
        elif kind in ("ndarray", "compressed_ndarray"):
            elem = _pg_scalar(f.numpy_dtype, what)
            member = "arr" if kind == "compressed_ndarray" else None

            def decode(v: Any, member: str | None = member, name: str = f.name) -> Any:
                if v is None:
                    return None
                try:
                    arr = np.load(io.BytesIO(bytes(v)), allow_pickle=False)
                    if member:
                        arr = arr[member]
                except Exception as e:  # noqa: BLE001
                    raise CerebroError(f"field {name!r} holds a value that is not a numpy "
                                       f"array: {type(e).__name__}: {e}") from None
                return arr.tolist()
            cols.append(Column(f.name, elem + "[]", decode))
        elif kind == "image":
            cols.append(Column(f.name, "bytea" if images == "bytes" else "smallint[]",
                               lambda v, m=images: None if v is None else _decode_image(v, m)))
        else:
            raise CerebroError(f"{what} uses codec {type(f.codec).__name__}, which is not known")
    return cols


def _arrow_pg(t: Any, what: str) -> str:
    import pyarrow as pa

    simple = [(pa.types.is_boolean, "boolean"), (pa.types.is_int8, "smallint"),
              (pa.types.is_int16, "smallint"), (pa.types.is_int32, "integer"),
              (pa.types.is_int64, "bigint"), (pa.types.is_uint8, "smallint"),
              (pa.types.is_uint16, "integer"), (pa.types.is_uint32, "bigint"),
              (pa.types.is_float16, "real"), (pa.types.is_float32, "real"),
              (pa.types.is_float64, "double precision"), (pa.types.is_string, "text"),
              (pa.types.is_large_string, "text"), (pa.types.is_binary, "bytea"),
              (pa.types.is_large_binary, "bytea"), (pa.types.is_date, "date"),
              (pa.types.is_timestamp, "timestamptz"), (pa.types.is_decimal, "numeric")]
    for test, pg in simple:
        if test(t):
            return pg
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = t.value_type
        while pa.types.is_list(inner) or pa.types.is_fixed_size_list(inner):
            inner = inner.value_type
        base = _arrow_pg(inner, what)
        if base.endswith("[]") or base in ("bytea", "text"):
            raise CerebroError(f"{what} is a list of {inner}; lists must hold numbers")
        return base + "[]"
    raise CerebroError(f"{what} has Arrow type {t}, which cerebro does not import",
                       hint="numbers, booleans, strings, binary, dates, timestamps and "
                            "(nested) lists of numbers are imported")


def _plain_columns(schema: Any) -> list[Column]:
    return [Column(f.name, _arrow_pg(f.type, f"column {f.name!r}"), lambda v: v)
            for f in schema]


# ------------------------------------------------------------------ the dataset

def local_path(url: str) -> Path:
    """A local path from ``file://...`` or a plain path; other schemes are refused."""
    if not url or not isinstance(url, str):
        raise CerebroError("url must name a Petastorm or Parquet dataset",
                           hint="file:///path/to/dataset or /path/to/dataset")
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else url)
    else:
        raise CerebroError(f"url scheme {parsed.scheme!r} is not supported",
                           hint="file:// URLs and local paths are (copy hdfs/s3 datasets "
                                "to a local path first)")
    try:
        path.stat()
        if path.is_dir():
            next(path.iterdir(), None)
        else:
            path.open("rb").close()
    except FileNotFoundError:
        raise CerebroError(f"{path} does not exist") from None
    except OSError as e:
        import getpass
        raise CerebroError(f"{path} cannot be read by OS user {getpass.getuser()!r}: "
                           f"{e.strerror}",
                           hint="make the dataset readable by that user, or import it from "
                                "the client with `cerebro import-petastorm`") from None
    return path


class Dataset:
    """The files, columns and rows of one Petastorm or Parquet dataset."""

    def __init__(self, url: str, images: str = "array",
                 batch_rows: int | None = None) -> None:
        import pyarrow.parquet as pq

        if images not in IMAGE_MODES:
            raise CerebroError(f"images must be 'array' or 'bytes', got {images!r}",
                               hint="'array': decoded pixels (smallint[] H x W x C); 'bytes': "
                                    "the PNG/JPEG bytes as bytea")
        self.batch_rows = DEFAULT_BATCH_ROWS if batch_rows is None else int(batch_rows)
        if not 1 <= self.batch_rows <= 1_000_000:
            raise CerebroError(f"batch_rows must be between 1 and 1000000, "
                               f"got {self.batch_rows}")
        root = local_path(url)
        if root.is_dir():
            try:
                self.files = sorted(p for p in root.rglob("*") if p.is_file()
                                    and not p.name.startswith(("_", ".")))
            except OSError as e:
                raise CerebroError(f"{root} cannot be listed: {e}") from None
            meta_file = root / "_common_metadata"
        else:
            self.files, meta_file = [root], root.parent / "_common_metadata"
        if not self.files:
            raise CerebroError(f"{root} holds no Parquet files")
        try:
            first = pq.ParquetFile(self.files[0])
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types
            raise CerebroError(f"{self.files[0]} is not a Parquet file: {e}") from None
        self.arrow_schema = first.schema_arrow
        meta = {}
        if meta_file.exists():
            meta = pq.read_metadata(meta_file).metadata or {}
        if UNISCHEMA_KEY in meta:
            self.kind = "petastorm"
            fields = load_unischema(meta[UNISCHEMA_KEY])
            self.columns = _petastorm_columns(fields, images)
            missing = [c.name for c in self.columns if c.name not in self.arrow_schema.names]
            if missing:
                raise CerebroError(f"Unischema fields {missing} are not in the Parquet files")
        else:
            self.kind = "parquet"
            self.columns = _plain_columns(self.arrow_schema)
        self.batches_read = 0
        self.max_batch_rows = 0

    def batches(self) -> Iterator[list[tuple]]:
        """Decoded rows, at most ``batch_rows`` at a time, file by file."""
        import pyarrow.parquet as pq

        names = [c.name for c in self.columns]
        decoders = [c.decode for c in self.columns]
        for path in self.files:
            try:
                pf = pq.ParquetFile(path)
            except Exception as e:  # noqa: BLE001
                raise CerebroError(f"{path} is not a Parquet file: {e}") from None
            for batch in pf.iter_batches(batch_size=self.batch_rows, columns=names):
                data = [batch.column(n).to_pylist() for n in names]
                rows = [tuple(d(v) for d, v in zip(decoders, values))
                        for values in zip(*data)]
                del data
                self.batches_read += 1
                self.max_batch_rows = max(self.max_batch_rows, len(rows))
                yield rows


# ------------------------------------------------------------------ server side

def import_petastorm(plpy: Any, name: str, url: str, table_name: str | None,
                     batch_rows: int | None, images: str, if_exists: str) -> int:
    """``cerebro.import_petastorm``: create the table and insert every row (one transaction)."""
    if if_exists not in ("error", "append", "replace"):
        raise CerebroError(f"if_exists must be 'error', 'append' or 'replace', got {if_exists!r}")
    ds = Dataset(url, images, batch_rows)
    target = table_name or name
    if not target:
        raise CerebroError("name the table to create: name => 'xray' (or table_name)")
    parts = plpy.execute(plpy.prepare("select parse_ident($1) as p", ["text"]), [target])[0]["p"]
    if len(parts) == 1:
        parts = ["public", parts[0]]
    qualified = ".".join(plpy.quote_ident(p) for p in parts)
    exists = plpy.execute(plpy.prepare("select to_regclass($1) is not null as e", ["text"]),
                          [qualified])[0]["e"]
    if exists and if_exists == "error":
        raise CerebroError(f"table {'.'.join(parts)} already exists",
                           hint="if_exists => 'append' or 'replace', or another table_name")
    if exists and if_exists == "replace":
        plpy.execute(f"drop table {qualified}")
    if not exists or if_exists == "replace":
        cols = ", ".join(f"{plpy.quote_ident(c.name)} {c.pg_type}" for c in ds.columns)
        plpy.execute(f"create table {qualified} ({cols})")
    plan = plpy.prepare(
        f"insert into {qualified} ({', '.join(plpy.quote_ident(c.name) for c in ds.columns)}) "
        f"values ({', '.join(f'${i + 1}' for i in range(len(ds.columns)))})",
        [c.pg_type for c in ds.columns])
    n = 0
    for rows in ds.batches():
        for r in rows:
            plpy.execute(plan, list(r))
        n += len(rows)
    return n
