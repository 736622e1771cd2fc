"""Reading Petastorm datasets (and plain Parquet) into rows for a PostgreSQL table.

Petastorm stores its Unischema as a *pickle* in the dataset's ``_common_metadata``, and its
codecs encode ndarrays with ``np.save`` / ``np.savez_compressed`` and images with OpenCV. We
read all of that without petastorm (which pins pyarrow < 15 and pulls in Spark):

* the pickle goes through a restricted unpickler that knows only the classes a Unischema is
  made of (petastorm's schema and codec classes, pyspark's type classes, numpy scalar types)
  and maps them to inert stand-ins defined here. A dataset URL is untrusted input and
  unpickling anything else could run code, so every other class is refused by name;
* Parquet files are read with pyarrow in record batches of at most ``batch_rows`` rows, so
  memory is bounded by one batch (plus one Parquet row group) whatever the dataset's size;
* values are decoded per codec: scalars as they are, ``NdarrayCodec`` with ``np.load``
  (``allow_pickle=False``), ``CompressedNdarrayCodec`` from the ``arr`` member of its
  ``np.savez_compressed`` archive, and ``CompressedImageCodec`` (petastorm swaps RGB to BGR
  before OpenCV's ``imencode``, so the PNG/JPEG file holds proper RGB) with Pillow into an
  ``H x W x C`` array, or kept as the encoded bytes (``images => 'bytes'``).

This module runs inside the database (``cerebro.import_petastorm``) and in the client
(``cerebro import-petastorm``, which streams the rows with COPY); it never imports the client.
"""

from __future__ import annotations

import functools
import io
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

import numpy as np

from .errors import CerebroError

UNISCHEMA_KEY = b"dataset-toolkit.unischema.v1"
MAX_BATCH_ROWS = 1024  # default cap on rows per batch
BATCH_BYTES = 64 << 20  # default: keep one decoded batch under ~64 MB
IMAGE_MODES = ("array", "bytes")
IF_EXISTS = ("error", "append", "replace")


# ------------------------------------------------------------------ the restricted unpickler


class _Field(NamedTuple):
    """Stand-in for petastorm.unischema.UnischemaField (a NamedTuple there too)."""

    name: str
    numpy_dtype: Any
    shape: tuple
    codec: Any = None
    nullable: bool = False


class _Schema:
    """Stand-in for petastorm.unischema.Unischema (its state is set by pickle's BUILD)."""

    _name: str
    _fields: OrderedDict[str, _Field]


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


class _DType:
    """Stand-in for ``numpy.dtype(...)`` in a pickle: only simple scalar type codes."""

    def __init__(self, code: Any, *_: Any) -> None:
        if not isinstance(code, str):
            raise CerebroError(
                f"the dataset's Unischema has a numpy dtype {code!r}, which "
                "is not a simple scalar type"
            )
        try:
            self.type = np.dtype(code).type
        except TypeError:
            raise CerebroError(
                f"the dataset's Unischema has an unknown numpy dtype {code!r}"
            ) from None

    def __setstate__(self, state: Any) -> None:  # byte order, flags: not needed
        pass


_CODECS = {
    c.__name__: c
    for c in (ScalarCodec, NdarrayCodec, CompressedNdarrayCodec, CompressedImageCodec)
}
_SPARK_TYPES = {
    n: type(n, (_SparkType,), {})
    for n in (
        "ByteType",
        "ShortType",
        "IntegerType",
        "LongType",
        "FloatType",
        "DoubleType",
        "BooleanType",
        "StringType",
        "BinaryType",
        "DecimalType",
        "DateType",
        "TimestampType",
    )
}
_NUMPY_TYPES: dict[str, Any] = {
    n: getattr(np, n)
    for n in (
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "str_",
        "bytes_",
    )
}
_NUMPY_TYPES.update({"string_": np.bytes_, "unicode_": np.str_, "dtype": _DType})


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the classes a petastorm Unischema is made of, to inert stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("petastorm.unischema", "petastorm.etl.dataset_metadata") and name in (
            "Unischema",
            "UnischemaField",
        ):
            return _Schema if name == "Unischema" else _Field
        if module == "petastorm.codecs" and name in _CODECS:
            return _CODECS[name]
        if module == "pyspark.sql.types" and name in _SPARK_TYPES:
            return _SPARK_TYPES[name]
        if (
            module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
            and name in _NUMPY_TYPES
            and (module == "numpy" or name == "dtype")
        ):
            return _NUMPY_TYPES[name]
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("decimal", "Decimal"):
            return Decimal
        raise CerebroError(
            f"the dataset's Unischema refers to {module}.{name}, which is not "
            "part of a Petastorm schema; refusing to unpickle it",
            hint="cerebro reads Unischemas made of petastorm codecs "
            "(ScalarCodec, NdarrayCodec, CompressedNdarrayCodec, "
            "CompressedImageCodec), pyspark types and numpy scalar types",
        )


def load_unischema(blob: bytes) -> list[_Field]:
    """The fields of a pickled Unischema, through the restricted unpickler."""
    try:
        schema = RestrictedUnpickler(io.BytesIO(blob)).load()
    except CerebroError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt pickle can raise anything
        raise CerebroError(
            f"the dataset's Unischema cannot be read: {type(e).__name__}: {e}"
        ) from None
    fields = getattr(schema, "_fields", None)
    if (
        not isinstance(schema, _Schema)
        or not isinstance(fields, dict)
        or not all(isinstance(f, _Field) for f in fields.values())
    ):
        raise CerebroError("the dataset's Unischema metadata is not a petastorm Unischema")
    return list(fields.values())


# ------------------------------------------------------------------ columns and types


@dataclass
class Column:
    name: str
    pg_type: str  # e.g. "integer", "real[]", "bytea"
    decode: Callable[[Any], Any]  # Arrow's Python value -> value for the database
    row_bytes: int | None = None  # estimated decoded size of one value, if known


_SCALAR_PG = {
    np.bool_: "boolean",
    np.int8: "smallint",
    np.int16: "smallint",
    np.int32: "integer",
    np.int64: "bigint",
    np.uint8: "smallint",
    np.uint16: "integer",
    np.uint32: "bigint",
    np.uint64: "numeric",
    np.float16: "real",
    np.float32: "real",
    np.float64: "double precision",
    np.str_: "text",
    np.bytes_: "bytea",
    Decimal: "numeric",
}
_IMAGE_PG = {
    np.uint8: "smallint",
    np.uint16: "integer",
    np.int16: "smallint",
    np.int32: "integer",
    np.float32: "real",
}


def _pg_scalar(dtype: Any, what: str) -> str:
    if isinstance(dtype, _DType):
        dtype = dtype.type
    t = _SCALAR_PG.get(dtype)
    if t is None:
        raise CerebroError(
            f"{what} has numpy type {getattr(dtype, '__name__', dtype)}, which "
            "has no PostgreSQL column type here",
            hint="booleans, integers, floats, strings and bytes are imported",
        )
    return t


def _to_py(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _known_size(shape: Any) -> int | None:
    if not isinstance(shape, tuple) or any(not isinstance(d, int) for d in shape):
        return None
    return math.prod(shape)


def _load_array(value: Any, member: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        arr = np.load(io.BytesIO(value), allow_pickle=False)
        if member is not None:
            with arr:
                arr = arr[member]
    except Exception as e:  # noqa: BLE001 - np.load raises many types
        raise CerebroError(
            f"field {name!r} holds a value that is not a numpy "
            f"{'.npz archive' if member else 'array'}: {type(e).__name__}: {e}"
        ) from None
    return arr.tolist()


def _load_image(value: Any, name: str) -> Any:
    if value is None:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(value)) as opened:
            img: Image.Image = opened
            if opened.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                img = opened.convert(
                    "RGBA" if "A" in opened.mode or "transparency" in opened.info else "RGB"
                )
            return np.asarray(img).tolist()
    except Exception as e:  # noqa: BLE001 - Pillow raises many types
        raise CerebroError(
            f"field {name!r} holds a value that is not an image Pillow can "
            f"decode: {type(e).__name__}: {e}"
        ) from None


def _petastorm_columns(fields: list[_Field], images: str) -> list[Column]:
    cols = []
    for f in fields:
        if not isinstance(f.codec, _Codec):
            raise CerebroError(
                f"field {f.name!r} has no codec cerebro knows ({type(f.codec).__name__})"
            )
        kind, what, size = f.codec.kind, f"field {f.name!r}", _known_size(f.shape)
        if kind == "scalar":
            if f.shape not in ((), None):
                raise CerebroError(f"{what} has shape {f.shape} but a scalar codec")
            cols.append(Column(f.name, _pg_scalar(f.numpy_dtype, what), _to_py, 16))
        elif kind in ("ndarray", "compressed_ndarray"):
            elem = _pg_scalar(f.numpy_dtype, what)
            if elem in ("text", "bytea"):
                raise CerebroError(f"{what} is an array of {elem}; arrays must hold numbers")
            member = "arr" if kind == "compressed_ndarray" else None
            cols.append(
                Column(
                    f.name,
                    elem + "[]" * max(1, len(f.shape or ())),
                    functools.partial(_load_array, member=member, name=f.name),
                    None if size is None else 40 * size,
                )
            )
        elif kind == "image":
            if images == "bytes":
                cols.append(Column(f.name, "bytea", lambda v: v, None))
            else:
                dtype = f.numpy_dtype.type if isinstance(f.numpy_dtype, _DType) else f.numpy_dtype
                elem = _IMAGE_PG.get(dtype, "integer")
                cols.append(
                    Column(
                        f.name,
                        elem + "[]" * max(2, len(f.shape or ())),
                        functools.partial(_load_image, name=f.name),
                        None if size is None else 40 * size,
                    )
                )
        else:  # pragma: no cover - _CODECS and this switch list the same codecs
            raise CerebroError(f"{what} uses codec {type(f.codec).__name__}, which is not known")
    return cols


def _arrow_pg(t: Any, what: str) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    simple = [
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int8, "smallint"),
        (pa.types.is_int16, "smallint"),
        (pa.types.is_int32, "integer"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_uint8, "smallint"),
        (pa.types.is_uint16, "integer"),
        (pa.types.is_uint32, "bigint"),
        (pa.types.is_uint64, "numeric"),
        (pa.types.is_float16, "real"),
        (pa.types.is_float32, "real"),
        (pa.types.is_float64, "double precision"),
        (pa.types.is_string, "text"),
        (pa.types.is_large_string, "text"),
        (pa.types.is_binary, "bytea"),
        (pa.types.is_large_binary, "bytea"),
        (pa.types.is_fixed_size_binary, "bytea"),
        (pa.types.is_date, "date"),
        (pa.types.is_decimal, "numeric"),
    ]
    for test, pg in simple:
        if test(t):
            return pg
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        depth, inner = 0, t
        while (
            pa.types.is_list(inner)
            or pa.types.is_large_list(inner)
            or pa.types.is_fixed_size_list(inner)
        ):
            depth, inner = depth + 1, inner.value_type
        base = _arrow_pg(inner, what)
        if base in ("bytea", "text", "date", "timestamp", "timestamptz"):
            raise CerebroError(f"{what} is a list of {inner}; lists must hold numbers or booleans")
        return base + "[]" * depth
    raise CerebroError(
        f"{what} has Arrow type {t}, which cerebro does not import",
        hint="numbers, booleans, strings, binary, dates, timestamps and "
        "(nested) lists of numbers are imported",
    )


def _plain_columns(schema: Any) -> list[Column]:
    return [Column(f.name, _arrow_pg(f.type, f"column {f.name!r}"), lambda v: v) for f in schema]


# ------------------------------------------------------------------ the dataset


def local_path(url: Any) -> Path:
    """A local path from ``file://...`` or a plain path; other schemes are refused."""
    if not url or not isinstance(url, str):
        raise CerebroError(
            "url must name a Petastorm or Parquet dataset",
            hint="file:///path/to/dataset or /path/to/dataset",
        )
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise CerebroError(
                f"file URL {url!r} names host {parsed.netloc!r}",
                hint="use file:///absolute/path (three slashes)",
            )
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and url[1:3] in (":\\", ":/")):
        path = Path(url)
    else:
        raise CerebroError(
            f"url scheme {parsed.scheme!r} is not supported",
            hint="file:// URLs and local paths are (copy hdfs:// or s3:// "
            "datasets to a local directory first)",
        )
    try:
        path.stat()
        if path.is_dir():
            next(path.iterdir(), None)
        else:
            path.open("rb").close()
    except FileNotFoundError:
        raise CerebroError(
            f"{path} does not exist",
            hint="cerebro.import_petastorm reads files on the database "
            "server; `cerebro import-petastorm` reads them on the client",
        ) from None
    except OSError as e:
        import getpass

        raise CerebroError(
            f"{path} cannot be read by OS user {getpass.getuser()!r}: {e.strerror}",
            hint="make the dataset readable by that user, or import it from "
            "the client with `cerebro import-petastorm`",
        ) from None
    return path


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _partition_keys(p: Path, root: Path) -> dict[str, str | None]:
    """``key=value`` directories between ``root`` and a file (Spark's ``partitionBy``, pyarrow's
    hive partitioning): the values of columns that are not stored in the file itself. Spark
    percent-escapes special characters and writes NULL as __HIVE_DEFAULT_PARTITION__."""
    keys: dict[str, str | None] = {}
    for part in p.relative_to(root).parent.parts:
        k, eq, v = part.partition("=")
        if eq and k:
            v = unquote(v)
            keys[unquote(k)] = None if v == HIVE_NULL else v
    return keys


def _partition_type(values: list[str | None]) -> str:
    """What Spark's partition discovery infers: integers, then floats, else text."""
    present = [v for v in values if v is not None]
    for pg, parse in (("bigint", int), ("double precision", float)):
        try:
            for v in present:
                parse(v)
        except ValueError:
            continue
        if present:
            return pg
    return "text"


_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "smallint": int,
    "integer": int,
    "bigint": int,
    "real": float,
    "double precision": float,
    "numeric": Decimal,
    "text": str,
    "boolean": lambda v: {"true": True, "false": False}[v.lower()],
}


def _partition_value(value: str | None, column: Column, path: Path) -> Any:
    if value is None:
        return None
    convert = _FROM_TEXT.get(column.pg_type)
    if convert is None:
        raise CerebroError(
            f"column {column.name!r} ({column.pg_type}) comes from the directory "
            f"names of {path}, but only scalar columns can",
            hint="partition a dataset by numeric, boolean or text columns",
        )
    try:
        return convert(value)
    except (ValueError, KeyError, ArithmeticError):
        raise CerebroError(
            f"directory value {value!r} of {path} is not of type "
            f"{column.pg_type} (column {column.name!r})"
        ) from None


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)


def _check_images(images: Any) -> None:
    if images not in IMAGE_MODES:
        raise CerebroError(
            f"images must be 'array' or 'bytes', got {images!r}",
            hint="'array': decoded pixels (smallint[] H x W x C); 'bytes': "
            "the PNG/JPEG bytes as bytea",
        )


def _check_reader_options(images: str, batch_rows: int | None) -> None:
    _check_images(images)
    if batch_rows is not None and not 1 <= int(batch_rows) <= 1_000_000:
        raise CerebroError(f"batch_rows must be between 1 and 1000000, got {batch_rows}")


def _list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The data files under ``root`` (or ``root`` itself) and where its metadata may be."""
    if root.is_dir():
        try:
            files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
        except OSError as e:
            raise CerebroError(f"{root} cannot be listed: {e}") from None
        meta_files = [root / "_common_metadata", root / "_metadata"]
    else:
        files = [root]
        meta_files = [root.parent / "_common_metadata", root.parent / "_metadata"]
    if not files:
        raise CerebroError(f"{root} holds no Parquet files")
    return files, meta_files


def _footer(p: Path) -> Any:
    """A Parquet file's footer (pyarrow ``FileMetaData``)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(p).metadata
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise CerebroError(
            f"{p} is not a Parquet file ({type(e).__name__}: {e})",
            hint="give the directory of a Petastorm or Parquet dataset, or one .parquet file",
        ) from None


def _unischema_metadata(meta_files: list[Path], first_footer: Any) -> dict:
    """The key-value metadata that holds the Unischema, if any: ``_common_metadata`` or
    ``_metadata``, else the first file's footer (petastorm may leave it there too)."""
    import pyarrow.parquet as pq

    meta: dict = {}
    for mf in meta_files:
        if UNISCHEMA_KEY not in meta and mf.is_file():
            try:
                meta = pq.read_metadata(mf).metadata or {}
            except Exception as e:  # noqa: BLE001
                raise CerebroError(f"{mf} is not Parquet metadata ({e})") from None
    if UNISCHEMA_KEY not in meta:
        meta = first_footer.metadata or {}
    return meta


class Dataset:
    """The files, columns and rows of one Petastorm or plain Parquet dataset.

    Everything that can be wrong with the dataset (unreadable files, footers, partition
    layout, schema, missing columns) is found here, from the footers alone, before any row
    is read or inserted.
    """

    def __init__(
        self,
        url: str,
        images: str = "array",
        batch_rows: int | None = None,
        use_threads: bool = True,
    ) -> None:
        _check_reader_options(images, batch_rows)
        self.use_threads = use_threads
        root = local_path(url)
        self.root = root
        self.files, meta_files = _list_files(root)
        self._metas = [_footer(p) for p in self.files]  # cheap, and fails before any insert
        self.arrow_schema = self._metas[0].schema.to_arrow_schema()
        self.partitions = [_partition_keys(p, root) if root.is_dir() else {} for p in self.files]
        part_names = self._check_partitions()
        meta = _unischema_metadata(meta_files, self._metas[0])
        self.kind, self.columns = self._columns(meta, images, part_names)
        # a column in the directory names is not read from the files (Spark leaves it out)
        self.from_path = {c.name: c for c in self.columns if c.name in part_names}
        self._check_file_columns(part_names)
        self.num_rows = sum(md.num_rows for md in self._metas)
        self.batch_rows = int(batch_rows) if batch_rows is not None else self._default_rows()
        self.batches_read = 0
        self.max_batch_rows = 0

    def _check_partitions(self) -> list[str]:
        """The partition keys, which every file must have (the same ``key=value`` levels)."""
        part_names = list(self.partitions[0])
        for p, keys in zip(self.files, self.partitions, strict=True):
            if sorted(keys) != sorted(part_names):
                raise CerebroError(
                    f"{p} is partitioned by {sorted(keys) or 'nothing'}, "
                    f"{self.files[0]} by {sorted(part_names) or 'nothing'}",
                    hint="every file of a dataset sits under the same key=value directories",
                )
        return part_names

    def _columns(self, meta: dict, images: str, part_names: list[str]) -> tuple[str, list[Column]]:
        """(kind, columns): a Unischema's fields, or the Arrow schema's columns followed by
        the partition keys that the files do not store."""
        if UNISCHEMA_KEY in meta:
            kind = "petastorm"
            columns = _petastorm_columns(load_unischema(meta[UNISCHEMA_KEY]), images)
        else:
            kind = "parquet"
            columns = _plain_columns(self.arrow_schema)
            stored = {c.name for c in columns}
            columns += [
                Column(k, _partition_type([d[k] for d in self.partitions]), lambda v: v)
                for k in part_names
                if k not in stored
            ]
        if not columns:
            raise CerebroError(f"{self.root} has no columns")
        unknown = [k for k in part_names if k not in {c.name for c in columns}]
        if unknown:
            raise CerebroError(
                f"{self.root} is partitioned by {unknown}, which the Unischema does not list"
            )
        return kind, columns

    def _check_file_columns(self, part_names: list[str]) -> None:
        """Every file has every column (or its directory names give it)."""
        names = [c.name for c in self.columns]
        for p, md in zip(self.files, self._metas, strict=True):
            have = set(md.schema.to_arrow_schema().names) | set(part_names)
            missing = [n for n in names if n not in have]
            if missing:
                raise CerebroError(f"{p} lacks column(s) {missing} of the dataset's schema")

    def _default_rows(self) -> int:
        """Rows per batch so that one decoded batch stays under ~BATCH_BYTES."""
        stored = max(
            (
                md.row_group(i).total_byte_size / max(1, md.row_group(i).num_rows)
                for md in self._metas
                for i in range(md.num_row_groups)
            ),
            default=0,
        )
        known = [c.row_bytes for c in self.columns]
        est = sum(k for k in known if k is not None)
        if None in known or not est:
            est += 4 * stored  # encoded bytes, inflated for Python objects
        return int(max(1, min(MAX_BATCH_ROWS, BATCH_BYTES // max(1, est))))

    def batches(self) -> Iterator[list[tuple]]:
        """Decoded rows, at most ``batch_rows`` at a time, file by file."""
        import pyarrow.parquet as pq

        stored = [c for c in self.columns if c.name not in self.from_path]
        names = [c.name for c in stored]
        decoders = [(lambda v: v) if c.name in self.from_path else c.decode for c in self.columns]
        for path, keys in zip(self.files, self.partitions, strict=True):
            pf = pq.ParquetFile(path)
            fixed = {k: _partition_value(keys[k], c, path) for k, c in self.from_path.items()}
            for batch in pf.iter_batches(
                batch_size=self.batch_rows, columns=names, use_threads=self.use_threads
            ):
                n = batch.num_rows
                by_name = {c: batch.column(c).to_pylist() for c in names}
                del batch
                data = [
                    by_name[c.name] if c.name in by_name else [fixed[c.name]] * n
                    for c in self.columns
                ]
                del by_name
                rows = [
                    tuple(d(v) for d, v in zip(decoders, values, strict=True))
                    for values in zip(*data, strict=True)
                ]
                del data
                self.batches_read += 1
                self.max_batch_rows = max(self.max_batch_rows, len(rows))
                yield rows

    def rows(self) -> Iterator[tuple]:
        for rows in self.batches():
            yield from rows


def check_options(images: Any, if_exists: Any) -> None:
    """The options the server function and the client command share."""
    _check_images(images)
    if if_exists not in IF_EXISTS:
        raise CerebroError(f"if_exists must be 'error', 'append' or 'replace', got {if_exists!r}")


def table_parts(parsed: list[str] | None, target: str) -> list[str]:
    """``[schema, table]`` from ``parse_ident``'s result (schema defaults to public)."""
    if not parsed or len(parsed) > 2 or not all(parsed):
        raise CerebroError(
            f"{target!r} is not a table name", hint="a name like xray or myschema.xray"
        )
    return ["public", parsed[0]] if len(parsed) == 1 else list(parsed)


# ------------------------------------------------------------------ server side

# Reading server files takes what COPY ... FROM 'file' takes.
MAY_READ_FILES_SQL = (
    "select pg_has_role(current_user, 'pg_read_server_files', 'member') or "
    "(select rolsuper from pg_roles where rolname = current_user) as ok"
)
PARSE_IDENT_SQL = "select parse_ident($1) as p"
TABLE_EXISTS_SQL = (
    "select exists (select from pg_class c join pg_namespace n on "
    "n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2) as e"
)
# {table} is a quoted schema.name, {columns} quoted names (with their types in CREATE)
DROP_TABLE_SQL = "drop table {table}"
CREATE_TABLE_SQL = "create table {table} ({columns})"
INSERT_SQL = "insert into {table} ({columns}) values {values}"
MAX_ROWS_PER_INSERT = 100
MAX_VALUES_PER_INSERT = 1000


def _chunks(rows: list[tuple], size: int) -> Iterator[list[tuple]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def import_petastorm(
    plpy: Any,
    name: str,
    url: str,
    table_name: str | None = None,
    batch_rows: int | None = None,
    images: str = "array",
    if_exists: str = "error",
) -> int:
    """``cerebro.import_petastorm``: create the table and insert every row (one transaction).

    It reads files as the server's OS user, so it asks what ``COPY ... FROM 'file'`` asks:
    superuser or membership in ``pg_read_server_files``.
    """
    _check_may_read_files(plpy)
    check_options(images, if_exists)
    target = table_name or name
    if not target:
        raise CerebroError("name the table to create: name => 'xray' (or table_name)")
    try:
        parsed = plpy.execute(plpy.prepare(PARSE_IDENT_SQL, ["text"]), [target])[0]["p"]
    except plpy.SPIError:
        parsed = None
    schema, table = table_parts(parsed, target)
    ds = Dataset(url, images, batch_rows, use_threads=False)
    qualified = f"{plpy.quote_ident(schema)}.{plpy.quote_ident(table)}"
    _prepare_table(plpy, schema, table, qualified, ds.columns, if_exists)
    return _insert_rows(plpy, qualified, ds)


def _check_may_read_files(plpy: Any) -> None:
    if not plpy.execute(MAY_READ_FILES_SQL)[0]["ok"]:
        raise CerebroError(
            "reading files on the server needs the pg_read_server_files role "
            "(as COPY FROM a file does)",
            hint="GRANT pg_read_server_files TO <role>, or import from the "
            "client with `cerebro import-petastorm URL NAME`",
            sqlstate="42501",
        )


def _prepare_table(
    plpy: Any, schema: str, table: str, qualified: str, columns: list[Column], if_exists: str
) -> None:
    """Create the table, or keep it (``append``), or drop and create it (``replace``)."""
    exists = plpy.execute(plpy.prepare(TABLE_EXISTS_SQL, ["text", "text"]), [schema, table])[0][
        "e"
    ]
    if exists and if_exists == "error":
        raise CerebroError(
            f"table {schema}.{table} already exists",
            hint="if_exists => 'append' or 'replace', or another table_name",
        )
    if exists and if_exists == "replace":
        plpy.execute(DROP_TABLE_SQL.format(table=qualified))
    if not exists or if_exists == "replace":
        cols = ", ".join(f"{plpy.quote_ident(c.name)} {c.pg_type}" for c in columns)
        plpy.execute(CREATE_TABLE_SQL.format(table=qualified, columns=cols))


def _insert_rows(plpy: Any, qualified: str, ds: Dataset) -> int:
    """Insert every row, batch by batch, several rows per INSERT (one plan per row count)."""
    ncols = len(ds.columns)
    per_stmt = max(1, min(MAX_ROWS_PER_INSERT, MAX_VALUES_PER_INSERT // ncols))
    col_list = ", ".join(plpy.quote_ident(c.name) for c in ds.columns)
    plans: dict[int, Any] = {}

    def plan(k: int) -> Any:
        if k not in plans:
            values = ", ".join(
                "(" + ", ".join(f"${r * ncols + j + 1}" for j in range(ncols)) + ")"
                for r in range(k)
            )
            plans[k] = plpy.prepare(
                INSERT_SQL.format(table=qualified, columns=col_list, values=values),
                [c.pg_type for c in ds.columns] * k,
            )
        return plans[k]

    n = 0
    for rows in ds.batches():
        for chunk in _chunks(rows, per_stmt):
            plpy.execute(plan(len(chunk)), [v for r in chunk for v in r])
        n += len(rows)
    return n
