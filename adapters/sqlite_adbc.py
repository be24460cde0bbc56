"""The SQLite reader through the Apache Arrow project's ADBC driver (``adbc-driver-sqlite``,
SQLite inside its wheel): each read is a SQLite query whose rows come back as Arrow batches,
typed by the columns' declarations. Chosen in ``sqlite_reader.py``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from celltable.adapters.duckdb_sql import ident, literal
from celltable.domain.errors import SourceReadError

BATCH_BYTES = 4 * 2**20
"""About the bytes of a batch copied into DuckDB (as the streams' batches: see duckdb_stream)."""

Partition = tuple[str, str]
"""``(column, value)``: the rows whose column, as text, equals the value (one plate of a file)."""

_ARROW_TYPES = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string(),
                "BLOB": pa.binary(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us")}
_PROTOTYPES = {"BIGINT": "0", "DOUBLE": "0.0", "BLOB": "x''"}  # else text: ''
_TEXT = "''"
_STORAGE = {"BIGINT": "'integer'", "DOUBLE": "'integer', 'real'", "BLOB": "'blob'"}
"""The storage classes DuckDB's SQLite extension reads as each type (text: the rest)."""
_TEXT_STORAGE = "'text'"


def declared_type(declared: str) -> str:
    """The DuckDB type of a SQLite column declaration, by SQLite's affinity rules, as DuckDB's
    SQLite extension reads it."""
    t = declared.strip().lower()
    if "int" in t or t.startswith("bool"):
        return "BIGINT"
    if any(s in t for s in ("char", "clob", "text")):
        return "VARCHAR"
    if "blob" in t or not t:
        return "BLOB"
    if any(s in t for s in ("real", "floa", "doub")) or t == "numeric" or t.startswith("decimal"):
        return "DOUBLE"
    if t == "date":
        return "DATE"
    if t in ("datetime", "timestamp", "time"):
        return "TIMESTAMP"
    return "VARCHAR"


def _adbc_errors() -> tuple[type[BaseException], ...]:
    import adbc_driver_manager

    return (adbc_driver_manager.Error, OSError)


@dataclass(slots=True)
class ArrowReader:
    """The ADBC SQLite driver: each read is a SQLite query on a read-only connection of its own
    (streams of one plate are read side by side, from several threads)."""

    con: duckdb.DuckDBPyConnection
    path: str
    uri: str
    kinds: dict[str, str]
    _columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection, path: str) -> ArrowReader:
        uri = f"{Path(path).absolute().as_uri()}?mode=ro"
        try:
            kinds = dict(_query(uri, "SELECT name, type FROM sqlite_master"))
        except _adbc_errors() as e:
            raise SourceReadError(f"cannot open SQLite file {path}: {e}") from e
        return cls(con, path, uri, kinds)

    def columns(self, table: str) -> list[tuple[str, str]]:
        if table not in self._columns:
            try:
                info = _query(self.uri, f"SELECT name, type FROM pragma_table_info({literal(table)})")
            except _adbc_errors() as e:
                raise duckdb.IOException(f"cannot read table {table}: {e}") from e
            found = [(str(n), declared_type(str(t or ""))) for n, t in info]
            if not found:
                raise duckdb.CatalogException(f"Table with name {table} does not exist")
            self._columns[table] = found
        return self._columns[table]

    def copy(self, con: duckdb.DuckDBPyConnection, table: str, target: str, *,
             columns: Sequence[str] | None = None, partition: Partition | None = None,
             text: bool = False, temp: bool = False) -> None:
        width = len(columns) if columns is not None else len(self.columns(table))
        rows = max(1024, BATCH_BYTES // (8 * max(1, width)))  # a few MB a batch
        stream = _Stream(self, table, rows, columns, partition=partition, text=text)
        # Found by DuckDB's replacement scan of this frame's variables (``register`` refuses a
        # connection with a result not fetched to the end, from DuckDB 2 on).
        celltable_sqlite_rows = stream.reader()  # noqa: F841
        try:
            con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {target} AS "
                        "SELECT * FROM celltable_sqlite_rows")
        except duckdb.Error as e:
            stream.raise_mismatch(e)
            raise

    def count(self, table: str, partition: Partition | None = None) -> int:
        sql = f"SELECT count(*) FROM {ident(table)}" + _where(partition)
        try:
            return int(_query(self.uri, sql)[0][0])
        except _adbc_errors() as e:
            raise duckdb.IOException(f"cannot read table {table}: {e}") from e

    def batches(self, table: str, rows: int, *, columns: Sequence[str] | None = None,
                start: tuple[str, int] | None = None) -> pa.RecordBatchReader:
        return _Stream(self, table, rows, columns, start=start).reader()

    def close(self) -> None:
        pass


def _where(partition: Partition | None) -> str:
    if partition is None:
        return ""
    return f" WHERE CAST({ident(partition[0])} AS TEXT) = {literal(partition[1])}"


@contextmanager
def _rows(uri: str, sql: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatchReader]:
    """The rows of one query as Arrow batches, on a connection of its own, closed after.

    ADBC's low-level API: its DB-API module would import pandas, polars and pyarrow.dataset
    (about 0.45 s of every process's first read, measured), none of which a read needs."""
    try:
        import adbc_driver_manager as adbc
        import adbc_driver_sqlite
    except ImportError as e:  # pragma: no cover - a broken install
        raise SourceReadError("the package adbc-driver-sqlite is missing; reinstall celltable") from e
    with ExitStack() as handles:  # closed in reverse: each before what it came from
        database = handles.enter_context(closing(adbc_driver_sqlite.connect(uri)))
        connection = handles.enter_context(closing(adbc.AdbcConnection(database)))
        statement = handles.enter_context(closing(adbc.AdbcStatement(connection)))
        if batch_rows is not None:
            statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        statement.set_sql_query(sql)
        stream, _ = statement.execute_query()
        handles.callback(stream.release)  # a no-op once Arrow has taken it over
        reader = pa.RecordBatchReader.from_stream(stream) \
            if hasattr(stream, "__arrow_c_stream__") \
            else pa.RecordBatchReader._import_from_c(stream.address)  # an ADBC without the stream protocol
        yield handles.enter_context(closing(reader))


def _query(uri: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of a small query, on a connection of its own."""
    with _rows(uri, sql) as reader:
        table = reader.read_all()
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True)) if table.num_columns \
        else []


class _Stream:
    """One read of a table through ADBC, as Arrow batches of the declared types.

    The driver types each column by the values of its first batch. So that it reads the
    declarations instead, the query's first row is a row of typed constants (dropped on the
    way): an all-NULL first batch reads as its declared type, and a value unlike its
    declaration turns up as a type the driver had to widen to (first batch) or as an error
    (later batches), both reported as :class:`duckdb.TypeMismatchException`.
    """

    def __init__(self, reader: ArrowReader, table: str, rows: int,
                 columns: Sequence[str] | None = None, *, start: tuple[str, int] | None = None,
                 partition: Partition | None = None, text: bool = False) -> None:
        declared = dict(reader.columns(table))
        names = list(columns) if columns is not None else list(declared)
        self.reader_ = reader
        self.table = table
        self.rows = rows
        self.kinds = {n: "VARCHAR" if text else declared[n] for n in names}
        self.schema = pa.schema([(n, _ARROW_TYPES[k]) for n, k in self.kinds.items()])
        proto = ", ".join(f"{_PROTOTYPES.get(k, _TEXT)} AS {ident(n)}" for n, k in self.kinds.items())
        what = ", ".join(f"CAST({ident(n)} AS TEXT)" if text else ident(n) for n in names)
        sql = f"SELECT {what} FROM {ident(table)}"
        if reader.kinds.get(table) == "table":  # rowid order, even with a key range to read
            sql += " NOT INDEXED"
        sql += _where(partition)
        if start is not None:
            sql += f"{' AND' if partition else ' WHERE'} {ident(start[0])} >= {int(start[1])}"
        self.sql = f"SELECT {proto} UNION ALL SELECT * FROM ({sql})" if names else sql
        self.mismatch: str | None = None

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        errors = _adbc_errors()
        try:
            with _rows(self.reader_.uri, self.sql, self.rows) as source:
                first = True
                while True:
                    try:
                        batch = source.read_next_batch()
                    except StopIteration:
                        return
                    except errors as e:
                        if self._mixed():
                            self.mismatch = str(e)
                            raise duckdb.TypeMismatchException(
                                f"table {self.table}: values unlike their column's declared type"
                            ) from e
                        raise duckdb.IOException(f"cannot read table {self.table}: {e}") from e
                    if first:
                        first = False
                        batch = self._typed(batch).slice(1)
                    yield batch
        except errors as e:
            raise duckdb.IOException(f"cannot read table {self.table}: {e}") from e

    def _typed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The first batch, checked: a type the driver widened a column to means a value
        unlike the declaration; dates and times (read as text) are cast."""
        if batch.schema.equals(self.schema):
            return batch
        arrays = []
        for name, kind, array in zip(self.kinds, self.kinds.values(), batch.columns, strict=True):
            wanted = _ARROW_TYPES[kind]
            if array.type != wanted:
                if kind not in ("DATE", "TIMESTAMP") or not pa.types.is_string(array.type):
                    self.mismatch = f"column {name}: {array.type} values, declared {kind}"
                    raise duckdb.TypeMismatchException(
                        f"table {self.table}, {self.mismatch}")
                array = array.cast(wanted)
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _mixed(self) -> bool:
        """Whether the table holds a value of a storage class its declaration does not read
        (asked of SQLite when a later batch fails, to tell that from a damaged file)."""
        checks = [f"typeof({ident(n)}) NOT IN ('null', {_STORAGE.get(k, _TEXT_STORAGE)})"
                  for n, k in self.kinds.items()]
        if not checks:
            return False
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {ident(self.table)} WHERE {' OR '.join(checks)} LIMIT 1)"
        try:
            return bool(_query(self.reader_.uri, sql)[0][0])
        except _adbc_errors():
            return False

    def raise_mismatch(self, error: duckdb.Error) -> None:
        """Re-raise an error of DuckDB reading this stream as a type mismatch, if it was one."""
        if self.mismatch is not None and not isinstance(error, duckdb.TypeMismatchException):
            raise duckdb.TypeMismatchException(
                f"table {self.table}: values unlike their column's declared type") from error
