"""The DuckDB query engine: stages source tables into a DuckDB file per plate, then reads chunks.

Staging reads each source table once (``duckdb_staging.py``), through the reader of the plate's
format (``source_formats.py``). Chunk queries then filter on the image key, which DuckDB answers
from the zone maps of the staged tables without rescanning them. Plates stored in image order are
read in place instead, streamed by their format's reader (``duckdb_stream.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from celltable.adapters.arrow_types import is_positions
from celltable.adapters.duckdb_gather import gather_chunk
from celltable.adapters.duckdb_sql import (
    error_summary,
    ident,
    literal,
    render_chunk,
    render_missing,
    with_views,
)
from celltable.adapters.duckdb_staging import DuckDBStaging
from celltable.adapters.source_formats import reader
from celltable.domain.errors import SchemaError, SourceChangedError
from celltable.domain.inspection import PlateDescription
from celltable.domain.join import ChunkQuery, SelectColumn
from celltable.domain.naming import OBJECT_NUMBER
from celltable.domain.plan import Chunk
from celltable.domain.presets import Preset
from celltable.domain.sources import ChunkOutput, Plate, StagedPlate


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
    if is_positions(order):
        return table
    return table.take(order)


@dataclass(frozen=True, slots=True)
class DuckDBEngine(DuckDBStaging):
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

    def connect(self, database: str = ":memory:", *, read_only: bool = False,
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

    # reading -------------------------------------------------------------------------------

    def chunk_sources(self, staged: StagedPlate,
                      queries: Sequence[ChunkQuery]) -> Iterator[StagedPlate | dict[str, pa.Table]]:
        """What each query's task reads: the staged copy, or, for a plate read in place, the
        query's rows of every table, streamed once from the source in order."""
        if not staged.in_place:
            yield from (staged for _ in queries)
            return
        yield from reader(staged.plate.format).chunks(self, staged, queries)

    def read_chunk(self, source: StagedPlate | dict[str, pa.Table], query: ChunkQuery) -> ChunkOutput:
        gathered = None
        if isinstance(source, StagedPlate):
            table = source.table(query.table)
            key_present = table is not None and query.image_key in table.schema.names
            with source.handle.cursor(self.connect) as con:
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

    def read_sql(self, staged: StagedPlate, sql: str, plate_key: str,
                 views: Sequence[tuple[str, Sequence[SelectColumn]]] = ()) -> ChunkOutput:
        with staged.handle.cursor(self.connect) as con:
            try:
                result = con.sql(
                    with_views(views)
                    + f"SELECT {literal(plate_key)} AS {ident('Metadata_TableNumber')}, q.* "
                    f"FROM ({sql}) AS q"
                ).to_arrow_table()
            except duckdb.Error as e:
                raise SchemaError(f"the join SQL failed on plate {staged.plate.key!r}: {error_summary(e)}") from e
        chunk = Chunk(staged.plate.key, 0, None, None, 0)
        return ChunkOutput(chunk, result, result.num_rows, rows_in=0)

    def _joiner(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory database for joining one chunk's Arrow tables. One per chunk: a
        database kept open holds on to memory from the chunks it joined (measured: 90-280 MB
        more at the peak of a 96-image plate), and opening one takes milliseconds."""
        con = self.connect()
        # Without statistics on Arrow tables DuckDB may join two partners on the image alone
        # first (every cell with every nucleus of an image); keep the written order.
        con.execute("SET disabled_optimizers = 'join_order'")
        return con

    def release(self, staged: StagedPlate) -> None:
        """Close the plate's handle: its connection, and a staged copy's file; a plate read in
        place is the user's source, never touched."""
        if not staged.in_place:
            staged.handle.close()

    # inspecting ----------------------------------------------------------------------------

    def describe(self, plate: Plate, preset: Preset) -> PlateDescription:
        """Describe a plate straight from its source, staging nothing (its format's reader, and
        ``adapters/duckdb_inspect.py``)."""
        return reader(plate.format).describe(self, plate, preset)
