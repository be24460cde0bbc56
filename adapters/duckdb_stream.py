"""Reading SQLite plates in place: no copy, each table streamed once, in storage order.

CellProfiler writes each table in image order. When a plate's tables are stored that way (checked
first, on the key column alone), every chunk's rows are the next run of rows in each table, so
the tables are read as streams and cut at chunk boundaries: each byte is read once and nothing is
written but the output. Plates stored otherwise are copied into DuckDB instead (staging).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from celltable.adapters.duckdb_sql import data_type, error_summary, ident
from celltable.domain.errors import InPlaceReadFailed, SourceReadError
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import IMAGE, Preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import StagedTable, StagedUnit, TableLocation

BATCH_BYTES = 4 * 2**20
"""Bytes per batch a stream reads. A chunk's rows are slices of batches, and a slice keeps its
whole batch in memory, so batches stay small beside a chunk (measured: as fast as 32 MB ones;
a 96-image plate peaked ~150 MB lower)."""


def in_place_tables(con: duckdb.DuckDBPyConnection, unit_tables: Sequence[TableLocation],
                    preset: Preset) -> tuple[StagedTable, ...] | None:
    """The tables of an attached SQLite plate (``src``) if all can be read in place: integer
    image keys, none NULL, stored in non-decreasing order. None if any cannot."""
    key = preset.image_key
    tables = []
    for loc in unit_tables:
        source = f"src.{ident(loc.name_in_source)}"
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        schema = TableSchema(loc.table, tuple(Column(n, data_type(t)) for n, t, *_ in described))
        if key not in schema.names or schema.type_of(key) is not DataType.INT64:
            return None
        k = ident(key)
        unordered, nulls = con.execute(
            "SELECT count(*) FILTER (WHERE k < p), count(*) FILTER (WHERE k IS NULL) FROM "
            f"(SELECT {k} AS k, lag({k}) OVER (ORDER BY rowid) AS p FROM {source})"
        ).fetchone()
        if unordered or nulls:
            return None
        counted = con.execute(f"SELECT {k}, count(*) FROM {source} GROUP BY ALL ORDER BY 1").fetchall()
        rows = sum(n for _, n in counted)
        tables.append(StagedTable(loc.table, schema, rows, tuple(counted)))
    return tuple(tables)


class _TableStream:
    """One table's rows in storage order, handed out up to a key at a time."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str, key: str, columns: int,
                 start: int | None = None) -> None:
        rows = max(1024, BATCH_BYTES // (8 * max(1, columns)))
        # From ``start`` on (a resumed conversion skips images already converted); one thread
        # keeps the storage order.
        where = "" if start is None else f" WHERE {ident(key)} >= {int(start)}"
        self._reader = con.cursor().execute(f"SELECT * FROM {source}{where}").to_arrow_reader(rows)
        self._key = key
        self._rest: pa.RecordBatch | None = None

    def below(self, upper: int | None) -> pa.Table:
        """The next rows whose key is below ``upper`` (all the rest when None)."""
        batches = []
        while True:
            batch, self._rest = self._rest, None
            if batch is None:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    break
            if upper is not None:
                n = pc.sum(pc.less(batch.column(self._key), upper)).as_py() or 0
                if n < batch.num_rows:  # keys are sorted: the first n rows are below
                    batches.append(batch.slice(0, n))
                    self._rest = batch.slice(n)
                    break
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=self._reader.schema)

    def skip(self, upper: int) -> None:
        """Pass over the next rows whose key is below ``upper`` (a batch at a time)."""
        while True:
            batch, self._rest = self._rest, None
            if batch is None:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    return
            n = pc.sum(pc.less(batch.column(self._key), upper)).as_py() or 0
            if n < batch.num_rows:
                self._rest = batch.slice(n)
                return


def chunk_tables(con: duckdb.DuckDBPyConnection, staged: StagedUnit,
                 queries: Sequence[ChunkQuery]) -> Iterator[dict[str, pa.Table]]:
    """For each query (in key order, possibly with gaps), the rows of every table it reads,
    read once in order.

    A SQLite scan runs on one core; the tables of a chunk are read side by side, one thread each.
    """
    streams: dict[str, _TableStream] = {}

    def read(name: str, key: str, lower: int | None, upper: int | None) -> pa.Table:
        try:
            if name not in streams:
                loc, table = staged.unit.location(name), staged.table(name)
                assert loc is not None and table is not None, name
                streams[name] = _TableStream(con, f"src.{ident(loc.name_in_source)}", key,
                                             len(table.schema.columns), start=lower)
            elif lower is not None:  # chunks left out (already converted) leave gaps
                streams[name].skip(lower)
            return streams[name].below(upper)
        except duckdb.TypeMismatchException as e:
            # Values unlike their declared types, found only now, as checking beforehand would
            # read the plate twice: the conversion redoes this plate from a copy that casts them.
            raise InPlaceReadFailed(staged.unit.key, error_summary(e)) from e
        except duckdb.Error as e:
            loc = staged.unit.location(name)
            raise SourceReadError(
                f"cannot read table {loc.name_in_source if loc else name} of "
                f"{staged.unit.path}: {error_summary(e)}"
            ) from e

    with ThreadPoolExecutor(max_workers=len(staged.tables)) as pool:
        for query in queries:
            names = [query.table]
            if query.join is not None:
                names += [s.parent for s in query.join.steps]
                if query.join.with_image:
                    names.append(IMAGE)
            c = query.chunk
            futures = {n: pool.submit(read, n, query.image_key, c.lower, c.upper) for n in names}
            tables = {n: f.result() for n, f in futures.items()}
            # Hold nothing past the yield: the task frees its tables once it has joined them,
            # while this reads the next chunk.
            del futures
            yield tables
            del tables
