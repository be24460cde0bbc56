"""The DuckDB query engine: stages source tables into a DuckDB file per plate, then reads chunks.

Staging reads each source table once (SQLite through DuckDB's SQLite extension, shipped as a
pinned wheel so it works offline; CSV through DuckDB's reader). Chunk queries then filter on the
image key, which DuckDB answers from the zone maps of the staged tables without rescanning them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from celltable.adapters.duckdb_sql import (
    data_type,
    error_summary,
    ident,
    literal,
    render_chunk,
    render_missing,
    source_reads,
)
from celltable.domain.errors import SchemaError, SourceReadError
from celltable.domain.inspection import UnitDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.plan import Chunk
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import ChunkOutput, SourceUnit, StagedTable, StagedUnit, TableLocation

log = structlog.get_logger("celltable.duckdb")

# One read-only connection per staged plate and process, shared by the tasks (each through its
# own cursor): opening a DuckDB file and loading a catalog of thousands of columns for every
# chunk would cost more than the chunk's query.
_readers: dict[str, duckdb.DuckDBPyConnection] = {}
_readers_lock = threading.Lock()


@cache
def sqlite_extension() -> str:
    """Path of the SQLite extension matching the installed DuckDB, from its pinned wheel."""
    try:
        import duckdb_extension_sqlite_scanner as pkg
    except ImportError as e:  # pragma: no cover - a broken install
        raise SourceReadError(
            "the package duckdb-extension-sqlite-scanner is missing; reinstall celltable"
        ) from e
    folder = Path(pkg.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob("sqlite_scanner.duckdb_extension"))
    if not found:
        raise SourceReadError(
            f"no SQLite extension for DuckDB {duckdb.__version__} in {folder.parent}; install "
            f"duckdb-extension-sqlite-scanner=={duckdb.__version__}"
        )
    return str(found[0])


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
    memory_limit: str | None = None

    def _connect(self, database: str = ":memory:", *, read_only: bool = False,
                 temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
        config: dict[str, object] = {
            "threads": self.threads,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if temp_dir:
            config["temp_directory"] = temp_dir
        return duckdb.connect(database, read_only=read_only, config=config)

    # staging -------------------------------------------------------------------------------

    def stage(self, unit: SourceUnit, preset: Preset, staging_dir: str) -> StagedUnit:
        digest = hashlib.sha1(f"{unit.key}\0{unit.path}".encode()).hexdigest()[:16]
        db = Path(staging_dir) / f"plate-{digest}.duckdb"
        with self._connect(str(db), temp_dir=str(Path(staging_dir) / f"spill-{digest}")) as con:
            if unit.format is SourceFormat.SQLITE:
                self._attach_sqlite(con, unit.path)
            tables = tuple(self._stage_table(con, unit, loc, preset) for loc in unit.tables)
            con.execute("CHECKPOINT")
        log.info("plate_staged", plate=unit.key, rows={t.table: t.rows for t in tables})
        return StagedUnit(unit, str(db), tables)

    @staticmethod
    def _attach_sqlite(con: duckdb.DuckDBPyConnection, path: str) -> None:
        con.execute(f"LOAD {literal(sqlite_extension())}")
        try:
            con.execute(f"ATTACH {literal(path)} AS src (TYPE sqlite, READ_ONLY)")
        except duckdb.Error as e:
            raise SourceReadError(f"cannot open SQLite file {path}: {error_summary(e)}") from e

    def _stage_table(self, con: duckdb.DuckDBPyConnection, unit: SourceUnit, loc: TableLocation,
                     preset: Preset) -> StagedTable:
        target = ident(loc.table)
        sources = source_reads(unit, loc)
        for i, source in enumerate(sources):
            try:
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}")
                break
            except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
                if i + 1 == len(sources):
                    raise SourceReadError(f"cannot read {self._where(unit, loc)}: {error_summary(e)}") from e
            except duckdb.Error as e:
                raise SourceReadError(f"cannot read {self._where(unit, loc)}: {error_summary(e)}") from e
        schema = TableSchema(
            loc.table,
            tuple(Column(name, data_type(t)) for name, t, *_ in con.execute(f"DESCRIBE {target}").fetchall()),
        )
        rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
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
        return StagedTable(loc.table, schema, rows, by_image, null_keys=nulls)

    @staticmethod
    def _where(unit: SourceUnit, loc: TableLocation) -> str:
        if unit.format is SourceFormat.SQLITE:
            return f"table {loc.name_in_source} of {loc.path}"
        return loc.path

    # reading -------------------------------------------------------------------------------

    def read_chunk(self, staged: StagedUnit, query: ChunkQuery) -> ChunkOutput:
        table = staged.table(query.table)
        key_present = table is not None and query.image_key in table.schema.names
        with self._reader(staged.handle) as con:
            result = con.execute(render_chunk(query, key_present)).to_arrow_table()
            counts = con.execute(render_missing(query)).fetchone() if query.join else (0,)
        result = _sorted(result, query.order_by)
        missing = ()
        if query.join is not None:
            missing = tuple((s.describe(), n) for s, n in zip(query.join.steps, counts[1:], strict=True))
        return ChunkOutput(query.chunk, result, result.num_rows, rows_in=query.chunk.rows,
                           dropped=counts[0], missing=missing)

    def read_sql(self, staged: StagedUnit, sql: str, table_number: str) -> ChunkOutput:
        with self._reader(staged.handle) as con:
            try:
                result = con.execute(
                    f"SELECT {literal(table_number)} AS {ident('Metadata_TableNumber')}, q.* "
                    f"FROM ({sql}) AS q"
                ).to_arrow_table()
            except duckdb.Error as e:
                raise SchemaError(f"the join SQL failed on plate {staged.unit.key!r}: {error_summary(e)}") from e
        chunk = Chunk(staged.unit.key, 0, None, None, 0)
        return ChunkOutput(chunk, result, result.num_rows, rows_in=0)

    def _reader(self, handle: str) -> duckdb.DuckDBPyConnection:
        """A cursor on the shared read-only connection to a staged plate."""
        with _readers_lock:
            con = _readers.get(handle)
            if con is None:
                con = _readers[handle] = self._connect(handle, read_only=True)
            return con.cursor()

    def release(self, staged: StagedUnit) -> None:
        with _readers_lock:
            con = _readers.pop(staged.handle, None)
        if con is not None:
            con.close()
        Path(staged.handle).unlink(missing_ok=True)
        Path(staged.handle + ".wal").unlink(missing_ok=True)

    # inspecting ----------------------------------------------------------------------------

    def describe(self, unit: SourceUnit, preset: Preset) -> UnitDescription:
        """Describe a unit straight from its source, staging nothing (see
        ``adapters/duckdb_inspect.py``)."""
        from celltable.adapters.duckdb_inspect import describe_unit  # it imports this module

        with self._connect() as con:
            if unit.format is SourceFormat.SQLITE:
                self._attach_sqlite(con, unit.path)
            return describe_unit(con, unit, preset)
