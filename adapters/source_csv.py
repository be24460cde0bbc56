"""CSV sources: CellProfiler's ExportToSpreadsheet (a folder of ``Image.csv``, ``Cells.csv`` ...
a plate) and IN Carta (every CSV file a plate of one table: presets with
``one_table_per_file``). Implements :class:`celltable.domain.ports.SourceFormatReader`;
registered in ``adapters/source_formats.py``.

Files are read by DuckDB's CSV reader: in place when every table is stored in image order (each
file sniffed once, ``duckdb_stream.py``), else copied once, typed from the sniffer's sample and
from the whole file when a later value contradicts it; key columns are checked whole
(``csv_keys.py``). DuckDB is imported inside the reading methods: listing a source loads none
of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celltable.adapters import source_formats
from celltable.domain.errors import NoTablesFoundError, SourceReadError
from celltable.domain.inspection import PlateDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import (
    FoundPlates,
    Plate,
    SourceTree,
    StagedPlate,
    StagedTable,
    TableLocation,
)

if TYPE_CHECKING:
    import duckdb

    from celltable.adapters.duckdb_engine import DuckDBEngine
    from celltable.adapters.duckdb_staging import Copied


def csv_reads(loc: TableLocation) -> list[str]:
    """The FROM expressions reading a CSV table, to try in order: the sniffer's sample first,
    then the whole file when a later value contradicts the sample's types."""
    from celltable.adapters.duckdb_sql import literal

    return [f"read_csv({literal(loc.path)}, header = true)",
            f"read_csv({literal(loc.path)}, header = true, sample_size = -1)"]


@dataclass(frozen=True, slots=True)
class CsvFormat:
    """Implements :class:`celltable.domain.ports.SourceFormatReader` for CSV files."""

    format: SourceFormat
    label = "CSV"
    suffixes = (".csv",)
    suggested_preset = "cellprofiler_csv"
    memory_factor = 1  # DuckDB holds about the size of the CSV text

    def find(self, tree: SourceTree, preset: Preset, where: Callable[[str], str],
             local: Callable[[str], str]) -> FoundPlates:
        if preset.one_table_per_file:
            return FoundPlates(tuple(self._file_plates(tree, preset, where)))
        if tree.is_file:
            raise NoTablesFoundError(
                f"{tree.location} is a file; for CSV presets give the folder holding "
                f"{', '.join(t + '.csv' for t in preset.tables)}.{self._hint([tree.name], ' It', '.')}"
            )
        plates, skipped = [], []
        for folder, names in tree.folders:
            tables = []
            for name in names:
                stem, dot, suffix = name.rpartition(".")
                table = preset.match_table(stem) if dot and suffix.lower() == "csv" else None
                if table is None:
                    if name.lower().endswith(".csv"):
                        why = ("CellProfiler's Experiment table: kept in the output's metadata "
                               "and the run report (experiments), not as rows"
                               if stem.lower() == "experiment" else
                               f"no table of preset {preset.name} is named {stem}")
                        skipped.append((where(tree.join(folder, name)), why))
                    continue
                if any(t.table == table for t in tables):
                    raise SourceReadError(
                        f"{where(folder)} holds two files for table {table} ({name} and another "
                        "that differs only in case); keep one"
                    )
                tables.append(TableLocation(table, where(tree.join(folder, name)), stem))
            if tables:
                plates.append(Plate(tree.key(folder), self.format, where(folder), tuple(tables)))
        return FoundPlates(tuple(plates), tuple(skipped))

    def _file_plates(self, tree: SourceTree, preset: Preset,
                    where: Callable[[str], str]) -> list[Plate]:
        """Every CSV file a plate of its own holding the base compartment, keyed by its path."""
        files = ([""] if tree.name.lower().endswith(".csv") else []) if tree.is_file else \
            tree.files((".csv",))
        return [Plate(tree.key(rel), self.format, where(rel),
                           (TableLocation(preset.base, where(rel), Path(rel or tree.name).stem),))
                for rel in files]

    def _hint(self, names: Sequence[str], lead: str = "; it", end: str = "") -> str:
        """A hint at the preset of another format whose files ``names`` look like."""
        for other in source_formats.others(self.format):
            if other.suggested_preset and any(n.lower().endswith(other.suffixes) for n in names):
                return f"{lead} looks like {other.label}: try --preset {other.suggested_preset}{end}"
        return ""

    def nothing_found(self, tree: SourceTree, preset: Preset, skipped: Sequence[str]) -> str:
        from celltable.adapters.source_tree import nothing_found

        return nothing_found(tree, preset, self._hint([tree.name, *skipped]))

    def listed_files(self, tree: SourceTree) -> tuple[str, ...] | None:
        return None  # tables are named by their files

    def plates_of_file(self, key: str, path: str, preset: Preset) -> tuple[Plate, ...]:
        raise NotImplementedError("CSV plates are found from a listing")

    def problem(self, path: str) -> str | None:
        from celltable.adapters.file_checks import csv_problem

        return csv_problem(Path(path))

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        from celltable.adapters.experiment import from_csv

        return from_csv(Path(plate.path)) if Path(plate.path).is_dir() else ()

    def where(self, loc: TableLocation) -> str:
        return loc.path

    # reading -----------------------------------------------------------------------------

    def describe(self, engine: DuckDBEngine, plate: Plate, preset: Preset) -> PlateDescription:
        from celltable.adapters.duckdb_inspect import describe_plate

        with engine.connect() as con:
            return describe_plate(con, plate, preset, _KeyTables(con))

    def in_place(self, engine: DuckDBEngine, plate: Plate,
                 preset: Preset) -> tuple[tuple[StagedTable, ...], object] | None:
        """Whatever goes wrong here (a damaged or oddly encoded file ...) the copy is left to
        read, or to name."""
        import duckdb

        from celltable.adapters.duckdb_stream import in_place_csv_tables
        from celltable.domain.errors import CelltableError, NotWholeKeyError

        try:
            with engine.connect() as con:
                found = in_place_csv_tables(con, plate.tables, preset, engine.threads)
        except NotWholeKeyError:
            raise
        except (duckdb.Error, OSError, ValueError, CelltableError):
            return None
        if found is None:
            return None
        from celltable.adapters.duckdb_handles import InPlace

        # The handle carries each table's sniffed read, so the chunks' streams (maybe in
        # another process) read the files exactly as checked, without sniffing again.
        return found[0], InPlace(tuple(found[1].items()))

    def stage(self, engine: DuckDBEngine, con: duckdb.DuckDBPyConnection, plate: Plate,
              preset: Preset, parallel: int) -> tuple[StagedTable, ...]:
        from celltable.adapters.duckdb_staging import stage_tables

        return stage_tables(con, plate, preset, parallel,
                            lambda cur, loc, target: _copy(cur, loc, target, preset))

    def chunks(self, engine: DuckDBEngine, staged: StagedPlate,
               queries: Sequence[ChunkQuery]) -> Iterator[dict[str, Any]]:
        import duckdb

        from celltable.adapters.duckdb_stream import chunk_tables, csv_rows

        # One thread per stream: the file's order kept, no rows buffered ahead of the reader.
        with replace(engine, threads=1).connect() as con:
            # in the order the plate was checked in (DuckDB's default, made explicit)
            con.execute("SET preserve_insertion_order = true")
            handle = staged.handle
            # a later value the sniffed type cannot hold, or a row the sniffed dialect cannot
            # split (damaged, badly encoded): the copy's reader settles it, or names it
            yield from chunk_tables(staged, queries, lambda loc, key, rows, start: csv_rows(
                con, handle.read(loc.table), key, rows, start),
                (duckdb.ConversionException, duckdb.InvalidInputException),
                side_by_side=engine.threads > 1)


def _copy(con: duckdb.DuckDBPyConnection, loc: TableLocation, target: str,
          preset: Preset) -> Copied:
    """Copy a CSV file: typed from the sniffer's sample first, from the whole file when a
    later value contradicts the sample; key columns read as DOUBLE, checked whole, then cast."""
    import duckdb

    from celltable.adapters.csv_header import with_names
    from celltable.adapters.csv_keys import csv_keys, whole_keys, with_double_keys
    from celltable.adapters.duckdb_sql import error_summary
    from celltable.adapters.duckdb_staging import Copied, copied

    if Path(loc.path).stat().st_size == 0:
        raise SourceReadError(f"{loc.path} is empty (0 bytes); export or copy it again, "
                              "or remove it from the source")
    # a repeated header name numbered _2, _3 ...
    sources = [with_names(con, s, loc.path) for s in csv_reads(loc)]
    keys = csv_keys(con, sources[0], loc, preset)
    if keys:  # read as DOUBLE first, so a fraction is found, not rounded (csv_keys.py)
        sources = [with_double_keys(sources[0], keys), *sources[1:]]
    hint = "; check it is a complete, comma-separated UTF-8 file (export or copy it again)"
    for i, source in enumerate(sources):
        try:
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}")
            break
        except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
            if i + 1 == len(sources):
                raise SourceReadError(f"cannot read {loc.path}: {error_summary(e)}{hint}") from e
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {loc.path}: {error_summary(e)}{hint}") from e
    schema, rows = copied(con, target, loc.table)
    schema = whole_keys(con, target, loc, schema, keys)
    return Copied(_settle(con, target, loc, schema, rows), rows)


def _settle(con: duckdb.DuckDBPyConnection, target: str, loc: TableLocation,
            schema: TableSchema, rows: int) -> TableSchema:
    """What DuckDB's sniffer reads without an error, but wrongly."""
    from celltable.adapters.duckdb_sql import ident

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
    return _integer_text(schema)


def _integer_text(schema: TableSchema) -> TableSchema:
    """``schema`` with its text columns as integers (a header-only file's, as staged)."""
    return TableSchema(schema.table, tuple(
        Column(c.name, DataType.INT64 if c.type is DataType.STRING else c.type)
        for c in schema.columns))


class _KeyTables:
    """A CSV plate's schemas (DuckDB's DESCRIBE of the sniffer's sample) and key columns, for
    ``describe``; a table whose sample misled is read again, whole."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._reads: dict[str, str] = {}

    def schema(self, loc: TableLocation) -> TableSchema:
        import duckdb

        from celltable.adapters.duckdb_inspect import table_schema
        from celltable.adapters.duckdb_sql import error_summary
        from celltable.adapters.storage import HEADER_ONLY, file_state

        source = csv_reads(loc)[0]
        try:
            schema = table_schema(self._con, loc.table, source)
        except duckdb.Error as e:
            raise SourceReadError(f"cannot read {loc.path}: {error_summary(e)}") from e
        self._reads[loc.table] = source
        if file_state(Path(loc.path)) == HEADER_ONLY:
            # as a conversion reads it: no values to type, so its keys join as integers
            schema = _integer_text(schema)
        return schema

    def load_keys(self, loc: TableLocation, keys: list[str], target: str,
                  schemas: dict[str, TableSchema]) -> TableSchema:
        import duckdb

        from celltable.adapters.duckdb_inspect import table_schema
        from celltable.adapters.duckdb_sql import error_summary, ident

        sources = csv_reads(loc)
        start = sources.index(self._reads[loc.table])
        for n, source in enumerate(sources[start:], start=start + 1):
            try:
                if n > start + 1:  # the whole file decides the types this time
                    schemas[loc.table] = table_schema(self._con, loc.table, source)
                    keys = [k for k in keys if k in schemas[loc.table].names]
                columns = ", ".join(ident(k) for k in keys) if keys else "count(*) AS n"
                self._con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT {columns} FROM {source}")
                self._reads[loc.table] = source
                return schemas[loc.table]
            except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
                if n == len(sources):
                    raise SourceReadError(f"cannot read {loc.path}: {error_summary(e)}") from e
            except duckdb.Error as e:
                raise SourceReadError(f"cannot read {loc.path}: {error_summary(e)}") from e
        raise AssertionError("unreachable")  # pragma: no cover

