"""The join of keys plus Arrow's gather gives what the join of whole rows gives."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltable.adapters.duckdb_engine import DuckDBEngine, _sorted
from celltable.adapters.duckdb_gather import gather_chunk
from celltable.adapters.duckdb_sql import render_chunk, render_missing
from celltable.domain.errors import SourceChangedError
from celltable.domain.join import ChunkQuery, JoinSpec, JoinStep, SelectColumn
from celltable.domain.plan import Chunk
from celltable.domain.schema import DataType

KEY = "ImageNumber"
SPEC = JoinSpec("Cytoplasm", KEY, (
    JoinStep("Cytoplasm", "Parent_Cells", "Cells", "ObjectNumber"),
    JoinStep("Cells", "Parent_Nuclei", "Nuclei", "ObjectNumber"),
))
ORDER = ("Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber")


def _columns(area_type: DataType = DataType.FLOAT64) -> tuple[SelectColumn, ...]:
    return (
        SelectColumn("Metadata_TableNumber", DataType.STRING, constant="plate"),
        SelectColumn("Metadata_ImageNumber", DataType.INT64, "Cytoplasm", KEY),
        SelectColumn("Metadata_ObjectNumber", DataType.INT64, "Cytoplasm", "ObjectNumber"),
        SelectColumn("Metadata_Well", DataType.STRING, "Image", "Well"),
        SelectColumn("Metadata_Missing", DataType.FLOAT64),  # a column this plate lacks
        SelectColumn("Cytoplasm_Area", area_type, "Cytoplasm", "Area"),
        SelectColumn("Cells_Area", DataType.FLOAT64, "Cells", "Area"),  # int64 in the source
        SelectColumn("Cells_Count", DataType.INT64, "Cells", "Area"),
        SelectColumn("Nuclei_Area", DataType.FLOAT64, "Nuclei", "Area"),
        SelectColumn("Nuclei_Parent_Cells", DataType.INT64, "Cells", "ObjectNumber"),
    )


def _query(columns: tuple[SelectColumn, ...], join: JoinSpec | None = SPEC,
           rows: int = 0) -> ChunkQuery:
    return ChunkQuery(Chunk("plate", 0, None, None, rows), columns, "Cytoplasm", KEY, join, ORDER)


def _objects(draw, rows: int, *, parents: bool) -> dict[str, list]:
    images = sorted(draw(st.lists(st.integers(1, 3), min_size=rows, max_size=rows)))
    numbers = draw(st.lists(st.one_of(st.none(), st.integers(1, 6)), min_size=rows, max_size=rows))
    table = {KEY: images, "ObjectNumber": numbers}
    if parents:
        table["Parent"] = draw(st.lists(st.one_of(st.none(), st.integers(0, 6)),
                                        min_size=rows, max_size=rows))
    return table


@st.composite
def chunks(draw) -> dict[str, pa.Table]:
    """Tables of one chunk, as a stream hands them over (image keys in order), with what real
    plates hold: orphans, NULL parents, duplicate partners, object numbers out of order."""
    cyto = _objects(draw, draw(st.integers(0, 12)), parents=True)
    cells = _objects(draw, draw(st.integers(0, 12)), parents=True)
    nuclei = _objects(draw, draw(st.integers(0, 12)), parents=False)
    n = len(cyto[KEY])
    images = sorted(set(draw(st.lists(st.integers(1, 3), max_size=4))))
    return {
        "Cytoplasm": pa.table({KEY: cyto[KEY], "ObjectNumber": cyto["ObjectNumber"],
                               "Parent_Cells": cyto["Parent"],
                               "Area": pa.array([float(i) for i in range(n)], pa.float64())}),
        "Cells": pa.table({KEY: cells[KEY], "ObjectNumber": cells["ObjectNumber"],
                           "Parent_Nuclei": cells["Parent"],
                           "Area": pa.array(range(len(cells[KEY])), pa.int64())}),
        "Nuclei": pa.table({KEY: nuclei[KEY], "ObjectNumber": nuclei["ObjectNumber"],
                            "Area": pa.array([i / 2 for i in range(len(nuclei[KEY]))])}),
        "Image": pa.table({KEY: pa.array(images, pa.int64()),
                           "Well": [f"A{i:02d}" for i in images]}),
    }


def _whole_rows(tables: dict[str, pa.Table], query: ChunkQuery) -> tuple[pa.Table, tuple]:
    """The join of whole rows, as chunks were joined before (and still are when a cast needs SQL)."""
    with duckdb.connect() as con:
        for name, table in tables.items():
            con.register(name, table)
        result = _sorted(con.sql(render_chunk(query)).to_arrow_table(), query.order_by)
        counts = con.execute(render_missing(query)).fetchone() if query.join else (0,)
    return result, tuple(counts)


def _gathered(tables: dict[str, pa.Table], query: ChunkQuery):
    with duckdb.connect() as con:
        return gather_chunk(con, tables, query)


def _as_rows(table: pa.Table) -> list[tuple]:
    return sorted(map(tuple, (r.values() for r in table.to_pylist())), key=repr)


@settings(max_examples=150, deadline=None)
@given(chunks())
def test_the_gather_gives_the_rows_counts_and_types_of_the_whole_row_join(tables):
    query = _query(_columns())
    expected, expected_counts = _whole_rows(tables, query)
    result, counts = _gathered(tables, query)
    assert result.schema == expected.schema
    assert counts == expected_counts
    assert _as_rows(result) == _as_rows(expected)
    keys = result.select(list(ORDER[1:])).to_pylist()
    ordered = sorted(keys, key=lambda r: tuple((v is not None, v or 0) for v in r.values()))
    assert keys == ordered  # in output order: NULL object numbers first, as the sort puts them


@settings(max_examples=40, deadline=None)
@given(chunks())
def test_one_table_without_a_join_is_gathered_in_order(tables):
    columns = tuple(c for c in _columns() if c.table in (None, "Cytoplasm"))
    query = _query(columns, join=None)
    expected, _ = _whole_rows(tables, query)
    result, counts = _gathered(tables, query)
    assert counts == (0,)
    assert result.equals(expected.cast(result.schema)) or _as_rows(result) == _as_rows(expected)
    assert result.num_rows == tables["Cytoplasm"].num_rows


def test_rows_kept_in_their_order_share_the_base_tables_memory():
    tables = {
        "Cytoplasm": pa.table({KEY: [1, 1, 2], "ObjectNumber": [1, 2, 1], "Parent_Cells": [1, 2, 1],
                               "Area": [1.0, 2.0, 3.0]}),
        "Cells": pa.table({KEY: [1, 1, 2], "ObjectNumber": [2, 1, 1], "Parent_Nuclei": [1, 1, 1],
                           "Area": [20, 10, 30]}),
        "Nuclei": pa.table({KEY: [1, 2], "ObjectNumber": [1, 1], "Area": [0.5, 0.7]}),
        "Image": pa.table({KEY: [1, 2], "Well": ["A01", "A02"]}),
    }
    result, counts = _gathered(tables, _query(_columns()))
    assert counts == (0, 0, 0)
    assert result.column("Cells_Area").to_pylist() == [10.0, 20.0, 30.0]
    base = tables["Cytoplasm"].column("Area").chunk(0).buffers()[1].address
    assert result.column("Cytoplasm_Area").chunk(0).buffers()[1].address == base


def test_casts_sql_would_do_otherwise_are_left_to_the_whole_row_join():
    tables = {
        "Cytoplasm": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Cells": [1],
                               "Area": [1e300]}),
        "Cells": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Nuclei": [1], "Area": [1]}),
        "Nuclei": pa.table({KEY: [1], "ObjectNumber": [1], "Area": [0.5]}),
        "Image": pa.table({KEY: [1], "Well": ["A01"]}),
    }
    # a number written as text (plates whose column types differ)
    as_text = (*_columns()[:-1], SelectColumn("Nuclei_Parent_Cells", DataType.STRING, "Cells",
                                              "ObjectNumber"))
    assert _gathered(tables, _query(as_text)) is None
    # a float32 output column whose value overflows: SQL refuses it
    assert _gathered(tables, _query(_columns(area_type=DataType.FLOAT32))) is None
    tables["Cytoplasm"] = tables["Cytoplasm"].set_column(
        3, "Area", pa.array([1.5]))
    result, _ = _gathered(tables, _query(_columns(area_type=DataType.FLOAT32)))
    assert result.column("Cytoplasm_Area").type == pa.float32()
    assert result.column("Cytoplasm_Area").to_pylist() == [1.5]


def test_the_engine_falls_back_to_the_whole_row_join_and_gets_the_same_table():
    tables = {
        "Cytoplasm": pa.table({KEY: [1, 1], "ObjectNumber": [2, 1], "Parent_Cells": [1, 1],
                               "Area": [1.0, 2.0]}),
        "Cells": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Nuclei": [1], "Area": [7]}),
        "Nuclei": pa.table({KEY: [1], "ObjectNumber": [1], "Area": [0.5]}),
        "Image": pa.table({KEY: [1], "Well": ["A01"]}),
    }
    as_text = (*_columns()[:-1], SelectColumn("Nuclei_Parent_Cells", DataType.STRING, "Cells",
                                              "ObjectNumber"))
    out = DuckDBEngine().read_chunk(dict(tables), _query(as_text, rows=2))
    assert out.data.column("Metadata_ObjectNumber").to_pylist() == [1, 2]
    assert out.data.column("Nuclei_Parent_Cells").to_pylist() == ["1", "1"]
    assert pc.all(pc.equal(out.data.column("Cells_Count"), 7)).as_py()


@pytest.mark.parametrize("name", ["__celltable_row", "r0"])
def test_source_columns_named_like_the_gathers_own_are_kept(name):
    tables = {
        "Cytoplasm": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Cells": [1], "Area": [1.0],
                               name: [9]}),
        "Cells": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Nuclei": [1], "Area": [7]}),
        "Nuclei": pa.table({KEY: [1], "ObjectNumber": [1], "Area": [0.5]}),
        "Image": pa.table({KEY: [1], "Well": ["A01"]}),
    }
    columns = (*_columns(), SelectColumn("Cytoplasm_X", DataType.INT64, "Cytoplasm", name))
    result, _ = _gathered(tables, _query(columns))
    assert result.column("Cytoplasm_X").to_pylist() == [9]


def test_a_chunk_reading_other_rows_than_counted_is_a_changed_source():
    tables = {"Cytoplasm": pa.table({KEY: [1], "ObjectNumber": [1], "Parent_Cells": [1],
                                     "Area": [1.0]})}
    with pytest.raises(SourceChangedError, match="1 read, 3 counted"):
        DuckDBEngine().read_chunk(tables, _query(_columns(), None, rows=3))
