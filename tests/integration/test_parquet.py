from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from celltable.adapters.parquet import ParquetSink, ParquetWriter, arrow_schema, domain_columns
from celltable.domain.errors import SchemaError
from celltable.domain.schema import Column, DataType

COLUMNS = (Column("Metadata_TableNumber", DataType.STRING), Column("x", DataType.FLOAT64))


def _chunk(n, start=0):
    return pa.table({"Metadata_TableNumber": ["p"] * n, "x": [float(i) for i in range(start, start + n)]})


def test_small_chunks_are_gathered_into_one_row_group(tmp_path):
    path = tmp_path / "o.parquet"
    sink = ParquetWriter().create(str(path), COLUMNS)
    for i in range(10):
        sink.write(_chunk(3, 3 * i))
    assert sink.close({"k": "v"}) == 30
    meta = pq.read_metadata(path)
    assert meta.num_row_groups == 1 and meta.metadata[b"k"] == b"v"
    assert pq.read_table(path).column("x").to_pylist() == [float(i) for i in range(30)]


def test_large_chunks_make_several_row_groups(tmp_path):
    path = tmp_path / "o.parquet"
    sink = ParquetSink(str(path), arrow_schema(COLUMNS), "zstd", True, row_group_bytes=1000)
    for i in range(4):
        sink.write(_chunk(200, 200 * i))
    assert sink.close({}) == 800
    assert pq.read_metadata(path).num_row_groups == 4


def test_a_chunk_typed_differently_is_cast_to_the_file_schema(tmp_path):
    path = tmp_path / "o.parquet"
    sink = ParquetWriter().create(str(path), COLUMNS)
    sink.write(pa.table({"x": pa.array([1, 2], pa.int64()), "Metadata_TableNumber": ["a", "b"]}))
    sink.close({})
    assert pq.read_schema(path).field("x").type == pa.float64()


def test_a_chunk_missing_a_column_is_a_schema_error(tmp_path):
    sink = ParquetWriter().create(str(tmp_path / "o.parquet"), COLUMNS)
    with pytest.raises(SchemaError):
        sink.write(pa.table({"x": [1.0]}))


def test_domain_and_arrow_types_round_trip():
    cols = tuple(Column(t.value, t) for t in DataType if t is not DataType.NULL)
    assert domain_columns(arrow_schema(cols)) == cols


def test_row_groups_grow_with_the_table_to_bound_the_writers_metadata():
    from celltable.adapters.parquet import (
        MAX_ROW_GROUP_BYTES,
        ROW_GROUP_BYTES,
        row_group_bytes,
    )

    assert row_group_bytes(0, 1832) == ROW_GROUP_BYTES  # unknown size: the default
    small, large = row_group_bytes(30_000, 1832), row_group_bytes(460_000, 1832)
    assert small == ROW_GROUP_BYTES < large < MAX_ROW_GROUP_BYTES
    assert row_group_bytes(10**9, 1832) == MAX_ROW_GROUP_BYTES


# Arrow values built from their bytes (adapters/arrow_types.py): equal to Arrow's own, and as
# strict about what they accept.

@pytest.mark.parametrize(("value", "type_"), [
    (0, pa.int64()), (-(2**63), pa.int64()), (2**64 - 1, pa.uint64()), (-1, pa.int8()),
    (3, pa.float64()), (0.5, pa.float32()), (True, pa.bool_()), (False, pa.bool_()),
    ("", pa.string()), ("plate_01.sqlite", pa.string()), ("é", pa.large_string()),
])
def test_a_scalar_built_from_bytes_equals_arrows_own(value, type_):
    from celltable.adapters.arrow_types import scalar

    assert scalar(value, type_).equals(pa.scalar(value, type_))


@pytest.mark.parametrize(("value", "type_", "error"), [
    (5, pa.string(), TypeError), ("false", pa.bool_(), TypeError), (True, pa.int64(), TypeError),
    (1.5, pa.int64(), TypeError), (2**63, pa.int64(), OverflowError), (-1, pa.uint64(), OverflowError),
    (0, pa.date32(), TypeError),
])
def test_a_scalar_of_the_wrong_kind_is_refused(value, type_, error):
    from celltable.adapters.arrow_types import scalar

    with pytest.raises(error):
        scalar(value, type_)


@pytest.mark.parametrize(("type_", "expected"), [
    (pa.int8(), 0), (pa.uint64(), 0), (pa.float64(), 0.0), (pa.date32(), dt.date(1970, 1, 1)),
    (pa.timestamp("ns", tz="UTC"), dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)),
    (pa.time32("s"), dt.time(0)), (pa.decimal128(10, 2), decimal.Decimal("0.00")),
])
def test_zero_is_the_all_zero_value_of_its_type(type_, expected):
    from celltable.adapters.arrow_types import zero

    assert zero(type_).equals(pa.scalar(expected, type_))


@pytest.mark.parametrize(("array", "expected"), [
    (pa.array([], pa.int64()), True), (pa.array([0, 1, 2]), True),
    (pa.chunked_array([[0, 1], [2, 3]]), True), (pa.array([0, 2, 1]), False),
    (pa.array([1, 2, 3]), False), (pa.array([0, None, 2]), False),
    (pa.array([0, 1, 2], pa.uint64()), True), (pa.chunked_array([[0], [2]]), False),
])
def test_positions_are_recognised(array, expected):
    from celltable.adapters.arrow_types import is_positions, positions

    assert is_positions(array) is expected
    assert positions(4).equals(pa.array([0, 1, 2, 3], pa.int64()))
