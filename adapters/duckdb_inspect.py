"""Describing a plate straight from its source, for ``celltable inspect``: nothing is staged.

Schemas come from the plate's format reader (a SQLite reader's declarations, DuckDB's DESCRIBE
of the sniffer's sample for CSV: :class:`KeyTables`). Each table is then scanned once, for its
key columns only (image key, object number, the parent references the preset joins on), into a
small in-memory table; row counts, missing and repeated keys and orphans (anti-joins) are
computed from those.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import duckdb

from celltable.adapters.duckdb_sql import data_type, ident
from celltable.domain.inspection import PlateDescription, TableDescription, orphan_checks
from celltable.domain.presets import IMAGE, Preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import Plate, TableLocation


class KeyTables(Protocol):
    """A format's reads for describing one plate's tables."""

    def schema(self, loc: TableLocation) -> TableSchema:
        """The table's columns, as a conversion would type them.

        Raises:
            SourceReadError: The table cannot be read.
        """
        ...

    def load_keys(self, loc: TableLocation, keys: list[str], target: str,
                  schemas: dict[str, TableSchema]) -> TableSchema:
        """Copy the table's ``keys`` columns into the temporary table ``target`` (a one-row
        table of its row count, ``n``, when there are none); returns its schema, read again
        from the whole table when the first read misled (``schemas`` updated).

        Raises:
            SourceReadError: The table cannot be read.
        """
        ...


def table_schema(con: duckdb.DuckDBPyConnection, table: str, source: str) -> TableSchema:
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


def describe_plate(con: duckdb.DuckDBPyConnection, plate: Plate, preset: Preset,
                  read: KeyTables) -> PlateDescription:
    """Describe every table of ``plate``, each read through ``read`` (on ``con``).

    Raises:
        SourceReadError: A table cannot be read; the message names it.
    """
    schemas = {loc.table: read.schema(loc) for loc in plate.tables}
    steps = orphan_checks(preset, schemas)
    references: dict[str, set[str]] = {}
    for s in steps:
        references.setdefault(s.child, set()).add(s.column)
    tables = []
    for i, loc in enumerate(plate.tables):
        keys = _keys_wanted(preset, loc.table, schemas[loc.table], references)
        target = ident(f"keys_{i}")
        schema = read.load_keys(loc, keys, target, schemas)
        tables.append(replace(_counts(con, preset, loc, schema, keys, target),
                              fractional=_fractions(con, schema, [
                                  k for k in keys if k not in preset.metadata_columns], target)))
    positions = {loc.table: i for i, loc in enumerate(plate.tables)}
    key = ident(preset.image_key)
    orphans = []
    for s in steps:
        child, parent = ident(f"keys_{positions[s.child]}"), ident(f"keys_{positions[s.parent]}")
        (n,) = con.execute(
            f"SELECT count(*) FROM {child} AS c WHERE NOT EXISTS (SELECT 1 FROM {parent} AS p "
            f"WHERE p.{key} = c.{key} AND p.{ident(s.parent_object_number)} = c.{ident(s.column)})"
        ).fetchone()
        orphans.append((s.describe(), int(n)))
    return PlateDescription(plate, tuple(tables), tuple(orphans))


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
