"""Staging a plate's tables into DuckDB: each source table read once (SQLite through the reader
``sqlite_reader.py`` chooses; CSV through DuckDB's reader) into a DuckDB file per plate, or into
memory when it fits; a SQLite or CSV plate stored in image order is left in place.

:class:`DuckDBStaging` is the staging half of :class:`celltable.adapters.duckdb_engine.DuckDBEngine`,
which it is mixed into: it has no fields of its own and uses the engine's settings and
``_connect``. The connections of staged plates are kept here (``_readers``) for the engine's reads."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import duckdb
import structlog

from celltable.adapters.csv_header import with_names
from celltable.adapters.csv_keys import csv_keys, whole_keys, with_double_keys
from celltable.adapters.duckdb_sql import data_type, error_summary, ident, source_reads
from celltable.adapters.duckdb_stream import in_place_csv_tables, in_place_tables
from celltable.adapters.npz import plate_table, stage_npz
from celltable.adapters.sqlite_reader import SqliteReader, open_sqlite
from celltable.adapters.sqlite_types import stage_mixed
from celltable.domain.errors import CelltableError, NotWholeKeyError, SchemaError, SourceReadError
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import SourceUnit, StagedTable, StagedUnit, TableLocation

log = structlog.get_logger("celltable.duckdb")


# One connection per staged plate and process, shared by the tasks (each through its own cursor):
# opening a DuckDB file and loading a catalog of thousands of columns for every chunk would cost
# more than the chunk's query. Plates staged in memory live here until released.
_readers: dict[str, duckdb.DuckDBPyConnection] = {}
MEMORY = ":memory:"
_readers_lock = threading.Lock()


class DuckDBStaging:
    """The staging methods of :class:`celltable.adapters.duckdb_engine.DuckDBEngine`."""

    __slots__ = ()


    def stage(self, unit: SourceUnit, preset: Preset, staging_dir: str,
              copy: bool = False, share: int = 1) -> StagedUnit:
        if share > 1:  # the idle tasks' threads: a lone plate's CSV files are sniffed side by side
            return replace(self, threads=self.threads * share).stage(unit, preset, staging_dir, copy)
        if unit.format is SourceFormat.NPZ and not copy:  # chunks read their sites' files
            npz = (plate_table(unit, preset),)
            log.info("plate_read_in_place", plate=unit.key, rows={t.table: t.rows for t in npz})
            return StagedUnit(unit, unit.path, npz, in_place=True)
        # A plate that is one run of a file (a TableNumber) is filtered, not in storage order.
        if unit.format is SourceFormat.SQLITE and not copy and unit.partition is None:
            with self._connect() as con:
                sqlite = self._open_sqlite(con, unit.path)
                try:
                    tables = in_place_tables(sqlite, unit.tables, preset)
                except duckdb.TypeMismatchException as e:  # only key columns are read here
                    raise SchemaError(
                        f"{unit.path}: its image key {preset.image_key} holds a value unlike "
                        f"its declared integer type ({error_summary(e)}); keys must be whole "
                        "numbers: fix the database") from e
                except duckdb.Error as e:
                    raise SourceReadError(f"cannot read {unit.path}: {error_summary(e)}") from e
            if tables is not None:
                log.info("plate_read_in_place", plate=unit.key, rows={t.table: t.rows for t in tables})
                return StagedUnit(unit, unit.path, tables, in_place=True)
        if unit.format is SourceFormat.CSV and not copy and unit.partition is None:
            found = self._csv_in_place(unit, preset)
            if found is not None:
                csv_tables, reads = found
                log.info("plate_read_in_place", plate=unit.key,
                         rows={t.table: t.rows for t in csv_tables})
                # The handle carries each table's sniffed read, so the chunks' streams (maybe in
                # another process) read the files exactly as checked, without sniffing again.
                return StagedUnit(unit, json.dumps(reads), csv_tables, in_place=True)
        digest = hashlib.sha1(f"{unit.key}\0{unit.path}".encode()).hexdigest()[:16]
        spill = str(Path(staging_dir) / f"spill-{digest}")
        in_memory = self.in_memory and self._fits_in_memory(unit)
        if in_memory:
            handle = f"{MEMORY}{digest}-{uuid.uuid4().hex[:8]}"
            con = self._connect(MEMORY, temp_dir=spill)
        else:
            handle = str(Path(staging_dir) / f"plate-{digest}.duckdb")
            con = self._connect(handle, temp_dir=spill)
        try:
            sqlite = self._open_sqlite(con, unit.path) if unit.format is SourceFormat.SQLITE else None
            if unit.format is SourceFormat.NPZ:  # the plate's files are sites of one table
                tables: tuple[StagedTable, ...] = (stage_npz(con, unit, preset),)
            else:
                # Reading a SQLite table barely uses a second thread, so tables are staged side
                # by side, one cursor each, as many at once as this task has threads. Not into a
                # file: a plate too big for memory is one whose wide tables, each buffering row
                # groups while it is written, would together exceed the memory limit.
                side_by_side = max(1, min(self.threads, len(unit.tables))) if in_memory else 1
                with ThreadPoolExecutor(max_workers=side_by_side) as pool:
                    tables = tuple(pool.map(
                        lambda loc: self._stage_table(con.cursor(), unit, loc, preset, sqlite),
                        unit.tables))
            if sqlite is not None:
                sqlite.close()
        except BaseException:
            con.close()
            raise
        if in_memory:
            with _readers_lock:
                _readers[handle] = con
        else:
            con.execute("CHECKPOINT")
            con.close()
        log.info("plate_staged", plate=unit.key, rows={t.table: t.rows for t in tables})
        return StagedUnit(unit, handle, tables)

    def _csv_in_place(self, unit: SourceUnit,
                      preset: Preset) -> tuple[tuple[StagedTable, ...], dict[str, str]] | None:
        """The plate's tables and their reads if its CSV files can be read in place, else None.
        Whatever goes wrong here (a damaged or oddly encoded file ...) the copy is left to read,
        or to name."""
        try:
            with self._connect() as con:
                return in_place_csv_tables(con, unit.tables, preset, self.threads)
        except NotWholeKeyError:
            raise
        except (duckdb.Error, OSError, ValueError, CelltableError):
            return None

    def _fits_in_memory(self, unit: SourceUnit) -> bool:
        """Whether the unit's tables, held in DuckDB's memory (about twice a SQLite file, about
        the size of CSV text), leave a quarter of the memory limit for the chunks' joins."""
        if not self.memory_limit:
            return False
        files = {loc.path for loc in unit.tables}
        size = sum(Path(f).stat().st_size for f in files)
        factor = 2 if unit.format is SourceFormat.SQLITE else 1
        return size * factor <= self.memory_limit * 3 // 4

    def _open_sqlite(self, con: duckdb.DuckDBPyConnection, path: str) -> SqliteReader:
        return open_sqlite(con, path, self.sqlite_reader)

    def _stage_table(self, con: duckdb.DuckDBPyConnection, unit: SourceUnit, loc: TableLocation,
                     preset: Preset, sqlite: SqliteReader | None = None) -> StagedTable:
        target = ident(loc.table)
        reconciled: tuple[tuple[tuple[str, int], ...], tuple[str, ...]] = ((), ())
        keys: list[str] = []
        if sqlite is not None:
            where = self._where(unit, loc)
            try:
                sqlite.copy(con, loc.name_in_source, target, partition=unit.partition)
            except duckdb.TypeMismatchException:  # SQLite values unlike their declaration
                try:
                    reconciled = stage_mixed(con, sqlite, loc.name_in_source, unit.partition,
                                             target, where)
                except duckdb.Error as e:
                    raise SourceReadError(f"cannot read {where}: {error_summary(e)}") from e
            except duckdb.Error as e:
                raise SourceReadError(f"cannot read {where}: {error_summary(e)}") from e
        else:
            keys = self._stage_csv(con, unit, loc, target, preset)
        schema = TableSchema(
            loc.table,
            tuple(Column(name, data_type(t)) for name, t, *_ in con.execute(f"DESCRIBE {target}").fetchall()),
        )
        rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
        if unit.format is SourceFormat.CSV:
            schema = whole_keys(con, target, loc, schema, keys)
            schema = self._settle_csv(con, target, loc, schema, rows)
        key = preset.image_key
        if key not in schema.names:
            by_image: tuple[tuple[int, int], ...] = ((0, rows),) if rows else ()
            nulls = 0
        elif schema.type_of(key) is not DataType.INT64:
            raise SchemaError(
                f"{self._where(unit, loc)}: column {key} holds {schema.type_of(key).value} "
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
                           not_cast=reconciled[0], widened=reconciled[1])

    def _stage_csv(self, con: duckdb.DuckDBPyConnection, unit: SourceUnit, loc: TableLocation,
                   target: str, preset: Preset) -> list[str]:
        """Copy a CSV file: typed from the sniffer's sample first, from the whole file when a
        later value contradicts the sample. Returns its key columns read as DOUBLE."""
        if Path(loc.path).stat().st_size == 0:
            raise SourceReadError(f"{loc.path} is empty (0 bytes); export or copy it again, "
                                  "or remove it from the source")
        # a repeated header name numbered _2, _3 ...
        sources = [with_names(con, s, loc.path) for s in source_reads(unit, loc)]
        keys = csv_keys(con, sources[0], loc, preset)
        if keys:  # read as DOUBLE first, so a fraction is found, not rounded (csv_keys.py)
            sources = [with_double_keys(sources[0], keys), *sources[1:]]
        hint = "; check it is a complete, comma-separated UTF-8 file (export or copy it again)"
        for i, source in enumerate(sources):
            try:
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}")
                return keys
            except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
                if i + 1 == len(sources):
                    raise SourceReadError(
                        f"cannot read {self._where(unit, loc)}: {error_summary(e)}{hint}") from e
            except duckdb.Error as e:
                raise SourceReadError(
                    f"cannot read {self._where(unit, loc)}: {error_summary(e)}{hint}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _settle_csv(con: duckdb.DuckDBPyConnection, target: str, loc: TableLocation,
                    schema: TableSchema, rows: int) -> TableSchema:
        """What DuckDB's sniffer reads without an error, but wrongly."""
        if len(schema.columns) == 1 and "," in schema.columns[0].name:
            # no delimiter fits every row: a truncated or damaged row
            raise SourceReadError(
                f"cannot read {loc.path}: its rows do not split into the header's columns "
                "(a truncated or damaged row?); export or copy the file again"
            )
        text = [c.name for c in schema.columns if c.type is DataType.STRING]
        if rows or not text:
            return schema
        # A header-only file gives the sniffer no values, so every column reads as text, the
        # keys too; with no rows, any type holds them: integers join and widen like the others.
        casts = ", ".join(f"CAST({ident(n)} AS BIGINT) AS {ident(n)}" for n in text)
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * REPLACE ({casts}) FROM {target}")
        return TableSchema(loc.table, tuple(
            Column(c.name, DataType.INT64 if c.type is DataType.STRING else c.type)
            for c in schema.columns))

    @staticmethod
    def _where(unit: SourceUnit, loc: TableLocation) -> str:
        if unit.format is SourceFormat.SQLITE:
            return f"table {loc.name_in_source} of {loc.path}"
        return loc.path
