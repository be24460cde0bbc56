"""Describing a plate straight from its source, for ``celltable inspect``: nothing is staged.

Schemas come from the SQLite reader's declarations or from DuckDB's DESCRIBE (the sniffer's sample
for CSV).
Each table is then scanned once, for its key columns only (image key, object number, the parent
references the preset joins on), into a small in-memory table; row counts, missing and repeated
keys and orphans (anti-joins) are computed from those.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.duckdb_sql import data_type, error_summary, ident, source_reads
from celltable.adapters.sqlite_reader import SqliteReader
from celltable.adapters.storage import HEADER_ONLY, file_state
from celltable.domain.errors import SourceReadError
from celltable.domain.inspection import TableDescription, UnitDescription, orphan_checks
from celltable.domain.presets import IMAGE, Preset, SourceFormat
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import SourceUnit, TableLocation


def _schema(con: duckdb.DuckDBPyConnection, table: str, source: str) -> TableSchema:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return TableSchema(table, tuple(Column(name, data_type(t)) for name, t, *_ in rows))


def _keys_wanted(preset: Preset, table: str, schema: TableSchema,
                 references: dict[str, set[str]]) -> list[str]:
    wanted = [preset.image_key]
    if preset.one_table_per_file:  # no image key: rows are told apart by their identifiers
        wanted.extend(preset.metadata_columns)
    if table != IMAGE:
        wanted.append(preset.compartment(table).object_number)
    wanted.extend(sorted(references.get(table, ())))
    return [c for c in dict.fromkeys(wanted) if c in schema.names]


def describe_unit(con: duckdb.DuckDBPyConnection, unit: SourceUnit, preset: Preset,
                  sqlite: SqliteReader | None = None) -> UnitDescription:
    """Describe every table of ``unit``; a SQLite plate's through ``sqlite``, opened on ``con``.

    Raises:
        SourceReadError: A table cannot be read; the message names it.
    """
    schemas: dict[str, TableSchema] = {}
    reads: dict[str, str] = {}
    for loc in unit.tables:
        if sqlite is not None:
            schemas[loc.table] = _sqlite_schema(sqlite, unit, loc)
        else:
            schemas[loc.table], reads[loc.table] = _first_schema(con, unit, loc)
        if unit.format is SourceFormat.CSV and file_state(Path(loc.path)) == HEADER_ONLY:
            # as a conversion reads it: no values to type, so its keys join as integers
            schemas[loc.table] = TableSchema(loc.table, tuple(
                Column(c.name, DataType.INT64 if c.type is DataType.STRING else c.type)
                for c in schemas[loc.table].columns))
    steps = orphan_checks(preset, schemas)
    references: dict[str, set[str]] = {}
    for s in steps:
        references.setdefault(s.child, set()).add(s.column)
    tables = []
    for i, loc in enumerate(unit.tables):
        keys = _keys_wanted(preset, loc.table, schemas[loc.table], references)
        target = ident(f"keys_{i}")
        if sqlite is not None:
            schema = _load_sqlite_keys(con, sqlite, unit, loc, keys, target, schemas)
        else:
            schema = _load_keys(con, unit, loc, keys, target, schemas, reads)
        tables.append(replace(_counts(con, preset, loc, schema, keys, target),
                              fractional=_fractions(con, schema, [
                                  k for k in keys if k not in preset.metadata_columns], target)))
    positions = {loc.table: i for i, loc in enumerate(unit.tables)}
    key = ident(preset.image_key)
    orphans = []
    for s in steps:
        child, parent = ident(f"keys_{positions[s.child]}"), ident(f"keys_{positions[s.parent]}")
        (n,) = con.execute(
            f"SELECT count(*) FROM {child} AS c WHERE NOT EXISTS (SELECT 1 FROM {parent} AS p "
            f"WHERE p.{key} = c.{key} AND p.{ident(s.parent_object_number)} = c.{ident(s.column)})"
        ).fetchone()
        orphans.append((s.describe(), int(n)))
    return UnitDescription(unit, tuple(tables), tuple(orphans))


def _first_schema(con: duckdb.DuckDBPyConnection, unit: SourceUnit,
                  loc: TableLocation) -> tuple[TableSchema, str]:
    source = source_reads(unit, loc)[0]
    try:
        return _schema(con, loc.table, source), source
    except duckdb.Error as e:
        raise SourceReadError(f"cannot read {DuckDBEngine._where(unit, loc)}: {error_summary(e)}") from e


def _sqlite_schema(sqlite: SqliteReader, unit: SourceUnit, loc: TableLocation) -> TableSchema:
    try:
        columns = sqlite.columns(loc.name_in_source)
    except duckdb.Error as e:
        raise SourceReadError(f"cannot read {DuckDBEngine._where(unit, loc)}: {error_summary(e)}") from e
    return TableSchema(loc.table, tuple(Column(name, data_type(t)) for name, t in columns))


def _load_sqlite_keys(con: duckdb.DuckDBPyConnection, sqlite: SqliteReader, unit: SourceUnit,
                      loc: TableLocation, keys: list[str], target: str,
                      schemas: dict[str, TableSchema]) -> TableSchema:
    """Copy the key columns of a SQLite table into ``target`` (just a row count when it has
    none)."""
    try:
        if keys:
            sqlite.copy(con, loc.name_in_source, target, columns=keys, partition=unit.partition,
                        temp=True)
        else:
            rows = sqlite.count(loc.name_in_source, unit.partition)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT {int(rows)} AS n")
    except duckdb.Error as e:
        raise SourceReadError(f"cannot read {DuckDBEngine._where(unit, loc)}: {error_summary(e)}") from e
    return schemas[loc.table]


def _load_keys(con: duckdb.DuckDBPyConnection, unit: SourceUnit, loc: TableLocation,
               keys: list[str], target: str, schemas: dict[str, TableSchema],
               reads: dict[str, str]) -> TableSchema:
    """Copy the key columns of a table into ``target`` (just a row count when it has none);
    returns the table's schema, re-sniffed from the whole file when the sample misled."""
    sources = source_reads(unit, loc)
    start = sources.index(reads[loc.table])
    for n, source in enumerate(sources[start:], start=start + 1):
        try:
            if n > start + 1:  # the whole file decides the types this time
                schemas[loc.table] = _schema(con, loc.table, source)
                keys = [k for k in keys if k in schemas[loc.table].names]
            columns = ", ".join(ident(k) for k in keys) if keys else "count(*) AS n"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT {columns} FROM {source}")
            reads[loc.table] = source
            return schemas[loc.table]
        except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
            if n == len(sources):
                raise SourceReadError(f"cannot read {DuckDBEngine._where(unit, loc)}: {error_summary(e)}") from e
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {DuckDBEngine._where(unit, loc)}: {error_summary(e)}") from e
    raise AssertionError("unreachable")  # pragma: no cover


def _fractions(con: duckdb.DuckDBPyConnection, schema: TableSchema, keys: list[str],
               target: str) -> tuple[tuple[str, int], ...]:
    """Per key column read as floating point, its values that are not whole numbers."""
    floats = [k for k in keys if schema.type_of(k) in (DataType.FLOAT64, DataType.FLOAT32)]
    if not floats:
        return ()
    counts = con.execute("SELECT " + ", ".join(
        f"count(*) FILTER (WHERE {ident(k)} <> floor({ident(k)}))" for k in floats)
        + f" FROM {target}").fetchone()
    return tuple((k, int(n)) for k, n in zip(floats, counts, strict=True) if n)


def _counts(con: duckdb.DuckDBPyConnection, preset: Preset, loc: TableLocation,
            schema: TableSchema, keys: list[str], target: str) -> TableDescription:
    if not keys:
        (rows,) = con.execute(f"SELECT n FROM {target}").fetchone()
        return TableDescription(loc.table, loc.name_in_source, schema, int(rows))
    if preset.image_key not in keys:
        number = preset.compartment(loc.table).object_number if loc.table != IMAGE else ""
        if not (preset.one_table_per_file and number in keys):
            (rows,) = con.execute(f"SELECT count(*) FROM {target}").fetchone()
            return TableDescription(loc.table, loc.name_in_source, schema, int(rows))
        # rows repeating every identifier and the object number: an export written twice
        group = ", ".join(ident(k) for k in keys)
        rows, dups = con.execute(
            f"SELECT coalesce(sum(n), 0), coalesce(sum(n - 1), 0) FROM "
            f"(SELECT count(*) AS n FROM {target} GROUP BY {group})").fetchone()
        return TableDescription(loc.table, loc.name_in_source, schema, int(rows),
                                duplicate_keys=int(dups))
    image = ident(preset.image_key)
    if loc.table == IMAGE:
        identity: list[str] | None = [preset.image_key]
    else:
        number = preset.compartment(loc.table).object_number
        identity = [preset.image_key, number] if number in keys else None  # repeats untold
    group = ", ".join(ident(k) for k in identity or [preset.image_key])
    repeats = "sum(n - 1) FILTER (WHERE n > 1 AND k IS NOT NULL)" if identity else "0"
    rows, nulls, dups = con.execute(
        f"SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE k IS NULL), 0), "
        f"coalesce({repeats}, 0) FROM (SELECT {image} AS k, count(*) AS n FROM {target} "
        f"GROUP BY {group})"
    ).fetchone()
    return TableDescription(loc.table, loc.name_in_source, schema, int(rows), int(nulls), int(dups))
