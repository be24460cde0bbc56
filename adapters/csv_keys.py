"""Key columns of CSV files checked for values that are not whole numbers.

DuckDB's CSV reader types a column from a sample of rows; a later ``285.5`` in a column typed
BIGINT is rounded to 286 without an error. For a feature that is documented (docs/output.md);
for a key (image number, object number, parent reference) it would join a row to another
object. So key columns typed BIGINT are read as DOUBLE, any fraction is a named error, and only
then are they cast to BIGINT.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from celltable.adapters.duckdb_sql import data_type, ident, literal
from celltable.domain.errors import NotWholeKeyError
from celltable.domain.presets import Preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import TableLocation


def with_double_keys(source: str, columns: Sequence[str]) -> str:
    """``source`` (a ``read_csv(...)`` expression, maybe the sniffer's with every column's type
    spelled out) with ``columns`` read as DOUBLE."""
    if not columns:
        return source
    if "columns={" in source.replace(" ", ""):  # the sniffer's prompt names every type
        for c in columns:
            source = source.replace(f"{literal(c)}: 'BIGINT'", f"{literal(c)}: 'DOUBLE'")
        return source
    spec = ", ".join(f"{literal(c)}: 'DOUBLE'" for c in columns)
    return f"{source[:-1]}, types = {{{spec}}})"


def not_whole(columns: Sequence[str]) -> str:
    """A SQL condition true on a row where one of ``columns`` (DOUBLE) holds a fraction."""
    if not columns:
        return "false"
    # NaN (CellProfiler's missing value) is no key, not a fraction: read as NULL, later
    # counted as a missing partner; infinities and values past int64 are not whole numbers.
    return "coalesce(" + " OR ".join(
        f"(NOT isnan({ident(c)}) AND ({ident(c)} <> trunc({ident(c)}) "
        f"OR abs({ident(c)}) >= 9.2e18))" for c in columns) + ", false)"


def not_whole_error(con: duckdb.DuckDBPyConnection, source: str, path: str,
                    columns: Sequence[str]) -> NotWholeKeyError:
    """The error naming the first column of ``columns`` in ``source`` (read as DOUBLE) holding
    a fraction, its first such value and row, and how many there are."""
    for c in columns:
        row = ident("__celltable_row")
        found = con.execute(
            f"SELECT {row}, {ident(c)}, count(*) OVER () FROM (SELECT row_number() OVER () AS "
            f"{row}, {ident(c)} FROM {source}) WHERE {not_whole([c])} ORDER BY 1 LIMIT 1"
        ).fetchone()
        if found is not None:
            row, value, count = found
            return NotWholeKeyError(
                f"{path}: key column {c} holds {value:g} in row {row:,} ({count:,} value(s) in "
                "all are not whole numbers); a key must be a whole number, as a join would "
                "match it to another object: fix the export, or leave the column's table out "
                "(--drop-compartment)"
            )
    return NotWholeKeyError(f"{path}: a key column ({', '.join(columns)}) holds a value that "
                            "is not a whole number; fix the export")


def csv_keys(con: duckdb.DuckDBPyConnection, source: str, loc: TableLocation,
              preset: Preset) -> list[str]:
    """The key columns of a CSV table the sniffer types as numbers (none if it cannot
    tell)."""
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error:  # the read itself names the trouble
        return []
    wanted = set(preset.key_columns(loc.table))
    return [n for n, t, *_ in described
            if n in wanted and data_type(t) in (DataType.INT64, DataType.FLOAT64)]

def whole_keys(con: duckdb.DuckDBPyConnection, target: str, loc: TableLocation,
                schema: TableSchema, keys: list[str]) -> TableSchema:
    """The staged table with its key columns, read as DOUBLE, checked whole and cast back
    to BIGINT.

    Raises:
        NotWholeKeyError: A key holds a fraction.
    """
    keys = [k for k in keys if k in schema.names and schema.type_of(k) is DataType.FLOAT64]
    if not keys:
        return schema
    if con.execute(f"SELECT count(*) FROM {target} WHERE {not_whole(keys)}").fetchone()[0]:
        raise not_whole_error(con, target, loc.path, keys)
    casts = ", ".join(f"CAST(CASE WHEN isnan({ident(k)}) THEN NULL ELSE {ident(k)} END AS BIGINT) "
                      f"AS {ident(k)}" for k in keys)
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * REPLACE ({casts}) FROM {target}")
    return TableSchema(loc.table, tuple(
        Column(c.name, DataType.INT64 if c.name in keys else c.type) for c in schema.columns))
