"""celltable's column types as Arrow types and back: the one mapping between the two.

Every adapter that turns the domain's columns into Arrow data (the output formats, the joins of
chunks read in place, NPZ sites) or reads the domain's columns off Arrow data (a user's join SQL
output, an output re-read by validate) goes through here.
"""

from __future__ import annotations

from collections.abc import Sequence

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
