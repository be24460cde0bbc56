"""celltable's column types as Arrow types and back: the one mapping between the two.

Every adapter that turns the domain's columns into Arrow data (the output formats, the joins of
chunks read in place, NPZ sites) or reads the domain's columns off Arrow data (a user's join SQL
output, an output re-read by validate) goes through here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from celltable.domain.errors import SchemaError
from celltable.domain.schema import Column, DataType

ARROW_TYPES: dict[DataType, pa.DataType] = {
    DataType.BOOL: pa.bool_(),
    DataType.INT64: pa.int64(),
    DataType.FLOAT32: pa.float32(),
    DataType.FLOAT64: pa.float64(),
    DataType.STRING: pa.string(),
    DataType.NULL: pa.string(),  # a column of NULLs only is written as text
}
"""The Arrow type each of celltable's types is written as."""


# Arrow values are built here from their bytes, never from Python values: ``pa.array``,
# ``pa.scalar`` and a compute function given a Python value first ask pandas whether the value
# is one of its objects, which imports pandas (about 0.25 s of CPU and 40 MB in every process,
# worker processes included, measured), and a conversion to Parquet needs nothing of it.


def scalar(value: bool | int | float | str, type_: pa.DataType) -> pa.Scalar:
    """``value`` as an Arrow scalar of ``type_``: a boolean, an integer or float, or text.

    Raises:
        TypeError: ``value`` is not of that kind, or ``type_`` none of these.
        OverflowError: An integer out of ``type_``'s range.
    """
    def wrong() -> TypeError:
        return TypeError(f"{value!r} is not a value of Arrow type {type_}")

    if pa.types.is_boolean(type_):
        if not isinstance(value, bool):
            raise wrong()
        buffers = [None, pa.py_buffer(b"\x01" if value else b"\x00")]
    elif pa.types.is_string(type_) or pa.types.is_large_string(type_):
        if not isinstance(value, str):
            raise wrong()
        data = value.encode()
        width = np.int64 if pa.types.is_large_string(type_) else np.int32
        buffers = [None, pa.py_buffer(np.array([0, len(data)], width)), pa.py_buffer(data)]
    elif pa.types.is_integer(type_) or pa.types.is_floating(type_):
        dtype = np.dtype(type_.to_pandas_dtype())
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or (dtype.kind in "iu" and not isinstance(value, int)):
            raise wrong()
        if dtype.kind in "iu" and not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
            raise OverflowError(f"{value} is out of the range of Arrow type {type_}")
        buffers = [None, pa.py_buffer(np.array([value], dtype))]
    else:
        raise wrong()
    return pa.Array.from_buffers(type_, 1, buffers)[0]


def zero(type_: pa.DataType) -> pa.Scalar:
    """The value of a fixed-width type whose bytes are all zero: 0, 0.0, the epoch."""
    return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(bytes(type_.bit_width // 8))])[0]


def positions(n: int) -> pa.Array:
    """``0 .. n-1`` as int64."""
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(np.arange(n, dtype=np.int64))])


def is_positions(array: pa.Array | pa.ChunkedArray) -> bool:
    """Whether ``array`` holds ``0 .. len-1`` in order, without NULLs."""
    if array.null_count:
        return False
    if len(array) == 0:
        return True
    import pyarrow.compute as pc

    return bool(pc.all(pc.equal(array, positions(len(array)).cast(array.type))).as_py())


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of the domain's columns."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])


def domain_type(t: pa.DataType) -> DataType:
    """celltable's type of an Arrow type: integers of every width are int64, half and single
    floats float32, doubles and decimals float64, anything else not a boolean or null text."""
    if pa.types.is_boolean(t):
        return DataType.BOOL
    if pa.types.is_integer(t):
        return DataType.INT64
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return DataType.FLOAT32
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return DataType.FLOAT64
    if pa.types.is_null(t):
        return DataType.NULL
    return DataType.STRING


def domain_columns(schema: pa.Schema) -> tuple[Column, ...]:
    """The domain's columns of an Arrow schema."""
    return tuple(Column(f.name, domain_type(f.type)) for f in schema)


def fitted(data: object, schema: pa.Schema, path: str) -> pa.Table:
    """``data``, an Arrow table, with the columns and types of ``schema`` (a sink's rows).

    Raises:
        SchemaError: They do not fit (a user's join SQL giving other columns for a plate).
    """
    assert isinstance(data, pa.Table), type(data)
    if data.schema == schema:
        return data
    try:
        return data.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaError(
            f"rows for {path} do not fit its columns ({e}); with join SQL, every plate must "
            "give the same columns"
        ) from e
