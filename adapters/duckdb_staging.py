"""Staging a plate's tables into DuckDB: each source table read once, by its format's reader
(``adapters/source_formats.py``), into a DuckDB file per plate, or into memory when it fits; a
plate its reader can read in place (stored in image order) is left in place.

:class:`DuckDBStaging` is the staging half of :class:`celltable.adapters.duckdb_engine.DuckDBEngine`,
which it is mixed into: it has no fields of its own and uses the engine's settings and
``connect``. A staged plate's handle (``duckdb_handles.py``) owns the connection its reads share,
until the conversion releases it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import structlog

from celltable.adapters.duckdb_handles import StagedFile, StagedMemory
from celltable.adapters.duckdb_sql import data_type, ident
from celltable.adapters.source_formats import reader
from celltable.domain.errors import SchemaError
from celltable.domain.presets import Preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import Plate, StagedPlate, StagedTable, TableLocation

log = structlog.get_logger("celltable.duckdb")
MEMORY = ":memory:"


class DuckDBStaging:
    """The staging methods of :class:`celltable.adapters.duckdb_engine.DuckDBEngine`."""

    __slots__ = ()


    def stage(self, plate: Plate, preset: Preset, staging_dir: str,
              copy: bool = False, share: int = 1) -> StagedPlate:
        if share > 1:  # the idle tasks' threads: a lone plate's CSV files are sniffed side by side
            return replace(self, threads=self.threads * share).stage(plate, preset, staging_dir, copy)
        fmt = reader(plate.format)
        # A plate that is one run of a file (a TableNumber) is filtered, not in storage order.
        if not copy and plate.partition is None:
            found = fmt.in_place(self, plate, preset)
            if found is not None:
                tables, handle = found
                log.info("plate_read_in_place", plate=plate.key,
                         rows={t.table: t.rows for t in tables})
                return StagedPlate(plate, handle, tables, in_place=True)
        digest = hashlib.sha1(f"{plate.key}\0{plate.path}".encode()).hexdigest()[:16]
        spill = str(Path(staging_dir) / f"spill-{digest}")
        in_memory = self.in_memory and self._fits_in_memory(plate)
        path = str(Path(staging_dir) / f"plate-{digest}.duckdb")
        con = self.connect(MEMORY if in_memory else path, temp_dir=spill)
        try:
            # Reading a SQLite table barely uses a second thread, so tables are staged side by
            # side, one cursor each, as many at once as this task has threads. Not into a file:
            # a plate too big for memory is one whose wide tables, each buffering row groups
            # while it is written, would together exceed the memory limit.
            side_by_side = max(1, min(self.threads, len(plate.tables))) if in_memory else 1
            tables = fmt.stage(self, con, plate, preset, side_by_side)
        except BaseException:
            con.close()
            raise
        handle: StagedMemory | StagedFile
        if in_memory:  # the handle owns the database until the plate is released
            handle = StagedMemory(f"{digest}-{uuid.uuid4().hex[:8]}", con)
        else:
            con.execute("CHECKPOINT")
            con.close()
            handle = StagedFile(path)
        log.info("plate_staged", plate=plate.key, rows={t.table: t.rows for t in tables})
        return StagedPlate(plate, handle, tables)

    def _fits_in_memory(self, plate: Plate) -> bool:
        """Whether the plate's tables, held in DuckDB's memory (their files' size times their
        format's ``memory_factor``), leave a quarter of the memory limit for the chunks' joins."""
        if not self.memory_limit:
            return False
        files = {loc.path for loc in plate.tables}
        size = sum(Path(f).stat().st_size for f in files)
        return size * reader(plate.format).memory_factor <= self.memory_limit * 3 // 4


@dataclass(frozen=True, slots=True)
class Copied:
    """A source table copied into the staging database: its schema and rows, and what was
    read differently from its declaration."""

    schema: TableSchema
    rows: int
    not_cast: tuple[tuple[str, int], ...] = ()
    widened: tuple[str, ...] = ()


def copied(con: duckdb.DuckDBPyConnection, target: str, table: str) -> tuple[TableSchema, int]:
    """The schema and rows of the staged table ``target``."""
    schema = TableSchema(table, tuple(
        Column(name, data_type(t)) for name, t, *_ in con.execute(f"DESCRIBE {target}").fetchall()))
    return schema, con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]


CopyTable = Callable[[duckdb.DuckDBPyConnection, TableLocation, str], Copied]
"""``(cursor, table, target)``: copy one source table into ``target``."""


def stage_tables(con: duckdb.DuckDBPyConnection, plate: Plate, preset: Preset,
                 parallel: int, copy: CopyTable) -> tuple[StagedTable, ...]:
    """Copy every table of ``plate`` through ``copy`` (``parallel`` at once, a cursor each) and
    count its rows per image."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return tuple(pool.map(lambda loc: _stage_table(con.cursor(), plate, loc, preset, copy),
                              plate.tables))


def _stage_table(con: duckdb.DuckDBPyConnection, plate: Plate, loc: TableLocation,
                 preset: Preset, copy: CopyTable) -> StagedTable:
    target = ident(loc.table)
    done = copy(con, loc, target)
    schema, rows = done.schema, done.rows
    key = preset.image_key
    if key not in schema.names:
        by_image: tuple[tuple[int, int], ...] = ((0, rows),) if rows else ()
        nulls = 0
    elif schema.type_of(key) is not DataType.INT64:
        raise SchemaError(
            f"{reader(plate.format).where(loc)}: column {key} holds {schema.type_of(key).value} "
            "values, not whole numbers; the image key must be an integer"
        )
    else:
        counted = con.execute(
            f"SELECT {ident(key)}, count(*) FROM {target} GROUP BY ALL ORDER BY 1"
        ).fetchall()
        by_image = tuple((k, n) for k, n in counted if k is not None)
        nulls = sum(n for k, n in counted if k is None)
        if nulls:  # rows without a key travel with the first chunk
            first = by_image[0][0] if by_image else 0
            by_image = ((first, nulls), *by_image)
    return StagedTable(loc.table, schema, rows, by_image, null_keys=nulls,
                       not_cast=done.not_cast, widened=done.widened)
