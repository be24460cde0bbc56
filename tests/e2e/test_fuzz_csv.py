"""Fuzzing CSV headers and values: whatever a CSV holds, a conversion either succeeds with every
row accounted for or stops with a named error; it never ends in an uncaught exception."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import celltable

# Header names and cell values drawn from what breaks parsers: quotes, separators, line breaks,
# blanks, SQL, unicode, duplicates, numbers that are not, and very long text.
ODD = st.sampled_from([
    "", " ", '"', "'", ",", ";", "\t", "\n", "\r\n", "NULL", "nan", "NaN", "inf", "-0", "1e309",
    "select", "ObjectNumber", "ImageNumber", 'a"b', "a,b", "Ünïcødé", "日本", "x" * 300,
    "0x1F", "1,5", "--", "/*", "Parent_Cells",
])
NAMES = st.one_of(ODD, st.text(max_size=12))
VALUES = st.one_of(ODD, st.text(max_size=12), st.integers(-5, 5).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))

# key cells: small whole numbers, and one in twenty anything at all
KEY_VALUES = st.integers(0, 19).flatmap(lambda i: VALUES if i == 19 else st.integers(1, 2).map(str))

KEYS = {
    "Image": ["ImageNumber"],
    "Cells": ["ImageNumber", "ObjectNumber"],
    "Nuclei": ["ImageNumber", "ObjectNumber"],
    "Cytoplasm": ["ImageNumber", "ObjectNumber", "Parent_Cells", "Parent_Nuclei"],
}


@st.composite
def _tables(draw) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each table of a CellProfiler CSV plate: its key columns (sometimes replaced by odd
    names), extra odd columns, and rows of odd or plausible values."""
    tables = {}
    for name, keys in KEYS.items():
        # mostly the right key columns holding small numbers, so many plates convert with rows
        header = [draw(NAMES) if draw(st.integers(0, 7)) == 7 else k for k in keys]
        header += draw(st.lists(NAMES, max_size=4))
        rows = []
        for _ in range(draw(st.integers(0, 8))):
            row = [draw(KEY_VALUES if i < len(keys) else VALUES) for i in range(len(header))]
            rows.append(row)
        tables[name] = (header, rows)
    return tables


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=_tables(), quote_everything=st.booleans())
def test_odd_csv_headers_and_values_never_escape_as_an_uncaught_exception(tmp_path, tables,
                                                                       quote_everything):
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    plate = case / "plate"
    plate.mkdir()
    for name, (header, rows) in tables.items():
        with (plate / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, quoting=csv.QUOTE_ALL if quote_everything else csv.QUOTE_MINIMAL)
            writer.writerow(header)
            writer.writerows(rows)
    dest = case / "out.parquet"
    try:
        result = celltable.convert(plate, dest, preset="cellprofiler_csv")
    except celltable.ExecutionError:
        raise  # a task failed in a way no check foresaw: the input escaped the checks
    except celltable.CelltableError as e:
        assert str(e)  # named, with a message
        assert not dest.exists()
        return
    (table,) = result.tables
    assert table.rows_in == len(tables["Cytoplasm"][1])  # every base row read is counted
    assert pq.read_metadata(dest).num_rows == table.rows_out
