"""SQLite sources (CellProfiler's ExportToDatabase, cytominer-database): one file a plate, or one
plate per CellProfiler run (``TableNumber``) of a file. Implements
:class:`celltable.domain.ports.SourceFormatReader`; registered in ``adapters/source_formats.py``.

A file's tables are found by reading its catalogue (read-only); its rows through the reader
``sqlite_reader.py`` chooses (the ADBC driver's Arrow batches, or DuckDB's SQLite extension),
in place when the tables are stored in image order (``duckdb_stream.py``), else copied once.
DuckDB is imported inside the reading methods: listing a source loads none of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from celltable.domain.errors import SchemaError, SourceReadError
from celltable.domain.inspection import PlateDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.schema import Column, TableSchema
from celltable.domain.sources import (
    FoundPlates,
    Plate,
    SkippedFile,
    SourceTree,
    StagedPlate,
    StagedTable,
    TableLocation,
)

if TYPE_CHECKING:
    import duckdb

    from celltable.adapters.duckdb_engine import DuckDBEngine
    from celltable.adapters.duckdb_staging import Copied
    from celltable.adapters.sqlite_reader import SqliteReader

log = structlog.get_logger("celltable.duckdb")

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def sqlite_tables(path: Path) -> list[str]:
    """The table names of a SQLite file, read without changing it.

    Raises:
        SourceReadError: The file is not a readable SQLite database.
    """
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as con:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            return [r[0] for r in rows]
    except sqlite3.DatabaseError as e:
        raise SourceReadError(sqlite_trouble(path, e)) from e


_BUSY, _LOCKED, _READONLY = 5, 6, 8  # SQLite's primary result codes


def sqlite_trouble(path: Path, e: sqlite3.DatabaseError) -> str:
    """What to tell a user whose SQLite file cannot be read: a writer holding a lock and a
    crashed writer's journal are not damage, and copying the file again would not help."""
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF  # Python 3.11+
    journal = path.with_name(path.name + "-journal")
    if code in (_BUSY, _LOCKED):
        return (f"{path} is locked by a program writing it (is CellProfiler still running?); "
                "convert it once that program has finished")
    if code == _READONLY and journal.exists():
        return (f"{path} has a journal ({journal.name}) left by a writer that stopped mid-way; "
                "open the database once with write access (e.g. `sqlite3 FILE 'PRAGMA "
                "integrity_check'`) so SQLite rolls the journal back, then convert it")
    return (f"{path} is not a readable SQLite database ({e}); check the file is complete "
            "(copy it again) or remove it from the source")


def runs(plate: Plate, column: str | None) -> list[Plate]:
    """A file's plates: one per value of the preset's ``table_number`` column (a CellProfiler
    run), keyed ``<file>/<value>``; the file itself when it has no such column."""
    if column is None:
        return [plate]
    values: set[str] = set()
    try:
        with sqlite3.connect(f"{Path(plate.path).as_uri()}?mode=ro", uri=True) as con:
            for loc in plate.tables:
                names = {r[1] for r in con.execute(f'PRAGMA table_info("{_q(loc.name_in_source)}")')}
                if column in names:
                    values.update(v for (v,) in con.execute(
                        f'SELECT DISTINCT CAST("{_q(column)}" AS TEXT) FROM "{_q(loc.name_in_source)}"'
                    ) if v is not None)
    except sqlite3.DatabaseError as e:
        raise SourceReadError(f"cannot read {column} of {plate.path}: {e}") from e
    if not values:
        return [plate]
    order = sorted(values, key=lambda v: (len(v), v))  # whole numbers in numeric order
    return [Plate(f"{plate.key}/{v}", plate.format, plate.path, plate.tables, (column, v))
            for v in order]


def _q(name: str) -> str:
    return name.replace('"', '""')


def _tables(path: str, preset: Preset) -> tuple[TableLocation, ...]:
    return tuple(TableLocation(table, path, name) for name in sqlite_tables(Path(path))
                 if (table := preset.match_table(name)) is not None)


@dataclass(frozen=True, slots=True)
class SqliteFormat:
    """Implements :class:`celltable.domain.ports.SourceFormatReader` for SQLite files."""

    format: SourceFormat
    label = "SQLite"
    suffixes = SQLITE_SUFFIXES
    suggested_preset = "cellprofiler_sqlite"
    memory_factor = 2  # DuckDB holds about twice a SQLite file

    def find(self, tree: SourceTree, preset: Preset, where: Callable[[str], str],
             local: Callable[[str], str]) -> FoundPlates:
        from celltable.adapters.file_checks import sqlite_problem

        plates, skipped, bad = [], [], []
        for rel in self.listed_files(tree):
            path = local(rel)
            short = sqlite_problem(Path(path))
            if short:
                bad.append(SkippedFile(path, short))
                continue
            try:
                tables = _tables(path, preset)
            except SourceReadError as e:  # named with every other bad file, before data moves
                bad.append(SkippedFile(path, str(e).removeprefix(f"{path} ")))
                continue
            if tables:
                plates.extend(runs(Plate(tree.key(rel), self.format, path, tables),
                                  preset.table_number))
            else:
                skipped.append((path, f"holds no table of preset {preset.name}"))
        return FoundPlates(tuple(plates), tuple(skipped), tuple(bad))

    def nothing_found(self, tree: SourceTree, preset: Preset, skipped: Sequence[str]) -> str:
        from celltable.adapters.source_tree import nothing_found

        hint = ("; no SQLite files there: for CSV folders try --preset cellprofiler_csv"
                if not tree.is_file and not skipped else "")
        return nothing_found(tree, preset, hint)

    def listed_files(self, tree: SourceTree) -> tuple[str, ...]:
        if tree.is_file:  # any name (SQLite files go by many), but not an NPZ (a zip) or CSV
            return () if tree.name.lower().endswith((".npz", ".csv", ".tsv")) else ("",)
        return tuple(tree.files(SQLITE_SUFFIXES))

    def plates_of_file(self, key: str, path: str, preset: Preset) -> tuple[Plate, ...]:
        tables = _tables(path, preset)
        if not tables:
            return ()
        return tuple(runs(Plate(key, self.format, path, tables), preset.table_number))

    def problem(self, path: str) -> str | None:
        return None  # checked as its tables are listed (``find``)

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        from celltable.adapters.experiment import from_sqlite

        return from_sqlite(Path(plate.path)) if Path(plate.path).is_file() else ()

    def where(self, loc: TableLocation) -> str:
        return f"table {loc.name_in_source} of {loc.path}"

    # reading -----------------------------------------------------------------------------

    def describe(self, engine: DuckDBEngine, plate: Plate, preset: Preset) -> PlateDescription:
        from celltable.adapters.duckdb_inspect import describe_plate

        with engine.connect() as con:
            return describe_plate(con, plate, preset,
                                 _KeyTables(self, con, _open(engine, con, plate.path), plate))

    def in_place(self, engine: DuckDBEngine, plate: Plate,
                 preset: Preset) -> tuple[tuple[StagedTable, ...], object] | None:
        import duckdb

        from celltable.adapters.duckdb_handles import InPlace
        from celltable.adapters.duckdb_sql import error_summary
        from celltable.adapters.duckdb_stream import in_place_tables

        with engine.connect() as con:
            sqlite = _open(engine, con, plate.path)
            try:
                tables = in_place_tables(sqlite, plate.tables, preset)
            except duckdb.TypeMismatchException as e:  # only key columns are read here
                raise SchemaError(
                    f"{plate.path}: its image key {preset.image_key} holds a value unlike "
                    f"its declared integer type ({error_summary(e)}); keys must be whole "
                    "numbers: fix the database") from e
            except duckdb.Error as e:
                raise SourceReadError(f"cannot read {plate.path}: {error_summary(e)}") from e
        return None if tables is None else (tables, InPlace())

    def stage(self, engine: DuckDBEngine, con: duckdb.DuckDBPyConnection, plate: Plate,
              preset: Preset, parallel: int) -> tuple[StagedTable, ...]:
        from celltable.adapters.duckdb_staging import stage_tables

        sqlite = _open(engine, con, plate.path)
        tables = stage_tables(con, plate, preset, parallel,
                              lambda cur, loc, target: self._copy(cur, sqlite, plate, loc, target))
        sqlite.close()
        return tables

    def _copy(self, con: duckdb.DuckDBPyConnection, sqlite: SqliteReader, plate: Plate,
              loc: TableLocation, target: str) -> Copied:
        import duckdb

        from celltable.adapters.duckdb_sql import error_summary
        from celltable.adapters.duckdb_staging import Copied, copied
        from celltable.adapters.sqlite_types import stage_mixed

        named = self.where(loc)
        reconciled: tuple[tuple[tuple[str, int], ...], tuple[str, ...]] = ((), ())
        try:
            sqlite.copy(con, loc.name_in_source, target, partition=plate.partition)
        except duckdb.TypeMismatchException:  # SQLite values unlike their declaration
            try:
                reconciled = stage_mixed(con, sqlite, loc.name_in_source, plate.partition,
                                         target, named)
            except duckdb.Error as e:
                raise SourceReadError(f"cannot read {named}: {error_summary(e)}") from e
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {named}: {error_summary(e)}") from e
        schema, rows = copied(con, target, loc.table)
        return Copied(schema, rows, reconciled[0], reconciled[1])

    def chunks(self, engine: DuckDBEngine, staged: StagedPlate,
               queries: Sequence[ChunkQuery]) -> Iterator[dict[str, Any]]:
        from celltable.adapters.duckdb_stream import chunk_tables

        # One thread per stream: a SQLite scan gains little from a second, and a parallel scan
        # keeping storage order buffers rows far ahead of the reader.
        with replace(engine, threads=1).connect() as con:
            sqlite = _open(engine, con, staged.plate.path)
            yield from chunk_tables(staged, queries, lambda loc, key, rows, start: sqlite.batches(
                loc.name_in_source, rows, start=None if start is None else (key, start)),
                side_by_side=engine.threads > 1)


def _open(engine: DuckDBEngine, con: duckdb.DuckDBPyConnection, path: str) -> SqliteReader:
    """The SQLite file ``path`` opened on ``con`` with the reader the engine is set to."""
    from celltable.adapters.sqlite_reader import open_sqlite

    return open_sqlite(con, path, engine.sqlite_reader)


class _KeyTables:
    """A SQLite plate's schemas (its declarations) and key columns, for ``describe``."""

    def __init__(self, fmt: SqliteFormat, con: duckdb.DuckDBPyConnection, sqlite: SqliteReader,
                 plate: Plate) -> None:
        self._fmt, self._con, self._sqlite, self._plate = fmt, con, sqlite, plate

    def schema(self, loc: TableLocation) -> TableSchema:
        import duckdb

        from celltable.adapters.duckdb_sql import data_type, error_summary

        try:
            columns = self._sqlite.columns(loc.name_in_source)
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {self._fmt.where(loc)}: {error_summary(e)}") from e
        return TableSchema(loc.table, tuple(Column(name, data_type(t)) for name, t in columns))

    def load_keys(self, loc: TableLocation, keys: list[str], target: str,
                  schemas: dict[str, TableSchema]) -> TableSchema:
        import duckdb

        from celltable.adapters.duckdb_sql import error_summary

        try:
            if keys:
                self._sqlite.copy(self._con, loc.name_in_source, target, columns=keys,
                                  partition=self._plate.partition, temp=True)
            else:
                rows = self._sqlite.count(loc.name_in_source, self._plate.partition)
                self._con.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT {int(rows)} AS n")
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {self._fmt.where(loc)}: {error_summary(e)}") from e
        return schemas[loc.table]

