"""The DuckDB query engine: stages source tables into a DuckDB file per plate, then reads chunks.

Staging reads each source table once (SQLite through the reader ``sqlite_reader.py`` chooses;
CSV through DuckDB's reader). Chunk queries then filter on the
image key, which DuckDB answers from the zone maps of the staged tables without rescanning them.
SQLite and CSV plates stored in image order are read in place instead (``duckdb_stream.py``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from celltable.adapters.csv_header import with_names
from celltable.adapters.csv_keys import csv_keys, whole_keys, with_double_keys
from celltable.adapters.duckdb_gather import gather_chunk
from celltable.adapters.duckdb_sql import (
    data_type,
    error_summary,
    ident,
    literal,
    render_chunk,
    render_missing,
    source_reads,
    with_views,
)
from celltable.adapters.duckdb_stream import (
    chunk_tables,
    csv_rows,
    in_place_csv_tables,
    in_place_tables,
)
from celltable.adapters.npz import chunk_rows, describe_npz, plate_table, stage_npz
from celltable.adapters.sqlite_reader import SqliteReader, open_sqlite
from celltable.adapters.sqlite_types import stage_mixed
from celltable.domain.errors import (
    CelltableError,
    ExecutionError,
    NotWholeKeyError,
    SchemaError,
    SourceChangedError,
    SourceReadError,
)
from celltable.domain.inspection import UnitDescription
from celltable.domain.join import ChunkQuery, SelectColumn
from celltable.domain.naming import OBJECT_NUMBER
from celltable.domain.plan import Chunk
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import ChunkOutput, SourceUnit, StagedTable, StagedUnit, TableLocation

log = structlog.get_logger("celltable.duckdb")

# One connection per staged plate and process, shared by the tasks (each through its own cursor):
# opening a DuckDB file and loading a catalog of thousands of columns for every chunk would cost
# more than the chunk's query. Plates staged in memory live here until released.
_readers: dict[str, duckdb.DuckDBPyConnection] = {}
MEMORY = ":memory:"
_readers_lock = threading.Lock()


def check_rows_read(tables: dict[str, pa.Table], query: ChunkQuery) -> None:
    """The rows a chunk read from its source (in place) are those counted when the plate was
    surveyed.

    Raises:
        SourceChangedError: They are not: the file changed since (rows added, removed).
    """
    read = tables[query.table].num_rows if query.table in tables else query.chunk.rows
    if read != query.chunk.rows:
        raise SourceChangedError(
            f"{query.table} rows of {query.chunk.describe()}: {read:,} read, {query.chunk.rows:,} "
            "counted at the start; the source changed while it was converted (is something "
            "still writing it?): run again once it is complete"
        )


def _sorted(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """``table`` ordered by ``keys``; a table already in order (the usual case: joins keep the
    base's storage order) is returned as it is, without copying its columns."""
    keys = tuple(k for k in keys if k in table.column_names)
    if not keys or table.num_rows < 2:
        return table
    order = pc.sort_indices(table.select(list(keys)),
                            [(k, "ascending", "at_start") for k in keys])
    if pc.all(pc.equal(order, pa.array(range(table.num_rows), order.type))).as_py():
        return table
    return table.take(order)


@dataclass(frozen=True, slots=True)
class DuckDBEngine:
    """Implements :class:`celltable.domain.ports.QueryEngine`. Holds settings only, so it can be
    shipped to worker processes; connections are opened inside each task."""

    threads: int = 1
    memory_limit: int | None = None
    in_memory: bool = False
    """Stage plates that fit ``memory_limit`` in this process's memory rather than in files:
    twice as fast, since nothing is compressed for disk, but only tasks in the same process can
    read them, so only for thread executors. Larger plates are staged in files."""
    sqlite_reader: str = "auto"
    """How SQLite files are read (``sqlite_reader.py``): ``auto``, ``arrow`` or ``extension``."""

    def _connect(self, database: str = ":memory:", *, read_only: bool = False,
                 temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
        config: dict[str, object] = {
            "threads": self.threads,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if self.memory_limit:
            config["memory_limit"] = f"{max(1, self.memory_limit // 2**20)}MB"
        if temp_dir:
            config["temp_directory"] = temp_dir
        return duckdb.connect(database, read_only=read_only, config=config)

    # staging -------------------------------------------------------------------------------

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

    # reading -------------------------------------------------------------------------------

    def chunk_sources(self, staged: StagedUnit,
                      queries: Sequence[ChunkQuery]) -> Iterator[StagedUnit | dict[str, pa.Table]]:
        """What each query's task reads: the staged copy, or, for a plate read in place, the
        query's rows of every table, streamed once from the source in order."""
        if not staged.in_place:
            yield from (staged for _ in queries)
            return
        if staged.unit.format is SourceFormat.NPZ:
            yield from chunk_rows(staged, queries)
            return
        # One thread per stream: a SQLite scan gains little from a second, and a parallel scan
        # keeping storage order buffers rows far ahead of the reader.
        with replace(self, threads=1)._connect() as con:
            if staged.unit.format is SourceFormat.SQLITE:
                sqlite = self._open_sqlite(con, staged.unit.path)
                yield from chunk_tables(staged, queries, lambda loc, key, rows, start: sqlite.batches(
                    loc.name_in_source, rows, start=None if start is None else (key, start)))
                return
            # CSV: in the order the plate was checked in (DuckDB's default, made explicit)
            con.execute("SET preserve_insertion_order = true")
            reads = json.loads(staged.handle)
            yield from chunk_tables(staged, queries, lambda loc, key, rows, start: csv_rows(
                con, reads[loc.table], key, rows, start))

    def read_chunk(self, source: StagedUnit | dict[str, pa.Table], query: ChunkQuery) -> ChunkOutput:
        gathered = None
        if isinstance(source, StagedUnit):
            table = source.table(query.table)
            key_present = table is not None and query.image_key in table.schema.names
            with self._reader(source.handle) as con:
                result, counts = self._run(con, query, key_present)
        else:
            check_rows_read(source, query)
            with self._joiner() as con:
                gathered = gather_chunk(con, source, query)
            if gathered is not None:  # in output order already
                result, counts = gathered
            else:  # a column Arrow cannot cast as SQL does: join whole rows
                with self._joiner() as con:
                    for name, table in source.items():
                        con.register(name, table)
                    result, counts = self._run(con, query, key_present=True)
        if gathered is None:
            result = _sorted(result, query.order_by)
        missing = ()
        if query.join is not None:
            missing = tuple((s.describe(), n) for s, n in zip(query.join.steps, counts[1:], strict=True))
        if isinstance(source, dict):
            # Free the chunk's source rows now, not when the task runner lets go of the task's
            # arguments (after the chunk is written): one chunk fewer in memory.
            source.clear()
        nulls = result.column(OBJECT_NUMBER).null_count if OBJECT_NUMBER in result.column_names \
            else 0
        return ChunkOutput(query.chunk, result, result.num_rows, rows_in=query.chunk.rows,
                           dropped=counts[0], missing=missing, null_objects=nulls)

    @staticmethod
    def _run(con: duckdb.DuckDBPyConnection, query: ChunkQuery,
             key_present: bool) -> tuple[pa.Table, tuple[int, ...]]:
        result = con.sql(render_chunk(query, key_present)).to_arrow_table()
        counts = (con.execute(render_missing(query)).fetchone()
                  if query.join and query.join.steps else (0,))
        return result, counts

    def read_sql(self, staged: StagedUnit, sql: str, table_number: str,
                 views: Sequence[tuple[str, Sequence[SelectColumn]]] = ()) -> ChunkOutput:
        with self._reader(staged.handle) as con:
            try:
                result = con.sql(
                    with_views(views)
                    + f"SELECT {literal(table_number)} AS {ident('Metadata_TableNumber')}, q.* "
                    f"FROM ({sql}) AS q"
                ).to_arrow_table()
            except duckdb.Error as e:
                raise SchemaError(f"the join SQL failed on plate {staged.unit.key!r}: {error_summary(e)}") from e
        chunk = Chunk(staged.unit.key, 0, None, None, 0)
        return ChunkOutput(chunk, result, result.num_rows, rows_in=0)

    def _joiner(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory database for joining one chunk's Arrow tables. One per chunk: a
        database kept open holds on to memory from the chunks it joined (measured: 90-280 MB
        more at the peak of a 96-image plate), and opening one takes milliseconds."""
        con = self._connect()
        # Without statistics on Arrow tables DuckDB may join two partners on the image alone
        # first (every cell with every nucleus of an image); keep the written order.
        con.execute("SET disabled_optimizers = 'join_order'")
        return con

    def _reader(self, handle: str) -> duckdb.DuckDBPyConnection:
        """A cursor on the shared read-only connection to a staged plate."""
        with _readers_lock:
            con = _readers.get(handle)
            if con is None:
                if handle.startswith(MEMORY):
                    raise ExecutionError(
                        "a plate staged in memory was read from another process; run with "
                        "in_memory staging off for process executors"
                    )
                con = _readers[handle] = self._connect(handle, read_only=True)
            return con.cursor()

    def release(self, staged: StagedUnit) -> None:
        if staged.in_place:  # the handle is the user's source: never touch it
            return
        with _readers_lock:
            con = _readers.pop(staged.handle, None)
        if con is not None:
            con.close()
        if not staged.handle.startswith(MEMORY):
            Path(staged.handle).unlink(missing_ok=True)
            Path(staged.handle + ".wal").unlink(missing_ok=True)

    # inspecting ----------------------------------------------------------------------------

    def describe(self, unit: SourceUnit, preset: Preset) -> UnitDescription:
        """Describe a unit straight from its source, staging nothing (see
        ``adapters/duckdb_inspect.py``)."""
        from celltable.adapters.duckdb_inspect import describe_unit  # it imports this module

        if unit.format is SourceFormat.NPZ:
            return describe_npz(unit, preset)
        with self._connect() as con:
            sqlite = self._open_sqlite(con, unit.path) if unit.format is SourceFormat.SQLITE else None
            return describe_unit(con, unit, preset, sqlite)
