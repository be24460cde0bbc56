from __future__ import annotations

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
