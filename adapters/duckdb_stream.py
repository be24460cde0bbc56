"""Reading SQLite and CSV plates in place: no copy, each table streamed once, in storage order.

CellProfiler writes each table in image order. When a plate's tables are stored that way (checked
first, on the key column alone), every chunk's rows are the next run of rows in each table, so
the tables are read as streams and cut at chunk boundaries: each byte is read once and nothing is
written but the output. Plates stored otherwise are copied into DuckDB instead (staging).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from celltable.adapters.arrow_types import scalar
from celltable.adapters.csv_header import with_names
from celltable.adapters.csv_keys import not_whole, not_whole_error, with_double_keys
from celltable.adapters.duckdb_sql import arrow_reader, data_type, error_summary, ident, literal
from celltable.adapters.sqlite_reader import SqliteReader
from celltable.domain.errors import InPlaceReadFailed, SourceReadError
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import IMAGE, Preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import StagedPlate, StagedTable, TableLocation

BATCH_BYTES = 4 * 2**20
"""Bytes per batch a stream reads. A chunk's rows are slices of batches, and a slice keeps its
whole batch in memory, so batches stay small beside a chunk (measured: as fast as 32 MB ones;
a 96-image plate peaked ~150 MB lower)."""


def in_place_tables(sqlite: SqliteReader, plate_tables: Sequence[TableLocation],
                    preset: Preset) -> tuple[StagedTable, ...] | None:
    """The tables of a SQLite plate if all can be read in place: integer image keys, none NULL,
    stored in non-decreasing order. None if any cannot."""
    key = preset.image_key
    tables = []
    for loc in plate_tables:
        described = sqlite.columns(loc.name_in_source)
        schema = TableSchema(loc.table, tuple(Column(n, data_type(t)) for n, t in described))
        if key not in schema.names or schema.type_of(key) is not DataType.INT64:
            return None
        # One scan of the key, in storage order (rowid order), which the streams read in.
        counted = key_runs(sqlite.batches(loc.name_in_source, 2**20, columns=[key]))
        if counted is None:
            return None
        tables.append(StagedTable(loc.table, schema, sum(n for _, n in counted), counted))
    return tuple(tables)


class FlaggedRow(Exception):
    """A row of a key scan was flagged (its second column true)."""


def key_runs(batches: pa.RecordBatchReader,
             flagged: bool = False) -> tuple[tuple[int, int], ...] | None:
    """Rows per key of a read's first column, if its keys come in non-decreasing order and
    none is NULL; else None. Read a batch at a time: the whole column never sits in memory.

    Raises:
        FlaggedRow: With ``flagged``, the read's second column (a boolean) is true in a row.
    """
    counted: dict[int, int] = {}
    last: int | None = None
    for batch in batches:
        if flagged and pc.any(batch.column(1)).as_py():
            raise FlaggedRow
        keys = batch.column(0)
        if keys.null_count:
            return None
        if not len(keys):
            continue
        if last is not None and keys[0].as_py() < last:
            return None
        if len(keys) > 1 and pc.any(pc.less(keys.slice(1), keys.slice(0, len(keys) - 1))).as_py():
            return None
        last = keys[-1].as_py()
        for run in pc.value_counts(keys).to_pylist():  # in key order, as the keys are
            counted[run["values"]] = counted.get(run["values"], 0) + run["counts"]
    return tuple(counted.items())


CSV_DIALECT = "delim = ',', quote = '\"', escape = '\"'"
"""The dialect of CellProfiler's (and most) CSV files, RFC 4180's. Given to DuckDB's sniffer, it
spares it trying every dialect on its sample: 1.0 s instead of 3.3 s for a 320 MB file of 600
columns, with the same column types."""


def sniffed_csv(con: duckdb.DuckDBPyConnection, path: str) -> str:
    """The FROM expression reading a CSV file as ``read_csv(path, header = true)`` does (what
    staging reads first), its dialect and column types spelled out by DuckDB's sniffer
    (``sniff_csv``), so that reading it again does not sniff it again: sniffing a sample of wide
    rows costs several times the scan of the whole file. The sniffer tries :data:`CSV_DIALECT`
    first and guesses the dialect only when that splits the header into one column (a file
    delimited by semicolons or tabs)."""
    for dialect in (f", {CSV_DIALECT}", ""):
        try:
            prompt, columns = con.execute(
                f"SELECT Prompt, len(Columns) FROM sniff_csv({literal(path)}, header = true"
                f"{dialect})").fetchone()
        except duckdb.Error:
            if not dialect:
                raise
            continue  # quotes this dialect cannot split: let the sniffer guess
        if columns > 1 or not dialect:
            break
    source = str(prompt).strip().removesuffix(";").strip().removeprefix("FROM ").strip()
    if not source.startswith("read_csv(") or not source.endswith(")"):
        raise ValueError(f"unexpected sniffer prompt for {path}: {prompt[:80]!r}")
    if dialect and "delim=" not in source:  # the sniffer leaves out options it was given
        source = f"{source[:-1]}{dialect})"
    return with_names(con, source, path)


def in_place_csv_tables(con: duckdb.DuckDBPyConnection, plate_tables: Sequence[TableLocation],
                        preset: Preset, workers: int = 1,
                        ) -> tuple[tuple[StagedTable, ...], dict[str, str]] | None:
    """The tables of a CSV plate, and the expression reading each, if all can be read in place:
    typed by DuckDB's sniffer as staging types them, with rows, integer image keys, none NULL,
    in non-decreasing order in the file. None if any cannot (a header-only file, a table without
    the key ...). Up to ``workers`` files are checked side by side (sniffing runs on one core).

    A CSV file has no row id to order by, so the order is checked on the key column as the scan
    returns it: with ``preserve_insertion_order`` (set here, DuckDB's default) a query without
    ORDER BY returns a file's rows in file order, however many threads read it; the stream reads
    the file through the same guarantee. The same pass counts rows per image.
    """
    con.execute("SET preserve_insertion_order = true")
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(plate_tables)))) as pool:
        found = list(pool.map(lambda loc: _csv_table(con.cursor(), loc, preset), plate_tables))
    if any(f is None for f in found):
        return None
    return tuple(t for t, _ in found), {t.table: source for t, source in found}


def _csv_table(con: duckdb.DuckDBPyConnection, loc: TableLocation,
               preset: Preset) -> tuple[StagedTable, str] | None:
    """One CSV table and its read if it can be read in place (see ``in_place_csv_tables``).

    Raises:
        NotWholeKeyError: A key column holds a fraction (checked in the same scan).
    """
    if Path(loc.path).stat().st_size == 0:
        return None
    key = preset.image_key
    source = sniffed_csv(con, loc.path)
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    schema = TableSchema(loc.table, tuple(Column(n, data_type(t)) for n, t, *_ in described))
    if key not in schema.names or schema.type_of(key) is not DataType.INT64:
        return None
    keys = [c for c in preset.key_columns(loc.table)
            if c in schema.names and schema.type_of(c) in (DataType.INT64, DataType.FLOAT64)]
    checked = with_double_keys(source, keys)
    try:
        counted = key_runs(arrow_reader(
            con, f"SELECT CAST({ident(key)} AS BIGINT), {not_whole(keys)} FROM {checked}", 2**20),
            True)
    except FlaggedRow:
        raise not_whole_error(con, checked, loc.path, keys) from None
    if not counted:
        return None
    return StagedTable(loc.table, schema, sum(n for _, n in counted), counted), source


def csv_rows(con: duckdb.DuckDBPyConnection, source: str, key: str, rows: int,
             start: int | None) -> pa.RecordBatchReader:
    """The rows of the CSV read ``source`` in file order, ``rows`` a batch, from the first
    whose ``key`` is at least ``start`` on; one thread keeps the order."""
    where = "" if start is None else f" WHERE {ident(key)} >= {int(start)}"
    return arrow_reader(con.cursor(), f"SELECT * FROM {source}{where}", rows)


OpenRows = Callable[[TableLocation, str, int, "int | None"], pa.RecordBatchReader]
"""``(table, key, rows per batch, start)``: the table's rows in storage order, from the first
whose key is at least ``start`` on (a resumed conversion skips images already converted)."""


class _TableStream:
    """One table's rows in storage order, handed out up to a key at a time."""

    def __init__(self, reader: pa.RecordBatchReader, key: str) -> None:
        self._reader = reader
        self._key = key
        self._rest: pa.RecordBatch | None = None

    def below(self, upper: int | None) -> pa.Table:
        """The next rows whose key is below ``upper`` (all the rest when None)."""
        return pa.Table.from_batches(list(self._batches_below(upper)), schema=self._reader.schema)

    def skip(self, upper: int) -> None:
        """Pass over the next rows whose key is below ``upper``, a batch at a time."""
        for _ in self._batches_below(upper):
            pass

    def _batches_below(self, upper: int | None) -> Iterator[pa.RecordBatch]:
        while True:
            batch, self._rest = self._rest, None
            if batch is None:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    return
            if upper is not None:
                n = pc.sum(pc.less(batch.column(self._key), scalar(upper, pa.int64()))).as_py() or 0
                if n < batch.num_rows:  # keys are sorted: the first n rows are below
                    self._rest = batch.slice(n)
                    yield batch.slice(0, n)
                    return
            yield batch


def chunk_tables(staged: StagedPlate, queries: Sequence[ChunkQuery], open_rows: OpenRows,
                 redo: tuple[type[duckdb.Error], ...] = (), side_by_side: bool = True,
                 ) -> Iterator[dict[str, pa.Table]]:
    """For each query (in key order, possibly with gaps), the rows of every table it reads,
    read once in order through ``open_rows``; ``redo``: the errors besides a type mismatch
    that a copy of the plate settles (raised as :class:`InPlaceReadFailed`).

    A scan runs on one core; ``side_by_side``, the tables of a chunk are read side by side, one
    thread each. Else they are read one after the other in the calling thread: a task given one
    core (a worker process of ``--threads 1``) uses that core only.
    """
    streams: dict[str, _TableStream] = {}
    # Values unlike the types read from the source (declared by SQLite, sniffed from a CSV
    # file's first rows), found only now, as checking beforehand would read the plate twice.
    redo = (duckdb.TypeMismatchException, *redo)

    def read(name: str, key: str, lower: int | None, upper: int | None) -> pa.Table:
        try:
            if name not in streams:
                loc, table = staged.plate.location(name), staged.table(name)
                assert loc is not None and table is not None, name
                rows = max(1024, BATCH_BYTES // (8 * max(1, len(table.schema.columns))))
                streams[name] = _TableStream(open_rows(loc, key, rows, lower), key)
            elif lower is not None:  # chunks left out (already converted) leave gaps
                streams[name].skip(lower)
            return streams[name].below(upper)
        except redo as e:  # the conversion redoes this plate from a copy, which settles them
            raise InPlaceReadFailed(staged.plate.key, error_summary(e)) from e
        except duckdb.Error as e:
            loc = staged.plate.location(name)
            raise SourceReadError(
                f"cannot read table {loc.name_in_source if loc else name} of "
                f"{staged.plate.path}: {error_summary(e)}"
            ) from e

    def names_of(query: ChunkQuery) -> list[str]:
        names = [query.table]
        if query.join is not None:
            names += [s.parent for s in query.join.steps]
            if query.join.with_image:
                names.append(IMAGE)
        return names

    if not side_by_side:
        for query in queries:
            c = query.chunk
            tables = {n: read(n, query.image_key, c.lower, c.upper) for n in names_of(query)}
            yield tables
            del tables
        return
    with ThreadPoolExecutor(max_workers=len(staged.tables)) as pool:
        for query in queries:
            c = query.chunk
            futures = {n: pool.submit(read, n, query.image_key, c.lower, c.upper)
                       for n in names_of(query)}
            tables = {n: f.result() for n, f in futures.items()}
            # Hold nothing past the yield: the task frees its tables once it has joined them,
            # while this reads the next chunk.
            del futures
            yield tables
            del tables
