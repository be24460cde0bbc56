"""Reading SQLite plates into DuckDB: the one place that chooses how.

Two readers, the same behaviour:

* ``arrow`` (always installed): the Apache Arrow project's ADBC SQLite driver
  (``adbc-driver-sqlite``, SQLite inside its wheel) runs each read in SQLite and hands its rows
  over as Arrow batches, which DuckDB (or a chunk's stream) takes as they come. It works with
  every DuckDB version and downloads nothing.
* ``extension`` (the accelerator, optional): DuckDB's own SQLite extension, from the wheel
  ``duckdb-extension-sqlite-scanner``, loaded from that wheel's file and only when its version
  equals the installed DuckDB's. Connections never autoload or autoinstall an extension.

Both type a column by its declaration, as SQLite's affinity rules read it (``INTEGER`` BIGINT,
``FLOAT`` DOUBLE, ``TEXT`` VARCHAR ...), and both raise :class:`duckdb.TypeMismatchException`
when a value is unlike its declaration (a column of mixed storage classes), which the callers
settle by reading the table as text (``sqlite_types.py``) or by copying the plate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa

from celltable.adapters.duckdb_sql import arrow_reader, error_summary, ident, literal
from celltable.adapters.sqlite_adbc import ArrowReader, Partition
from celltable.domain.errors import ConfigurationError, SourceReadError
from celltable.domain.model import SQLITE_READERS as READERS


class SqliteReader(Protocol):
    """One SQLite file, read into the DuckDB connection it was opened on."""

    path: str

    def columns(self, table: str) -> list[tuple[str, str]]:
        """``(name, DuckDB type)`` of each column, as its declaration implies."""
        ...

    def copy(self, con: duckdb.DuckDBPyConnection, table: str, target: str, *,
             columns: Sequence[str] | None = None, partition: Partition | None = None,
             text: bool = False, temp: bool = False) -> None:
        """``CREATE OR REPLACE [TEMP] TABLE target`` from the table's rows (its ``columns``
        only; every value as text with ``text``), on ``con``: this reader's connection or a
        cursor of it."""
        ...

    def count(self, table: str, partition: Partition | None = None) -> int:
        """The table's rows."""
        ...

    def batches(self, table: str, rows: int, *, columns: Sequence[str] | None = None,
                start: tuple[str, int] | None = None) -> pa.RecordBatchReader:
        """The table's rows in storage order (rowid order), ``rows`` a batch, from the first
        whose ``start[0]`` column is at least ``start[1]`` on (a sorted key)."""
        ...

    def close(self) -> None:
        ...


def open_sqlite(con: duckdb.DuckDBPyConnection, path: str, reader: str = "auto") -> SqliteReader:
    """Open the SQLite file ``path`` for reading into ``con`` with the chosen reader.

    Raises:
        SourceReadError: The file cannot be opened as a SQLite database.
        ConfigurationError: ``extension`` was asked for and no matching wheel is installed.
    """
    if reader not in READERS:
        raise ConfigurationError(f"SQLite reader {reader!r} is not one of {', '.join(READERS)}")
    extension = accelerator()
    if reader == "extension" and extension is None:
        raise ConfigurationError(
            f"the SQLite extension for DuckDB {duckdb.__version__} is not installed; run "
            f"pip install duckdb-extension-sqlite-scanner=={duckdb.__version__}, or use the "
            "arrow reader (CELLTABLE_SQLITE_READER=arrow)")
    if reader != "arrow" and extension is not None:
        return ExtensionReader.open(con, path, extension)
    return ArrowReader.open(con, path)


@cache
def accelerator() -> str | None:
    """The file of DuckDB's SQLite extension from the wheel duckdb-extension-sqlite-scanner, if
    installed and of the installed DuckDB's version; else None."""
    try:
        import duckdb_extension_sqlite_scanner as pkg
        version = metadata.version("duckdb-extension-sqlite-scanner")
    except (ImportError, metadata.PackageNotFoundError):
        return None
    if version != duckdb.__version__:
        return None
    found = Path(pkg.__file__).parent / "extensions" / f"v{duckdb.__version__}" / \
        "sqlite_scanner.duckdb_extension"
    return str(found) if found.is_file() else None


def reader_name(reader: str = "auto") -> str:
    """The reader ``reader`` resolves to here: ``extension`` or ``arrow``."""
    return "extension" if reader != "arrow" and accelerator() is not None else "arrow"


# The accelerator ---------------------------------------------------------------------------


@dataclass(slots=True)
class ExtensionReader:
    """DuckDB's SQLite extension: the file attached to the connection as ``src``."""

    con: duckdb.DuckDBPyConnection
    path: str

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection, path: str, extension: str) -> ExtensionReader:
        con.execute(f"LOAD {literal(extension)}")
        try:
            con.execute(f"ATTACH {literal(path)} AS src (TYPE sqlite, READ_ONLY)")
        except duckdb.Error as e:
            raise SourceReadError(f"cannot open SQLite file {path}: {error_summary(e)}") from e
        return cls(con, path)

    def _select(self, table: str, columns: Sequence[str] | None = None,
                partition: Partition | None = None, select: str | None = None) -> str:
        what = select or (", ".join(ident(c) for c in columns) if columns is not None else "*")
        sql = f"SELECT {what} FROM src.{ident(table)}"
        if partition is not None:
            sql += f" WHERE CAST({ident(partition[0])} AS VARCHAR) = {literal(partition[1])}"
        return sql

    def columns(self, table: str) -> list[tuple[str, str]]:
        # A cursor of its own: tables are staged side by side, from several threads.
        described = self.con.cursor().execute(f"DESCRIBE SELECT * FROM src.{ident(table)}").fetchall()
        return [(name, t) for name, t, *_ in described]

    def copy(self, con: duckdb.DuckDBPyConnection, table: str, target: str, *,
             columns: Sequence[str] | None = None, partition: Partition | None = None,
             text: bool = False, temp: bool = False) -> None:
        create = f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {target} AS "
        if not text:
            con.execute(create + self._select(table, columns, partition))
            return
        con.execute("SET sqlite_all_varchar = true")  # on this cursor, for this read only
        try:
            con.execute(create + self._select(table, columns, partition))
        finally:
            con.execute("SET sqlite_all_varchar = false")

    def count(self, table: str, partition: Partition | None = None) -> int:
        sql = self._select(table, partition=partition, select="count(*)")
        return int(self.con.cursor().execute(sql).fetchone()[0])

    def batches(self, table: str, rows: int, *, columns: Sequence[str] | None = None,
                start: tuple[str, int] | None = None) -> pa.RecordBatchReader:
        sql = self._select(table, columns)
        if start is not None:
            sql += f" WHERE {ident(start[0])} >= {int(start[1])}"
        # Ordered by rowid when only some columns are read: for the key alone SQLite may scan
        # an index (a primary key on the image and object numbers) and return it sorted.
        if columns is not None:
            sql += " ORDER BY rowid"
        return arrow_reader(self.con.cursor(), sql, rows)

    def close(self) -> None:
        self.con.execute("DETACH src")
